// One Durable Object per mesh id. It holds the mesh's colony registration and
// its agents' registrations, each with an expiry, plus the identity keys those
// registrations pinned, the bootstrap tokens already redeemed and the signed
// requests already used (each is good once).
//
// Agents are the colony's: an agent registration must be signed by the key
// the mesh's colony pinned, so nobody else can reserve an agent id in a mesh.
//
// Reads come from memory (loaded once under blockConcurrencyWhile); every
// write goes to SQLite first. The single alarm is armed at the earliest moment
// something must be forgotten; the handler recomputes everything from "now",
// so running it twice, or late, is harmless. Lookups filter by expiry
// themselves and never depend on the alarm having run.
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

export interface Stored<R> {
  record: R;
  lastSeenMs: number;
  expiresAtMs: number;
}

interface Pin {
  identityPubkey: string;
  lastSignedAtMs: bigint;
  lastExpiresAtMs: number;
}

export interface RegisterOutcome {
  lastSeenMs: number;
  expiresAtMs: number;
  ttlSeconds: number;
}

const colonyId = "colony";

export class MeshRegistry extends DurableObject<DiscoveryEnv> {
  private readonly config: DiscoveryConfig;
  private readonly registrations = new Map<string, Stored<AnyRecord>>();
  private readonly pins = new Map<string, Pin>();
  private readonly usedTokens = new Map<string, number>();
  /** Signatures of signed requests already accepted, until they fall out of the replay window. */
  private readonly usedRequests = new Map<string, number>();
  private meshId = "";
  private alarmAtMs: number | null = null;

  constructor(ctx: DurableObjectState, env: DiscoveryEnv) {
    super(ctx, env);
    this.config = readConfig(env);
    ctx.blockConcurrencyWhile(async () => {
      const sql = ctx.storage.sql;
      sql.exec(`CREATE TABLE IF NOT EXISTS registrations (
        key TEXT PRIMARY KEY, record TEXT NOT NULL, last_seen_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL)`);
      sql.exec(`CREATE TABLE IF NOT EXISTS pins (
        key TEXT PRIMARY KEY, identity_pubkey TEXT NOT NULL, last_signed_at_ms TEXT NOT NULL, last_expires_at_ms INTEGER NOT NULL)`);
      sql.exec("CREATE TABLE IF NOT EXISTS used_tokens (jti TEXT PRIMARY KEY, expires_at_ms INTEGER NOT NULL)");
      sql.exec("CREATE TABLE IF NOT EXISTS used_requests (signature TEXT PRIMARY KEY, expires_at_ms INTEGER NOT NULL)");
      sql.exec("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)");
      for (const row of sql.exec<{ key: string; record: string; last_seen_ms: number; expires_at_ms: number }>(
        "SELECT key, record, last_seen_ms, expires_at_ms FROM registrations",
      )) {
        this.registrations.set(row.key, {
          record: decodeRecord(row.record),
          lastSeenMs: row.last_seen_ms,
          expiresAtMs: row.expires_at_ms,
        });
      }
      for (const row of sql.exec<{ key: string; identity_pubkey: string; last_signed_at_ms: string; last_expires_at_ms: number }>(
        "SELECT key, identity_pubkey, last_signed_at_ms, last_expires_at_ms FROM pins",
      )) {
        this.pins.set(row.key, {
          identityPubkey: row.identity_pubkey,
          lastSignedAtMs: BigInt(row.last_signed_at_ms),
          lastExpiresAtMs: row.last_expires_at_ms,
        });
      }
      for (const row of sql.exec<{ jti: string; expires_at_ms: number }>("SELECT jti, expires_at_ms FROM used_tokens")) {
        this.usedTokens.set(row.jti, row.expires_at_ms);
      }
      for (const row of sql.exec<{ signature: string; expires_at_ms: number }>("SELECT signature, expires_at_ms FROM used_requests")) {
        this.usedRequests.set(row.signature, row.expires_at_ms);
      }
      for (const row of sql.exec<{ value: string }>("SELECT value FROM meta WHERE name = 'mesh_id'")) this.meshId = row.value;
      this.alarmAtMs = await ctx.storage.getAlarm();
    });
  }

  async registerColony(record: ColonyRecord): Promise<Result<RegisterOutcome>> {
    return this.register("colony", colonyId, "colony-registration", colonyFieldsJson(record), record);
  }

  async registerAgent(record: AgentRecord): Promise<Result<RegisterOutcome>> {
    return this.register("agent", record.agentId, "agent-registration", agentFieldsJson(record), record);
  }

  lookupColony(): Stored<ColonyRecord> | null {
    return this.live(keyOf("colony", colonyId)) as Stored<ColonyRecord> | null;
  }

