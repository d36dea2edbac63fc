// The Durable Object that holds meshes: one per mesh id (hosted, MESH_BUCKETS
// unset) or one per bucket of meshes (self-hosted, `bucket:<n>`, see
// mesh-hash.ts). For each mesh it holds the colony registration and its
// agents' registrations, each with an expiry, plus the identity keys those
// registrations pinned, the bootstrap tokens already redeemed and the signed
// requests already used (each is good once). Everything is keyed by mesh id,
// so meshes that share an object share nothing else.
//
// Agents are the colony's: an agent registration must be signed by the key
// the mesh's colony pinned, so nobody else can reserve an agent id in a mesh.
//
// Reads come from memory (loaded once under blockConcurrencyWhile). Writes
// are queued and run together on the next turn of the object (see write()):
// workerd makes the writes of one turn one implicit transaction, so requests
// that arrive together, several meshes' included, share one commit and one
// fsync. No request answers before the writes it made or saw are flushed, and
// workerd's output gate holds every answer until they are durable. A refresh
// (same key, same fields) is one narrow UPDATE of one row. The single alarm is armed at the earliest moment something of any
// mesh must be forgotten, and moved only when that moment comes earlier; the
// handler recomputes everything from "now", so running it twice, or late, is
// harmless. Lookups filter by expiry themselves and never depend on the alarm
// having run.
import { DurableObject } from "cloudflare:workers";
import { Code } from "@connectrpc/connect";
import {
  agentFieldsJson,
  colonyFieldsJson,
  verify,
  type AgentRegistrationFields,
  type ColonyRegistrationFields,
  type Signature,
  type SignedDomain,
} from "@coral/proto";
import { readConfig, type DiscoveryConfig } from "./config.ts";
import { internalErrorMessage } from "./http.ts";
import { meshObjectName } from "./mesh-hash.ts";
import { fail, ok, type Result } from "./result.ts";

export type RegistrationKind = "colony" | "agent";

export interface ColonyRecord extends ColonyRegistrationFields {
  signature: Signature;
  observedIp: string;
}
export interface AgentRecord extends AgentRegistrationFields {
  signature: Signature;
  observedIp: string;
}
type AnyRecord = ColonyRecord | AgentRecord;

/** A registration as registerMany takes it. */
export type Registration = { kind: "colony"; record: ColonyRecord } | { kind: "agent"; record: AgentRecord };

export interface Stored<R> {
  record: R;
  lastSeenMs: number;
  expiresAtMs: number;
}

/**
 * One registration key of one mesh (its colony, or one agent): the identity
 * key it pinned and, until the alarm purges it, the registration itself. The
 * pin outlives the registration by the pin grace period.
 */
interface Entry {
  meshId: string;
  key: string;
  identityPubkey: string;
  lastSignedAtMs: bigint;
  /** The registration's expiry; the pin is claimable pinGraceMs later. */
  expiresAtMs: number;
  registration: { stored: Stored<AnyRecord>; fieldsText: string } | null;
}

/** A redeemed bootstrap token or a used signed request of one mesh, kept until it could not be used anyway. */
interface Used {
  meshId: string;
  id: string;
  expiresAtMs: number;
}

export interface RegisterOutcome {
  lastSeenMs: number;
  expiresAtMs: number;
  ttlSeconds: number;
  /** Same key and fields as the registration held: only the signature, the address and the times changed. */
  refresh: boolean;
}

const colonyKey = "colony:colony";

