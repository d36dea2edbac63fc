// The self-hosted front's cache of lookup answers. Lookups outnumber
// registrations by far (every agent and CLI asks for the same colony), and
// every registration of a mesh passes through the front, so the front can keep
// the worker's exact answer bytes and serve repeats without a workerd round
// trip, the way an HTTP cache in front of an origin would.
//
// What keeps it correct:
// - An answer is kept only until the registration it shows expires (the
//   worker sends that instant in `coral-expires-at-ms`), so an expired
//   registration is never served, even when the alarm that deletes it is late.
// - A registration of a mesh drops the mesh's answers before it is forwarded
//   and again when it has been answered. A lookup that started before either
//   drop may have read the old registration, so its answer is not kept.
// - Keys are the request bytes that decide the answer (method, path, content
//   type, accepted encodings, body), so a hit is exactly what the worker
//   answered to the same request. Only 200 answers are kept.
// - Memory is bounded by entries and bytes (least recently used go first), and
//   per mesh, so one client sending many spellings of one lookup cannot push
//   out everyone else's answers.
//
// Two things keep busy meshes from waiting on workerd:
// - Lookups that miss on the same key while one is on its way to the worker
//   share its answer (pending()), unless a registration of the mesh arrived
//   since; then they ask for themselves.
// - invalidate() hands back the requests of the answers it dropped, so the
//   front can ask them again once the registration is answered, and the next
//   lookups of a mesh that is being looked up find its new answer.
// - A pure refresh (same key and fields; the worker says so, see
//   refreshedHeader) changes only the signature, the address and the times of
//   its key's answers. When no other registration of the mesh came in while it
//   was on its way (registering() / registered()), the front puts the answers
//   dropped on its arrival back, updated (answer-refresh.ts), instead of asking
//   the worker for them again.

export interface Answer {
  status: number;
  /** Flat [name, value, name, value, …] list, as http.ServerResponse.writeHead takes it. */
  headers: string[];
  body: Buffer;
  expiresAtMs: number;
}

interface Entry<R> extends Answer {
  meshId: string;
  bytes: number;
  /** The request that got this answer, to ask again after a registration. */
  request: R;
}

interface MeshState {
  keys: Set<string>;
  /** Lookups on their way to the worker, by key, that later misses may share. */
  pending: Map<string, Promise<Answer | undefined>>;
  /** Bumped by each registration of the mesh. */
  generation: number;
  /** Lookups and registrations on their way to the worker; the state may go only when none is. */
  inFlight: number;
  /** Registrations on their way to the worker. */
  registering: number;
}

/** A lookup on its way to the worker: fill() or abandon() it once. */
export interface Ticket {
  meshId: string;
  generation: number;
  settled: boolean;
  key?: string;
  pending?: Promise<Answer | undefined>;
}

/** An answer dropped by a registration, and the request that got it. */
export interface Dropped<R> {
  key: string;
  request: R;
  answer: Answer;
}

/** A registration of a mesh on its way to the worker: registered() it once. */
export interface Registration<R> {
  meshId: string;
  /** The mesh's generation once this registration arrived. */
  generation: number;
  /** Every answer of the mesh dropped when it arrived, newest fill first. */
  dropped: Dropped<R>[];
  settled: boolean;
}

export interface AnswerCacheStats {
  hits: number;
  misses: number;
  fills: number;
  /** Answers not kept because a registration of their mesh came in while they were read. */
  staleFillsDropped: number;
  /** Misses that shared the answer of a lookup already on its way. */
  shared: number;
  /** Answers a pure refresh dropped and the front put back, updated. */
  restored: number;
  evictions: number;
  entries: number;
}

export interface AnswerCacheOptions {
  maxEntries: number;
  maxBytes?: number;
  maxEntriesPerMesh?: number;
  now?: () => number;
}

const entryOverheadBytes = 256;

/**
 * Bytes budgeted per answer when no byte limit is given: a Connect JSON colony
 * answer counts about 700 (body, headers, key and entryOverheadBytes), so the
 * default keeps maxEntries answers of that size, not a fixed total that holds
 * fewer answers than meshes (a cyclic lookup pattern then misses every time).
 */
export const defaultBytesPerAnswer = 1536;

