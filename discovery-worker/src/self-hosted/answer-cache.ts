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

export interface Answer {
  status: number;
  /** Flat [name, value, name, value, …] list, as http.ServerResponse.writeHead takes it. */
  headers: string[];
  body: Buffer;
  expiresAtMs: number;
}

interface Entry extends Answer {
  meshId: string;
  bytes: number;
}

interface MeshState {
  keys: Set<string>;
  /** Bumped by each registration of the mesh. */
  generation: number;
  /** Lookups on their way to the worker; the state may go only when none is. */
  inFlight: number;
}

/** A lookup on its way to the worker: fill() or abandon() it once. */
export interface Ticket {
  meshId: string;
  generation: number;
  settled: boolean;
}

export interface AnswerCacheStats {
  hits: number;
  misses: number;
  fills: number;
  /** Answers not kept because a registration of their mesh came in while they were read. */
  staleFillsDropped: number;
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

export class AnswerCache {
  private readonly entries = new Map<string, Entry>();
  private readonly meshes = new Map<string, MeshState>();
  private bytes = 0;
  private readonly maxEntries: number;
  private readonly maxBytes: number;
  private readonly maxEntriesPerMesh: number;
  private readonly now: () => number;
  readonly stats: Omit<AnswerCacheStats, "entries"> = { hits: 0, misses: 0, fills: 0, staleFillsDropped: 0, evictions: 0 };

  constructor(options: AnswerCacheOptions) {
    this.maxEntries = options.maxEntries;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
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

  /** Call before forwarding a lookup of `meshId` that missed. */
  begin(meshId: string): Ticket {
    const mesh = this.mesh(meshId);
    mesh.inFlight++;
    return { meshId, generation: mesh.generation, settled: false };
  }

  /** Keeps the worker's answer, unless a registration of the mesh came in between or it is not cacheable. */
  fill(ticket: Ticket, key: string, answer: Answer): boolean {
    const mesh = this.settle(ticket);
    if (!mesh) return false;
    if (mesh.generation !== ticket.generation) {
      this.stats.staleFillsDropped++;
      this.forgetIfIdle(ticket.meshId, mesh);
      return false;
    }
    const bytes = key.length + answer.body.byteLength + answer.headers.reduce((n, h) => n + h.length, 0) + entryOverheadBytes;
    const fits =
      answer.status === 200 &&
      answer.expiresAtMs > this.now() &&
      bytes <= this.maxBytes / 16 &&
      (mesh.keys.has(key) || mesh.keys.size < this.maxEntriesPerMesh);
    if (!fits || this.maxEntries <= 0) {
      this.forgetIfIdle(ticket.meshId, mesh);
      return false;
    }
    const old = this.entries.get(key);
    if (old) this.remove(key, old); // may forget the mesh's state when that was its only key: ask for it again
    this.entries.set(key, { ...answer, meshId: ticket.meshId, bytes });
    this.mesh(ticket.meshId).keys.add(key);
    this.bytes += bytes;
    this.stats.fills++;
    this.evict();
    return true;
  }

  /** The lookup failed or its answer is not to be kept. */
  abandon(ticket: Ticket): void {
    const mesh = this.settle(ticket);
    if (mesh) this.forgetIfIdle(ticket.meshId, mesh);
  }

  /** A registration of the mesh is on its way or was answered: drop what is cached for it. */
  invalidate(meshId: string): void {
    const mesh = this.meshes.get(meshId);
    if (!mesh) return;
    mesh.generation++;
    for (const key of mesh.keys) {
      const entry = this.entries.get(key);
      if (entry) this.remove(key, entry);
    }
    this.forgetIfIdle(meshId, mesh);
  }

  /** For a registration whose mesh cannot be read: it might be any mesh. */
  invalidateAll(): void {
    for (const meshId of [...this.meshes.keys()]) this.invalidate(meshId);
  }

  private mesh(meshId: string): MeshState {
    let mesh = this.meshes.get(meshId);
    if (!mesh) {
      mesh = { keys: new Set(), generation: 0, inFlight: 0 };
      this.meshes.set(meshId, mesh);
    }
    return mesh;
  }

  private settle(ticket: Ticket): MeshState | undefined {
    if (ticket.settled) return undefined;
    ticket.settled = true;
    const mesh = this.meshes.get(ticket.meshId);
    if (mesh) mesh.inFlight--;
    return mesh;
  }

  private forgetIfIdle(meshId: string, mesh: MeshState): void {
    if (mesh.keys.size === 0 && mesh.inFlight === 0) this.meshes.delete(meshId);
  }

  private remove(key: string, entry: Entry): void {
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