export class MeshRegistry extends DurableObject<DiscoveryEnv> {
  private readonly config: DiscoveryConfig;
  /** By `mesh id \n key`. */
  private readonly entries = new Map<string, Entry>();
  /** By `mesh id \n jti`. */
  private readonly usedTokens = new Map<string, Used>();
  /** Signatures of signed requests already accepted, until they fall out of the replay window; by `mesh id \n signature`. */
  private readonly usedRequests = new Map<string, Used>();
  /** Registrations held (not purged yet), as the Directory counts them. */
  private colonies = 0;
  private agents = 0;
  /** The name callers address this object by (a mesh id, or `bucket:<n>`); the Directory's key for its counts. */
  private objectName = "";
  /** A one-mesh object from before mesh ids were stored with every row, whose mesh id was never recorded. */
  private unnamedLegacy = false;
  private alarmAtMs: number | null = null;
  /** Writes queued for the next flush, and the flush that runs them. */
  private pendingWrites: Array<[query: string, ...bindings: SqlStorageValue[]]> = [];
  private flushed: Promise<void> | undefined;
  /** A report to the Directory not started yet: callers until it starts share it. */
  private queuedReport: Promise<void> | undefined;
  private lastReport: Promise<void> = Promise.resolve();
  /** A report to the Directory failed: the next registration, refresh or purge sends one again. */
  private reportOwed = false;

  constructor(ctx: DurableObjectState, env: DiscoveryEnv) {
    super(ctx, env);
    this.config = readConfig(env);
    ctx.blockConcurrencyWhile(async () => {
      const sql = ctx.storage.sql;
      sql.exec(`CREATE TABLE IF NOT EXISTS mesh_entries (
        mesh_id TEXT NOT NULL, key TEXT NOT NULL, identity_pubkey TEXT NOT NULL, signed_at_ms TEXT NOT NULL,
        signature TEXT NOT NULL, observed_ip TEXT NOT NULL, fields TEXT, last_seen_ms INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL, PRIMARY KEY (mesh_id, key)) WITHOUT ROWID`);
      sql.exec(`CREATE TABLE IF NOT EXISTS mesh_used_tokens (
        mesh_id TEXT NOT NULL, jti TEXT NOT NULL, expires_at_ms INTEGER NOT NULL, PRIMARY KEY (mesh_id, jti)) WITHOUT ROWID`);
      sql.exec(`CREATE TABLE IF NOT EXISTS mesh_used_requests (
        mesh_id TEXT NOT NULL, signature TEXT NOT NULL, expires_at_ms INTEGER NOT NULL, PRIMARY KEY (mesh_id, signature)) WITHOUT ROWID`);
      sql.exec("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)");
      ctx.storage.transactionSync(() => this.migrateOneMeshTables());
      for (const row of sql.exec<{ value: string }>("SELECT value FROM meta WHERE name = 'object_name'")) this.objectName = row.value;
      this.unnamedLegacy = this.objectName === "" && sql.exec("SELECT 1 FROM meta WHERE name = 'unnamed_legacy'").toArray().length > 0;
      for (const row of sql.exec<EntryRow>(
        "SELECT mesh_id, key, identity_pubkey, signed_at_ms, signature, observed_ip, fields, last_seen_ms, expires_at_ms FROM mesh_entries",
      )) {
        const entry = entryFromRow(row);
        this.entries.set(`${row.mesh_id}\n${row.key}`, entry);
        if (entry.registration) this.count(entry.key, 1);
      }
      for (const row of sql.exec<{ mesh_id: string; jti: string; expires_at_ms: number }>("SELECT mesh_id, jti, expires_at_ms FROM mesh_used_tokens"))
        this.usedTokens.set(`${row.mesh_id}\n${row.jti}`, { meshId: row.mesh_id, id: row.jti, expiresAtMs: row.expires_at_ms });
      for (const row of sql.exec<{ mesh_id: string; signature: string; expires_at_ms: number }>(
        "SELECT mesh_id, signature, expires_at_ms FROM mesh_used_requests",
      ))
        this.usedRequests.set(`${row.mesh_id}\n${row.signature}`, { meshId: row.mesh_id, id: row.signature, expiresAtMs: row.expires_at_ms });
      this.alarmAtMs = await ctx.storage.getAlarm();
    });
  }

  async registerColony(record: ColonyRecord): Promise<Result<RegisterOutcome>> {
    return this.register("colony", colonyKey, "colony-registration", colonyFieldsJson(record), record);
  }

  async registerAgent(record: AgentRecord): Promise<Result<RegisterOutcome>> {
    return this.register("agent", `agent:${record.agentId}`, "agent-registration", agentFieldsJson(record), record);
  }

