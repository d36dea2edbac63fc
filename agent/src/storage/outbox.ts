// The outbox: telemetry batches waiting for a JetStream acknowledgement. A row
// is enqueued once per batch id, read in seq order, deleted by ack and pushed
// back with exponential backoff by fail(). A colony or NATS outage, or an agent
// restart, loses nothing, up to the outbox's bounds: trim() drops the oldest
// rows beyond a total size or age (defaults 64 MiB, 24 h) and says what it
// dropped, so the caller can count and report it. Nothing else deletes a row.
// Durability: the store runs WAL with synchronous=NORMAL, which a process kill
// cannot undo (a commit is in the WAL file once it returns); enqueue commits
// with synchronous=FULL on top, so an accepted batch survives a power loss
// too. An ack or a retry lost that way only means one more (deduped) delivery.
import { backoffMs } from "@coral/common/async";
import { blob, checkDate, checkLimit, date, marks, num, str, strOrNull, ts, type Conn, type Row } from "./sql.ts";
import type { BackoffPolicy, OutboxBounds, OutboxEntry, OutboxInput, OutboxRetry, OutboxTrim } from "./types.ts";

export const defaultBackoff: Readonly<BackoffPolicy> = Object.freeze({ baseMs: 1_000, capMs: 60_000 });

export function resolveBackoff(partial: Partial<BackoffPolicy> = {}): BackoffPolicy {
  const policy = { ...defaultBackoff, ...partial };
  for (const key of ["baseMs", "capMs"] as const) {
    const v = policy[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) {
      throw new RangeError(`backoff.${key} must be a positive number of milliseconds, got ${String(v)}`);
    }
  }
  if (policy.capMs < policy.baseMs) throw new RangeError("backoff.capMs must not be smaller than backoff.baseMs");
  return policy;
}

/**
 * Delay before the next attempt after `attempts` failures: the ceiling
 * min(cap, base * 2^(attempts-1)), with "equal jitter" (a uniformly random
 * point in [ceiling/2, ceiling]) so agents that lost NATS together do not
 * retry in lockstep, yet never retry sooner than half the ceiling.
 */
export function backoffDelay(attempts: number, policy: BackoffPolicy = defaultBackoff, random: () => number = Math.random): number {
  return backoffMs(attempts - 1, policy.baseMs, policy.capMs, { jitter: "equal", random });
}

const columns = "seq, batch_id, subject, payload, created_at, attempts, next_attempt_at, last_error";

function toEntry(r: Row): OutboxEntry {
  return {
    seq: num(r.seq),
    batchId: str(r.batch_id),
    subject: str(r.subject),
    // SQLite hands BLOBs back as Buffers; callers get a plain Uint8Array copy.
    payload: new Uint8Array(r.payload as Uint8Array),
    createdAt: date(r.created_at),
    attempts: num(r.attempts),
    nextAttemptAt: date(r.next_attempt_at),
    lastError: strOrNull(r.last_error),
  };
}

function checkBatchId(batchId: unknown): string {
  if (typeof batchId !== "string" || batchId === "") throw new TypeError("batchId must be a non-empty string");
  return batchId;
}

/** Throws a TypeError naming what is wrong with `input`; nothing is written then. */
export function checkOutboxInput(input: OutboxInput): void {
  checkBatchId(input.batchId);
  if (typeof input.subject !== "string" || input.subject === "") throw new TypeError("subject must be a non-empty string");
  if (!(input.payload instanceof Uint8Array)) throw new TypeError("payload must be a Uint8Array");
  checkDate(input.at ?? new Date(), "enqueue time");
}

/** Writer side. Idempotent on batchId while the batch is pending: returns false and keeps the first. Fsynced (see above). */
export function enqueue(conn: Conn, input: OutboxInput): boolean {
  checkOutboxInput(input);
  const at = ts(input.at ?? new Date());
  return conn.durable(
    () =>
      conn.run(
        `INSERT OR IGNORE INTO outbox (batch_id, subject, payload, created_at, attempts, next_attempt_at) VALUES (?, ?, ?, ?, 0, ?)`,
        [input.batchId, input.subject, blob(input.payload), at, at],
      ) > 0,
  );
}