  lookupAgent(agentId: string): Stored<AgentRecord> | null {
    return this.live(keyOf("agent", agentId)) as Stored<AgentRecord> | null;
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
    const pin = this.pins.get(keyOf("colony", colonyId));
    if (!pin) return fail(Code.FailedPrecondition, `mesh ${meshId} has no registered colony; register the colony first`);
    if (pin.identityPubkey !== signature.identityPubkey)
      return fail(Code.PermissionDenied, `request is not signed by the identity key that mesh ${meshId} pinned`);
    const skew = this.checkSkew(signature);
    if (skew) return skew;
    if (!(await verify(domain, fields, signature)))
      return fail(Code.PermissionDenied, "signature does not verify against the request; it was made over other content or with another key");
    // Synchronous from here to the write, so two copies racing cannot both pass.
    if (this.usedRequests.has(signature.signature))
      return fail(Code.PermissionDenied, "this signed request was already used (replayed); sign a new one with a fresh timestamp");
    // After this instant the replay window refuses it anyway.
    const expiresAtMs = Number(signature.signedAtMs) + this.config.replayWindowMs;
    this.usedRequests.set(signature.signature, expiresAtMs);
    this.ctx.storage.sql.exec("INSERT INTO used_requests (signature, expires_at_ms) VALUES (?, ?)", signature.signature, expiresAtMs);
    this.armAlarm(expiresAtMs);
    return ok(null);
  }

  /** Marks a bootstrap token as used; refuses one that was used before. */
  redeemToken(jti: string, expiresAtMs: number): Result<null> {
    if (this.usedTokens.has(jti))
      return fail(Code.PermissionDenied, `bootstrap token ${jti} was already used; ask the colony for a new one`);
    this.usedTokens.set(jti, expiresAtMs);
    this.ctx.storage.sql.exec("INSERT INTO used_tokens (jti, expires_at_ms) VALUES (?, ?)", jti, expiresAtMs);
    this.armAlarm(expiresAtMs);
    return ok(null);
  }

  override async alarm(): Promise<void> {
    const now = Date.now();
    const sql = this.ctx.storage.sql;
    let removed = false;
    for (const [key, stored] of this.registrations) {
      if (stored.expiresAtMs <= now) {
        this.registrations.delete(key);
        sql.exec("DELETE FROM registrations WHERE key = ?", key);
        removed = true;
      }
    }
    for (const [key, pin] of this.pins) {
      if (!this.registrations.has(key) && pin.lastExpiresAtMs + this.config.pinGraceMs <= now) {
        this.pins.delete(key);
        sql.exec("DELETE FROM pins WHERE key = ?", key);
      }
    }
    for (const [jti, expiresAtMs] of this.usedTokens) {
      if (expiresAtMs <= now) {
        this.usedTokens.delete(jti);
        sql.exec("DELETE FROM used_tokens WHERE jti = ?", jti);
      }
    }
    for (const [signature, expiresAtMs] of this.usedRequests) {
      if (expiresAtMs <= now) {
        this.usedRequests.delete(signature);
        sql.exec("DELETE FROM used_requests WHERE signature = ?", signature);
      }
    }
    if (removed) await this.reportCounts(now);
    this.alarmAtMs = null;
    const next = this.nextDeadline();
    if (next !== null) this.armAlarm(next);
  }