  /**
   * Registrations that reached the front together (see registry-batch.ts),
   * in one call instead of one each. Each is checked and answered exactly as
   * registerColony or registerAgent answers it alone (they run as that many
   * concurrent calls would), and one that fails does not touch the others;
   * their writes share the object's next commit.
   */
  async registerMany(registrations: Registration[]): Promise<Array<Result<RegisterOutcome>>> {
    return Promise.all(
      registrations.map((r) =>
        (r.kind === "colony" ? this.registerColony(r.record) : this.registerAgent(r.record)).catch((err: unknown) => {
          // Alone, the error would reach the worker's caller, which logs it and answers this.
          console.error("discovery: unexpected error", err);
          return fail<RegisterOutcome>(Code.Internal, internalErrorMessage);
        }),
      ),
    );
  }

  async lookupColony(meshId: string): Promise<Stored<ColonyRecord> | null> {
    const id = this.adopt(meshId);
    // What it would answer may be a registration whose write is still queued.
    await this.settled();
    return this.live(id, colonyKey) as Stored<ColonyRecord> | null;
  }

  async lookupAgent(meshId: string, agentId: string): Promise<Stored<AgentRecord> | null> {
    const id = this.adopt(meshId);
    await this.settled();
    return this.live(id, `agent:${agentId}`) as Stored<AgentRecord> | null;
  }

  /**
   * Checks that a request (other than a registration) was signed by the key
   * this mesh's colony pinned, inside the replay window, and was not seen
   * before: a captured request cannot be sent again.
   */
  async verifyColonySignature(
    meshId: string,
    domain: SignedDomain,
    fields: Parameters<typeof verify>[1],
    signature: Signature,
  ): Promise<Result<null>> {
    const pin = this.entries.get(`${this.adopt(meshId)}\n${colonyKey}`);
    if (!pin) return this.refuse(Code.FailedPrecondition, `mesh ${meshId} has no registered colony; register the colony first`);
    if (pin.identityPubkey !== signature.identityPubkey)
      return this.refuse(Code.PermissionDenied, `request is not signed by the identity key that mesh ${meshId} pinned`);
    const skew = this.checkSkew(signature);
    if (skew) return skew;
    if (!(await verify(domain, fields, signature)))
      return fail(Code.PermissionDenied, "signature does not verify against the request; it was made over other content or with another key");
    // Synchronous from here to the write, so two copies racing cannot both pass.
    const usedKey = `${meshId}\n${signature.signature}`;
    if (this.usedRequests.has(usedKey))
      return this.refuse(Code.PermissionDenied, "this signed request was already used (replayed); sign a new one with a fresh timestamp");
    // After this instant the replay window refuses it anyway.
    const expiresAtMs = Number(signature.signedAtMs) + this.config.replayWindowMs;
    this.usedRequests.set(usedKey, { meshId, id: signature.signature, expiresAtMs });
    this.write("INSERT INTO mesh_used_requests (mesh_id, signature, expires_at_ms) VALUES (?, ?, ?)", meshId, signature.signature, expiresAtMs);
    this.nameObject(meshId);
    this.armAlarm(expiresAtMs);
    await this.settled();
    return ok(null);
  }