export class AnswerCache<R = undefined> {
  private readonly entries = new Map<string, Entry<R>>();
  private readonly meshes = new Map<string, MeshState>();
  private bytes = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly maxEntriesPerMesh: number;
  private readonly now: () => number;
  readonly stats: Omit<AnswerCacheStats, "entries"> = {
    hits: 0,
    misses: 0,
    fills: 0,
    staleFillsDropped: 0,
    shared: 0,
    restored: 0,
    evictions: 0,
  };

  constructor(options: AnswerCacheOptions) {
    this.maxEntries = options.maxEntries;
    this.maxBytes = options.maxBytes ?? Math.max(64 * 1024 * 1024, options.maxEntries * defaultBytesPerAnswer);
    this.maxEntriesPerMesh = options.maxEntriesPerMesh ?? 1024;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  get(key: string): Answer | undefined {
    const entry = this.entries.get(key);
    if (!entry) {
      this.stats.misses++;
      return undefined;
    }
    if (entry.expiresAtMs <= this.now()) {
      this.remove(key, entry);
      this.stats.misses++;
      return undefined;
    }
    // Map keeps insertion order: re-inserting makes it the most recently used.
    this.entries.delete(key);
    this.entries.set(key, entry);
    this.stats.hits++;
    return entry;
  }

  /** Whether an answer for `key` is kept (not counted as a hit or miss). */
  has(key: string): boolean {
    const entry = this.entries.get(key);
    return entry !== undefined && entry.expiresAtMs > this.now();
  }

  /** Call before forwarding a lookup of `meshId` that missed. */
  begin(meshId: string): Ticket {
    const mesh = this.mesh(meshId);
    mesh.inFlight++;
    return { meshId, generation: mesh.generation, settled: false };
  }

  /** The answer of a lookup of `key` on its way to the worker, begun since the last registration of the mesh. */
  pending(meshId: string, key: string): Promise<Answer | undefined> | undefined {
    const shared = this.meshes.get(meshId)?.pending.get(key);
    if (shared) this.stats.shared++;
    return shared;
  }

  /** Lets later misses of `key` share this lookup's answer until it settles or the mesh registers. */
  share(ticket: Ticket, key: string, answer: Promise<Answer | undefined>): void {
    const mesh = this.meshes.get(ticket.meshId);
    if (ticket.settled || !mesh || mesh.generation !== ticket.generation) return;
    ticket.key = key;
    ticket.pending = answer;
    mesh.pending.set(key, answer);
  }

  /** Keeps the worker's answer, unless a registration of the mesh came in between or it is not cacheable. */
  fill(ticket: Ticket, key: string, answer: Answer, request: R): boolean {
    const mesh = this.settle(ticket);
    if (!mesh) return false;
    if (mesh.generation !== ticket.generation) {
      this.stats.staleFillsDropped++;
      this.forgetIfIdle(ticket.meshId, mesh);
      return false;
    }
    const kept = this.keep(ticket.meshId, mesh, key, answer, request);
    if (kept) this.stats.fills++;
    return kept;
  }

  /** The lookup failed or its answer is not to be kept. */
  abandon(ticket: Ticket): void {
    const mesh = this.settle(ticket);
    if (mesh) this.forgetIfIdle(ticket.meshId, mesh);
  }

  /**
   * A registration of the mesh is on its way or was answered: drop what is
   * kept or pending for it. Returns the dropped answers' requests, newest
   * fill first, at most `refreshLimit` of them.
   */
  invalidate(meshId: string, refreshLimit = 0): Dropped<R>[] {
    return this.dropAll(meshId).slice(0, refreshLimit);
  }

  /**
   * A registration of the mesh arrived: drops what is kept or pending for it
   * (as invalidate()), keeping the dropped answers with the registration.
   */
  registering(meshId: string): Registration<R> {
    const mesh = this.mesh(meshId);
    mesh.inFlight++; // keeps the mesh's generation while the registration is on its way
    mesh.registering++;
    const dropped = this.dropAll(meshId);
    return { meshId, generation: mesh.generation, dropped, settled: false };
  }

  /**
   * The registration was answered: drops the mesh's answers again. True when
   * no other registration of the mesh arrived while it was on its way or is
   * still on its way, so what its answer says is all that changed since its
   * arrival.
   */
  registered(registration: Registration<R>): boolean {
    if (registration.settled) return false;
    registration.settled = true;
    const mesh = this.meshes.get(registration.meshId);
    if (!mesh) return false;
    mesh.inFlight--;
    mesh.registering--;
    this.dropAll(registration.meshId);
    return mesh.registering === 0 && mesh.generation === registration.generation + 1;
  }

  /**
   * Puts back an answer a registration dropped (updated to what it showed),
   * right after registered() said nothing else came in: a lookup that starts
   * from now on may be served it.
   */
  restore(meshId: string, dropped: Dropped<R>, answer: Answer): boolean {
    const mesh = this.mesh(meshId);
    const kept = this.keep(meshId, mesh, dropped.key, answer, dropped.request);
    if (kept) this.stats.restored++;
    return kept;
  }

  /** For a registration whose mesh cannot be read: it might be any mesh. */
  invalidateAll(): void {
    for (const meshId of [...this.meshes.keys()]) this.invalidate(meshId);
  }

  /** Bumps the mesh's generation and drops its answers; returns them, newest fill first. */
  private dropAll(meshId: string): Dropped<R>[] {
    const mesh = this.meshes.get(meshId);
    if (!mesh) return [];
    mesh.generation++;
    mesh.pending.clear();
    const dropped: Dropped<R>[] = [];
    for (const key of mesh.keys) {
      const entry = this.entries.get(key);
      if (!entry) continue;
      dropped.push({ key, request: entry.request, answer: entry });
      this.remove(key, entry);
    }
    this.forgetIfIdle(meshId, mesh);
    // Keys are in the order their answers were filled: newest first.
    return dropped.reverse();
  }

  /** Keeps an answer of the mesh if it may be kept; evicts the least recently used to make room. */
  private keep(meshId: string, mesh: MeshState, key: string, answer: Answer, request: R): boolean {
    const bytes = key.length + answer.body.byteLength + answer.headers.reduce((n, h) => n + h.length, 0) + entryOverheadBytes;
    const fits =
      answer.status === 200 &&
      answer.expiresAtMs > this.now() &&
      bytes <= this.maxBytes / 16 &&
      (mesh.keys.has(key) || mesh.keys.size < this.maxEntriesPerMesh);
    if (!fits || this.maxEntries <= 0) {
      this.forgetIfIdle(meshId, mesh);
      return false;
    }
    const old = this.entries.get(key);
    if (old) this.remove(key, old); // may forget the mesh's state when that was its only key: ask for it again
    const { status, headers, expiresAtMs } = answer;
    this.entries.set(key, { status, headers, body: ownBytes(answer.body), expiresAtMs, meshId, bytes, request });
    this.mesh(meshId).keys.add(key);
    this.bytes += bytes;
    this.evict();
    return true;
  }

  private mesh(meshId: string): MeshState {
    let mesh = this.meshes.get(meshId);
    if (!mesh) {
      mesh = { keys: new Set(), pending: new Map(), generation: 0, inFlight: 0, registering: 0 };
      this.meshes.set(meshId, mesh);
    }
    return mesh;
  }

  private settle(ticket: Ticket): MeshState | undefined {
    if (ticket.settled) return undefined;
    ticket.settled = true;
    const mesh = this.meshes.get(ticket.meshId);
    if (!mesh) return undefined;
    mesh.inFlight--;
    if (ticket.key !== undefined && mesh.pending.get(ticket.key) === ticket.pending) mesh.pending.delete(ticket.key);
    return mesh;
  }

  private forgetIfIdle(meshId: string, mesh: MeshState): void {
    if (mesh.keys.size === 0 && mesh.inFlight === 0) this.meshes.delete(meshId);
  }

  private remove(key: string, entry: Entry<R>): void {
    this.entries.delete(key);
    this.bytes -= entry.bytes;
    const mesh = this.meshes.get(entry.meshId);
    if (mesh) {
      mesh.keys.delete(key);
      this.forgetIfIdle(entry.meshId, mesh);
    }
  }

  private evict(): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.bytes <= this.maxBytes) return;
      this.remove(key, entry);
      this.stats.evictions++;
    }
  }
}

/**
 * The body in a buffer of its own. Small buffers (a socket read, a
 * Buffer.concat) are slices of 8 KiB pool slabs, and a kept slice keeps its
 * whole slab, with whatever else was cut from it, alive as long as the answer
 * is kept: about 2.7 KB per answer where the answers are ~450 B.
 */
export function ownBytes(body: Buffer): Buffer {
  if (body.byteOffset === 0 && body.buffer.byteLength === body.byteLength) return body;
  const own = Buffer.allocUnsafeSlow(body.byteLength);
  body.copy(own);
  return own;
}