  private async register(
    kind: RegistrationKind,
    id: string,
    domain: SignedDomain,
    fields: Parameters<typeof verify>[1],
    record: AnyRecord,
  ): Promise<Result<RegisterOutcome>> {
    const what = kind === "colony" ? `mesh ${record.meshId}` : `agent ${id}`;
    const skew = this.checkSkew(record.signature);
    if (skew) return skew;
    if (!(await verify(domain, fields, record.signature)))
      return fail(Code.PermissionDenied, "signature does not verify against the registration; it was made over other content or with another key");

    // Everything below is synchronous, so no other request interleaves
    // between the pin check and the write.
    if (kind === "agent") {
      const colonyPin = this.pins.get(keyOf("colony", colonyId));
      if (!colonyPin)
        return fail(Code.FailedPrecondition, `mesh ${record.meshId} has no registered colony; its colony registers first and signs its agents' registrations`);
      if (colonyPin.identityPubkey !== record.signature.identityPubkey)
        return fail(Code.PermissionDenied, `agent registrations in mesh ${record.meshId} must be signed by the identity key its colony pinned`);
    }
    const now = Date.now();
    const key = keyOf(kind, id);
    const current = this.live(key, now);
    // An agent's pin may name the mesh's previous colony key; the key checked above now speaks for it.
    const pin = this.pins.get(key);
    if (pin && pin.identityPubkey !== record.signature.identityPubkey && kind === "colony") {
      const claimableAt = pin.lastExpiresAtMs + this.config.pinGraceMs;
      if (current || now < claimableAt)
        return fail(
          Code.PermissionDenied,
          `${what} is pinned to another identity key; ` +
            (current
              ? `the pinned registration keeps serving. A new key can claim it ${this.config.pinGraceMs / 1000}s after that registration expires`
              : `its registration expired at ${new Date(pin.lastExpiresAtMs).toISOString()} and a new key can claim it at ${new Date(claimableAt).toISOString()}`),
        );
    } else if (pin && pin.identityPubkey === record.signature.identityPubkey && record.signature.signedAtMs <= pin.lastSignedAtMs) {
      return fail(
        Code.PermissionDenied,
        `registration of ${what} is not newer than the last accepted one (replayed or out of order); sign it again with a fresh timestamp`,
      );
    }

    if (!this.meshId) {
      this.meshId = record.meshId;
      this.ctx.storage.sql.exec("INSERT OR REPLACE INTO meta (name, value) VALUES ('mesh_id', ?)", record.meshId);
    }
    const expiresAtMs = now + this.config.ttlMs;
    this.registrations.set(key, { record, lastSeenMs: now, expiresAtMs });
    this.pins.set(key, {
      identityPubkey: record.signature.identityPubkey,
      lastSignedAtMs: record.signature.signedAtMs,
      lastExpiresAtMs: expiresAtMs,
    });
    const sql = this.ctx.storage.sql;
    sql.exec(
      "INSERT OR REPLACE INTO registrations (key, record, last_seen_ms, expires_at_ms) VALUES (?, ?, ?, ?)",
      key,
      encodeRecord(record),
      now,
      expiresAtMs,
    );
    sql.exec(
      "INSERT OR REPLACE INTO pins (key, identity_pubkey, last_signed_at_ms, last_expires_at_ms) VALUES (?, ?, ?, ?)",
      key,
      record.signature.identityPubkey,
      record.signature.signedAtMs.toString(),
      expiresAtMs,
    );
    this.armAlarm(expiresAtMs);
    if (!current) await this.reportCounts(now);
    return ok({ lastSeenMs: now, expiresAtMs, ttlSeconds: Math.round(this.config.ttlMs / 1000) });
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

  private live(key: string, now = Date.now()): Stored<AnyRecord> | null {
    const stored = this.registrations.get(key);
    return stored && stored.expiresAtMs > now ? stored : null;
  }

  private async reportCounts(now: number): Promise<void> {
    let colonies = 0;
    let agents = 0;
    for (const [key, stored] of this.registrations) {
      if (stored.expiresAtMs <= now) continue;
      if (key.startsWith("colony:")) colonies++;
      else agents++;
    }
    const directory = this.env.DIRECTORY.get(this.env.DIRECTORY.idFromName("directory"));
    await directory.report(this.meshId || this.ctx.id.toString(), colonies, agents);
  }

  private nextDeadline(): number | null {
    let next = Infinity;
    for (const stored of this.registrations.values()) next = Math.min(next, stored.expiresAtMs);
    for (const [key, pin] of this.pins)
      if (!this.registrations.has(key)) next = Math.min(next, pin.lastExpiresAtMs + this.config.pinGraceMs);
    for (const expiresAtMs of this.usedTokens.values()) next = Math.min(next, expiresAtMs);
    for (const expiresAtMs of this.usedRequests.values()) next = Math.min(next, expiresAtMs);
    return Number.isFinite(next) ? next : null;
  }

  /**
   * Arms the alarm at `atMs` (rounded up to the cleanup interval, so a busy
   * mesh purges in batches) unless an earlier one is already armed.
   */
  private armAlarm(deadlineMs: number): void {
    const interval = this.config.cleanupIntervalMs;
    const atMs = interval > 0 ? Math.ceil(deadlineMs / interval) * interval : deadlineMs;
    if (this.alarmAtMs !== null && this.alarmAtMs <= atMs) return;
    this.alarmAtMs = atMs;
    void this.ctx.storage.setAlarm(atMs);
  }
}

function keyOf(kind: RegistrationKind, id: string): string {
  return `${kind}:${id}`;
}

function encodeRecord(record: AnyRecord): string {
  return JSON.stringify(record, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
}

function decodeRecord(text: string): AnyRecord {
  const record = JSON.parse(text) as AnyRecord & { signature: { signedAtMs: string } };
  return { ...record, signature: { ...record.signature, signedAtMs: BigInt(record.signature.signedAtMs) } };
}