  /** Marks a bootstrap token of the mesh as used; refuses one that was used before. */
  async redeemToken(meshId: string, jti: string, expiresAtMs: number): Promise<Result<null>> {
    const usedKey = `${this.adopt(meshId)}\n${jti}`;
    if (this.usedTokens.has(usedKey)) return this.refuse(Code.PermissionDenied, `bootstrap token ${jti} was already used; ask the colony for a new one`);
    this.usedTokens.set(usedKey, { meshId, id: jti, expiresAtMs });
    this.write("INSERT INTO mesh_used_tokens (mesh_id, jti, expires_at_ms) VALUES (?, ?, ?)", meshId, jti, expiresAtMs);
    this.nameObject(meshId);
    this.armAlarm(expiresAtMs);
    await this.settled();
    return ok(null);
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    const grace = this.config.pinGraceMs;
    let purged = false;
    for (const [mapKey, entry] of this.entries) {
      if (entry.expiresAtMs + grace <= now) {
        // The pin's grace is over too (with or without a registration still held).
        if (entry.registration) this.count(entry.key, -1);
        purged ||= entry.registration !== null;
        this.entries.delete(mapKey);
        this.write("DELETE FROM mesh_entries WHERE mesh_id = ? AND key = ?", entry.meshId, entry.key);
      } else if (entry.registration && entry.expiresAtMs <= now) {
        this.count(entry.key, -1);
        purged = true;
        entry.registration = null;
        this.write("UPDATE mesh_entries SET fields = NULL WHERE mesh_id = ? AND key = ?", entry.meshId, entry.key);
      }
    }
    for (const [mapKey, used] of this.usedTokens) {
      if (used.expiresAtMs <= now) {
        this.usedTokens.delete(mapKey);
        this.write("DELETE FROM mesh_used_tokens WHERE mesh_id = ? AND jti = ?", used.meshId, used.id);
      }
    }
    for (const [mapKey, used] of this.usedRequests) {
      if (used.expiresAtMs <= now) {
        this.usedRequests.delete(mapKey);
        this.write("DELETE FROM mesh_used_requests WHERE mesh_id = ? AND signature = ?", used.meshId, used.id);
      }
    }
    this.alarmAtMs = null;
    const next = this.nextDeadline();
    if (next !== null) this.armAlarm(next);
    await this.settled();
    if (purged || this.reportOwed) await this.reportCounts();
  }

  private async register(
    kind: RegistrationKind,
    key: string,
    domain: SignedDomain,
    fields: Parameters<typeof verify>[1],
    record: AnyRecord,
  ): Promise<Result<RegisterOutcome>> {
    const meshId = this.adopt(record.meshId);
    const what = kind === "colony" ? `mesh ${meshId}` : `agent ${key.slice("agent:".length)}`;
    const skew = this.checkSkew(record.signature);
    if (skew) return skew;
    if (!(await verify(domain, fields, record.signature)))
      return fail(Code.PermissionDenied, "signature does not verify against the registration; it was made over other content or with another key");

    // Everything below is synchronous, so no other request interleaves
    // between the pin check and the write.
    if (kind === "agent") {
      const colonyPin = this.entries.get(`${meshId}\n${colonyKey}`);
      if (!colonyPin)
        return this.refuse(Code.FailedPrecondition, `mesh ${meshId} has no registered colony; its colony registers first and signs its agents' registrations`);
      if (colonyPin.identityPubkey !== record.signature.identityPubkey)
        return this.refuse(Code.PermissionDenied, `agent registrations in mesh ${meshId} must be signed by the identity key its colony pinned`);
    }
    const now = Date.now();
    const mapKey = `${meshId}\n${key}`;
    const entry = this.entries.get(mapKey);
    const current = this.live(meshId, key, now);
    // An agent's pin may name the mesh's previous colony key; the key checked above now speaks for it.
    if (entry && entry.identityPubkey !== record.signature.identityPubkey && kind === "colony") {
      const claimableAt = entry.expiresAtMs + this.config.pinGraceMs;
      if (current || now < claimableAt)
        return this.refuse(
          Code.PermissionDenied,
          `${what} is pinned to another identity key; ` +
            (current
              ? `the pinned registration keeps serving. A new key can claim it ${this.config.pinGraceMs / 1000}s after that registration expires`
              : `its registration expired at ${new Date(entry.expiresAtMs).toISOString()} and a new key can claim it at ${new Date(claimableAt).toISOString()}`),
        );
    } else if (entry && entry.identityPubkey === record.signature.identityPubkey && record.signature.signedAtMs <= entry.lastSignedAtMs) {
      return this.refuse(
        Code.PermissionDenied,
        `registration of ${what} is not newer than the last accepted one (replayed or out of order); sign it again with a fresh timestamp`,
      );
    }

    const expiresAtMs = now + this.config.ttlMs;
    const stored: Stored<AnyRecord> = { record, lastSeenMs: now, expiresAtMs };
    const fieldsText = encodeFields(record);
    const sig = record.signature;
    const held = entry?.registration ?? null;
    const refresh = entry !== undefined && held !== null && held.fieldsText === fieldsText;
    if (refresh) {
      // A refresh: the fields are those stored; only the signature, the address and the times change.
      this.write(
        "UPDATE mesh_entries SET identity_pubkey = ?, signed_at_ms = ?, signature = ?, observed_ip = ?, last_seen_ms = ?, expires_at_ms = ? WHERE mesh_id = ? AND key = ?",
        sig.identityPubkey,
        sig.signedAtMs.toString(),
        sig.signature,
        record.observedIp,
        now,
        expiresAtMs,
        meshId,
        key,
      );
    } else {
      this.write(
        `INSERT INTO mesh_entries (mesh_id, key, identity_pubkey, signed_at_ms, signature, observed_ip, fields, last_seen_ms, expires_at_ms)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (mesh_id, key) DO UPDATE SET identity_pubkey = excluded.identity_pubkey, signed_at_ms = excluded.signed_at_ms,
           signature = excluded.signature, observed_ip = excluded.observed_ip, fields = excluded.fields,
           last_seen_ms = excluded.last_seen_ms, expires_at_ms = excluded.expires_at_ms`,
        meshId,
        key,
        sig.identityPubkey,
        sig.signedAtMs.toString(),
        sig.signature,
        record.observedIp,
        fieldsText,
        now,
        expiresAtMs,
      );
    }
    this.entries.set(mapKey, {
      meshId,
      key,
      identityPubkey: sig.identityPubkey,
      lastSignedAtMs: sig.signedAtMs,
      expiresAtMs,
      registration: { stored, fieldsText },
    });
    this.nameObject(meshId);
    this.armAlarm(expiresAtMs);
    if (!held) this.count(key, 1);
    await this.settled();
    if (!held || this.reportOwed) await this.reportCounts();
    return ok({ lastSeenMs: now, expiresAtMs, ttlSeconds: Math.round(this.config.ttlMs / 1000), refresh });
  }