export function due(conn: Conn, now: Date, limit: number): OutboxEntry[] {
  const rows = conn.all(`SELECT ${columns} FROM outbox WHERE next_attempt_at <= ? ORDER BY seq LIMIT ?`, [ts(checkDate(now, "now")), checkLimit(limit)]);
  return rows.map(toEntry);
}

export function peek(conn: Conn, limit: number): OutboxEntry[] {
  return conn.all(`SELECT ${columns} FROM outbox ORDER BY seq LIMIT ?`, [checkLimit(limit)]).map(toEntry);
}

export function ack(conn: Conn, batchId: string): boolean {
  return conn.run("DELETE FROM outbox WHERE batch_id = ?", [checkBatchId(batchId)]) > 0;
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message || error.name : String(error);
  return text.length > 2_000 ? `${text.slice(0, 2_000)}…` : text;
}

/** Writer side: the read and the update in one transaction. */
export function fail(conn: Conn, batchId: string, error: unknown, now: Date, policy: BackoffPolicy): OutboxRetry | null {
  checkDate(now, "now");
  checkBatchId(batchId);
  return conn.tx(() => {
    const row = conn.get("SELECT attempts FROM outbox WHERE batch_id = ?", [batchId]);
    if (!row) return null;
    const attempts = num(row.attempts) + 1;
    const nextAttemptAt = new Date(now.getTime() + backoffDelay(attempts, policy));
    conn.run("UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE batch_id = ?", [attempts, ts(nextAttemptAt), errorText(error), batchId]);
    return { attempts, nextAttemptAt };
  });
}

export function pendingCount(conn: Conn): number {
  return num(conn.get("SELECT count(*) AS n FROM outbox")?.n);
}

export const defaultOutboxBounds: Readonly<OutboxBounds> = Object.freeze({ maxBytes: 64 * 1024 * 1024, maxAgeMs: 24 * 60 * 60_000 });

export function resolveOutboxBounds(partial: Partial<OutboxBounds> = {}): OutboxBounds {
  const bounds = { ...defaultOutboxBounds, ...partial };
  for (const key of ["maxBytes", "maxAgeMs"] as const) {
    const v = bounds[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) throw new RangeError(`outbox bound ${key} must be a positive number, got ${String(v)}`);
  }
  return bounds;
}

/**
 * Writer side. Drops the oldest rows while the outbox holds more than
 * maxBytes of payload, and every row created before now - maxAgeMs.
 */
export function trim(conn: Conn, bounds: OutboxBounds, now: Date): OutboxTrim {
  const cutoff = ts(new Date(checkDate(now, "now").getTime() - bounds.maxAgeMs));
  // newer_bytes: this row and every newer one; beyond maxBytes, this row is among the oldest to go.
  const rows = conn.all(
    `SELECT seq, batch_id, created_at, bytes, newer_bytes FROM (
       SELECT seq, batch_id, created_at, length(payload) AS bytes,
              sum(length(payload)) OVER (ORDER BY seq DESC ROWS UNBOUNDED PRECEDING) AS newer_bytes
       FROM outbox)
     WHERE newer_bytes > ? OR created_at < ?
     ORDER BY seq`,
    [bounds.maxBytes, cutoff],
  );
  const result: OutboxTrim = { rows: 0, bytes: 0, byAge: 0, bySize: 0, oldest: null, batchIds: [] };
  if (rows.length === 0) return result;
  const seqs = rows.map((r) => num(r.seq));
  conn.tx(() => {
    for (let i = 0; i < seqs.length; i += 500) {
      const chunk = seqs.slice(i, i + 500);
      conn.run(`DELETE FROM outbox WHERE seq IN (${marks(chunk.length)})`, chunk);
    }
  });
  for (const r of rows) {
    result.rows++;
    result.bytes += num(r.bytes);
    if (num(r.newer_bytes) > bounds.maxBytes) result.bySize++;
    else result.byAge++;
    if (result.batchIds.length < 10) result.batchIds.push(str(r.batch_id));
  }
  result.oldest = date(rows[0]!.created_at);
  return result;
}

export function pendingBytes(conn: Conn): number {
  return num(conn.get("SELECT coalesce(sum(length(payload)), 0) AS n FROM outbox")?.n);
}