  /** A refusal that may rest on state whose write is still queued: answered once it ran. */
  private async refuse(code: Code, message: string): Promise<Result<never>> {
    await this.settled();
    return fail(code, message);
  }

  private checkSkew(signature: Signature): Result<never> | null {
    const skewMs = Number(signature.signedAtMs) - Date.now();
    if (Math.abs(skewMs) > this.config.replayWindowMs)
      return fail(
        Code.PermissionDenied,
        `signature timestamp is ${Math.round(Math.abs(skewMs) / 1000)}s ${skewMs > 0 ? "ahead of" : "behind"} discovery's clock ` +
          `(allowed: ${this.config.replayWindowMs / 1000}s); check the signer's clock and sign again`,
      );
    return null;
  }

  private live(meshId: string, key: string, now = Date.now()): Stored<AnyRecord> | null {
    const entry = this.entries.get(`${meshId}\n${key}`);
    return entry?.registration && entry.expiresAtMs > now ? entry.registration.stored : null;
  }

  private count(key: string, delta: 1 | -1): void {
    if (key === colonyKey) this.colonies += delta;
    else this.agents += delta;
  }

  /** Records the name callers address this object by, once: the alarm reports under it. */
  private nameObject(meshId: string): void {
    if (this.objectName) return;
    this.objectName = meshObjectName(meshId, this.config.meshBuckets);
    this.write("INSERT OR REPLACE INTO meta (name, value) VALUES ('object_name', ?)", this.objectName);
  }

  /**
   * Queues a write. The queue runs on the next turn of the object, after the
   * requests that arrived meanwhile have queued theirs: workerd commits the
   * writes of one turn as one implicit transaction, so they share a commit
   * instead of paying one fsync each. The in-memory state changes at once, so
   * a request that writes or reads it must await settled() before it answers.
   */
  private write(query: string, ...bindings: SqlStorageValue[]): void {
    this.pendingWrites.push([query, ...bindings]);
    this.flushed ??= new Promise<void>((done, fail) =>
      setTimeout(() => {
        const writes = this.pendingWrites;
        this.pendingWrites = [];
        this.flushed = undefined;
        try {
          const sql = this.ctx.storage.sql;
          for (const [q, ...b] of writes) sql.exec(q, ...b);
          done();
        } catch (err) {
          fail(err);
        }
      }, 0),
    );
  }

  /** Resolves once every write queued so far has run; workerd's output gate then holds answers until they are durable. */
  private settled(): Promise<void> {
    return this.flushed ?? Promise.resolve();
  }

  /**
   * Tells the Directory how many registrations this object holds. Absolute
   * counts, so a report sent twice is harmless. A report reads the counts
   * when it starts, so callers that changed them before then share it: many
   * new registrations at once in a bucket cost one Directory write, not one
   * each. Resolves once a report that includes the caller's change is done
   * or failed: the Directory only serves Health's totals, so its failure
   * must not fail a registration that is already stored; the counts are
   * owed and sent again with the next registration, refresh or purge.
   */
  private reportCounts(): Promise<void> {
    if (this.queuedReport) return this.queuedReport;
    const report = this.lastReport
      .catch(() => undefined)
      .then(async () => {
        this.queuedReport = undefined;
        const name = this.objectName || this.ctx.id.toString();
        const directory = this.env.DIRECTORY.get(this.env.DIRECTORY.idFromName("directory"));
        try {
          await directory.report(name, this.colonies, this.agents);
          this.reportOwed = false;
        } catch (err) {
          this.reportOwed = true;
          console.warn(`discovery: reporting ${name}'s counts to the Directory failed (sent again with its next registration): ${String(err)}`);
        }
      });
    this.queuedReport = report;
    this.lastReport = report;
    return report;
  }

  private nextDeadline(): number | null {
    let next = Infinity;
    const grace = this.config.pinGraceMs;
    for (const entry of this.entries.values()) next = Math.min(next, entry.registration ? entry.expiresAtMs : entry.expiresAtMs + grace);
    for (const used of this.usedTokens.values()) next = Math.min(next, used.expiresAtMs);
    for (const used of this.usedRequests.values()) next = Math.min(next, used.expiresAtMs);
    return Number.isFinite(next) ? next : null;
  }

  /**
   * Arms the alarm at `atMs` (rounded up to the cleanup interval, so a busy
   * object purges in batches) unless an earlier one is already armed: a
   * refresh, whose new expiry is later than the armed alarm, writes nothing.
   */
  private armAlarm(deadlineMs: number): void {
    const interval = this.config.cleanupIntervalMs;
    const atMs = interval > 0 ? Math.ceil(deadlineMs / interval) * interval : deadlineMs;
    if (this.alarmAtMs !== null && this.alarmAtMs <= atMs) return;
    this.alarmAtMs = atMs;
    void this.ctx.storage.setAlarm(atMs);
  }

  /**
   * The first mesh that calls a one-mesh object from before mesh ids were
   * stored, whose mesh id was never recorded, is its mesh: such an object only
   * ever served one (see migrateOneMeshTables). Returns the mesh id.
   */
  private adopt(meshId: string): string {
    if (!this.unnamedLegacy) return meshId;
    this.unnamedLegacy = false;
    for (const table of ["mesh_entries", "mesh_used_tokens", "mesh_used_requests"]) this.write(`UPDATE ${table} SET mesh_id = ? WHERE mesh_id = ''`, meshId);
    this.write("DELETE FROM meta WHERE name = 'unnamed_legacy'");
    const rekey = <V extends { meshId: string }>(map: Map<string, V>) => {
      for (const [mapKey, value] of [...map]) {
        if (value.meshId !== "") continue;
        map.delete(mapKey);
        value.meshId = meshId;
        map.set(`${meshId}${mapKey}`, value);
      }
    };
    rekey(this.entries);
    rekey(this.usedTokens);
    rekey(this.usedRequests);
    this.nameObject(meshId);
    return meshId;
  }

  /**
   * Objects written before meshes could share an object held one mesh, in
   * tables without a mesh id (`registrations`, `pins`, `used_tokens`,
   * `used_requests`, and the mesh id in `meta`). Their rows move to the
   * mesh-keyed tables under that mesh id, once, and the old tables go.
   */
  private migrateOneMeshTables(): void {
    const sql = this.ctx.storage.sql;
    const tables = new Set(
      sql.exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'").toArray().map((r) => r.name),
    );
    if (!tables.has("registrations") && !tables.has("pins")) return;
    let meshId = "";
    for (const row of sql.exec<{ value: string }>("SELECT value FROM meta WHERE name = 'mesh_id'")) meshId = row.value;
    if (meshId) sql.exec("INSERT OR REPLACE INTO meta (name, value) VALUES ('object_name', ?)", meshId);
    else sql.exec("INSERT OR REPLACE INTO meta (name, value) VALUES ('unnamed_legacy', '1')");
    if (tables.has("pins")) {
      sql.exec(
        `INSERT OR REPLACE INTO mesh_entries (mesh_id, key, identity_pubkey, signed_at_ms, signature, observed_ip, fields, last_seen_ms, expires_at_ms)
         SELECT ?, key, identity_pubkey, last_signed_at_ms, '', '', NULL, 0, last_expires_at_ms FROM pins`,
        meshId,
      );
      sql.exec("DROP TABLE pins");
    }
    if (tables.has("registrations")) {
      for (const row of sql.exec<{ key: string; record: string; last_seen_ms: number; expires_at_ms: number }>(
        "SELECT key, record, last_seen_ms, expires_at_ms FROM registrations",
      ).toArray()) {
        const record = decodeLegacyRecord(row.record);
        const sig = record.signature;
        sql.exec(
          `INSERT OR REPLACE INTO mesh_entries (mesh_id, key, identity_pubkey, signed_at_ms, signature, observed_ip, fields, last_seen_ms, expires_at_ms)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          meshId,
          row.key,
          sig.identityPubkey,
          sig.signedAtMs.toString(),
          sig.signature,
          record.observedIp,
          encodeFields(record),
          row.last_seen_ms,
          row.expires_at_ms,
        );
      }
      sql.exec("DROP TABLE registrations");
    }
    if (tables.has("used_tokens")) {
      sql.exec("INSERT OR REPLACE INTO mesh_used_tokens (mesh_id, jti, expires_at_ms) SELECT ?, jti, expires_at_ms FROM used_tokens", meshId);
      sql.exec("DROP TABLE used_tokens");
    }
    if (tables.has("used_requests")) {
      sql.exec(
        "INSERT OR REPLACE INTO mesh_used_requests (mesh_id, signature, expires_at_ms) SELECT ?, signature, expires_at_ms FROM used_requests",
        meshId,
      );
      sql.exec("DROP TABLE used_requests");
    }
  }
}

interface EntryRow extends Record<string, SqlStorageValue> {
  mesh_id: string;
  key: string;
  identity_pubkey: string;
  signed_at_ms: string;
  signature: string;
  observed_ip: string;
  fields: string | null;
  last_seen_ms: number;
  expires_at_ms: number;
}

function entryFromRow(row: EntryRow): Entry {
  const signature: Signature = { identityPubkey: row.identity_pubkey, signedAtMs: BigInt(row.signed_at_ms), signature: row.signature };
  const fieldsText = row.fields;
  const record = fieldsText === null ? null : ({ ...JSON.parse(fieldsText), signature, observedIp: row.observed_ip } as AnyRecord);
  return {
    meshId: row.mesh_id,
    key: row.key,
    identityPubkey: row.identity_pubkey,
    lastSignedAtMs: signature.signedAtMs,
    expiresAtMs: row.expires_at_ms,
    registration:
      record && fieldsText !== null ? { stored: { record, lastSeenMs: row.last_seen_ms, expiresAtMs: row.expires_at_ms }, fieldsText } : null,
  };
}

/** The registered fields (what a refresh repeats), without the signature and the observed address. */
function encodeFields(record: AnyRecord): string {
  const { signature: _s, observedIp: _o, ...fields } = record;
  return JSON.stringify(fields);
}

/** A whole record as the one-mesh tables stored it (signature included, signedAtMs as a string). */
function decodeLegacyRecord(text: string): AnyRecord {
  const record = JSON.parse(text) as AnyRecord & { signature: { signedAtMs: string } };
  return { ...record, signature: { ...record.signature, signedAtMs: BigInt(record.signature.signedAtMs) } };
}
