// Telemetry that ingestion set aside instead of storing (dead letters).
//
// Each is recorded once (by its key: a redelivered message is not counted
// twice) with the first bytes of its payload; the per-agent count is bumped;
// and an "ingest.dead_letter" event is stored for the agent's service (at most
// one per agent per minute, so a flood of bad batches cannot flood the events).
// dead_letters keeps the newest rows only; the counts are never pruned.
import { blobValue } from "@duckdb/node-api";
import type { TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { ingestBatches } from "./ingest.ts";
import { all, date, exec, num, str, transaction, ts, type Conn } from "./sql.ts";
import type { IngestResult } from "./types.ts";

/** What ingestion hands over (the nats module's DeadLetter has this shape). */
export interface DeadLetterInput {
  key: string;
  at: Date;
  agentId: string;
  subject: string;
  batchId: string;
  reason: string;
  payload: Uint8Array;
  streamSeq: number;
  deliveries: number;
}

export interface DeadLetterRow {
  key: string;
  at: Date;
  agentId: string;
  subject: string;
  batchId: string | null;
  reason: string;
  /** The first bytes of the payload. */
  payload: Uint8Array;
  /** The whole payload's size. */
  payloadBytes: number;
  streamSeq: number | null;
  deliveries: number | null;
}

export interface IngestHealthRow {
  batchesStored: number;
  batchesSetAside: number;
  /** Set aside within the recent window (see readIngestHealth). */
  setAsideRecent: number;
  last: { agentId: string; at: Date; reason: string } | null;
}

export interface RecordDeadLettersOptions {
  /** Bytes of each payload kept (default 1024). */
  payloadBytes?: number;
  /** dead_letters rows kept, newest first (default 10,000). */
  keepRows?: number;
}

export const deadLetterEventType = "ingest.dead_letter";

const placeholders = (rows: number, cols: number, cast: Record<number, string> = {}) =>
  Array.from({ length: rows }, (_, r) => `(${Array.from({ length: cols }, (_, c) => `$${r * cols + c + 1}${cast[c] ?? ""}`).join(", ")})`).join(", ");

/**
 * Records set-aside messages in one transaction, a few statements whatever
 * their number (ingestion waits for it); returns how many were new. Runs on
 * the writer.
 */
export function recordDeadLetters(conn: Conn, letters: readonly DeadLetterInput[], options: RecordDeadLettersOptions = {}): Promise<number> {
  return transaction(conn, () => recordDeadLettersIn(conn, letters, options));
}

/**
 * Stores telemetry batches and records dead letters in one transaction (one
 * commit): what ingestion does with a fetch that held both. Runs on the writer.
 */
export function ingestWithDeadLetters(conn: Conn, batches: readonly TelemetryBatch[], letters: readonly DeadLetterInput[], options: RecordDeadLettersOptions = {}): Promise<IngestResult> {
  return ingestBatches(conn, batches, new Date(), (c) => recordDeadLettersIn(c, letters, options));
}

/** recordDeadLetters inside the caller's transaction. */
async function recordDeadLettersIn(conn: Conn, letters: readonly DeadLetterInput[], options: RecordDeadLettersOptions): Promise<number> {
  const keep = options.payloadBytes ?? 1024;
  const keepRows = options.keepRows ?? 10_000;
  // One row per key (a batch of letters may repeat one on redelivery).
  const unique = [...new Map(letters.map((l) => [l.key, l])).values()];
  if (unique.length === 0) return 0;
  const inserted = await all(
    conn,
    `INSERT INTO dead_letters (letter_key, "at", agent_id, subject, batch_id, reason, payload, payload_bytes, stream_seq, deliveries)
     VALUES ${placeholders(unique.length, 10)} ON CONFLICT DO NOTHING RETURNING letter_key, id`,
    unique.flatMap((l) => [l.key, ts(l.at), l.agentId, l.subject, l.batchId || null, l.reason, blobValue(l.payload.subarray(0, keep)), l.payload.length, l.streamSeq, l.deliveries]),
  );
  if (inserted.length === 0) return 0;
  const added = new Set(inserted.map((r) => str(r.letter_key)));
  const fresh = unique.filter((l) => added.has(l.key));

  // Per agent: how many, and the last one.
  const perAgent = new Map<string, { total: number; first: DeadLetterInput; last: DeadLetterInput }>();
  for (const l of fresh) {
    const a = perAgent.get(l.agentId);
    if (!a) perAgent.set(l.agentId, { total: 1, first: l, last: l });
    else {
      a.total++;
      if (l.at >= a.last.at) a.last = l;
    }
  }
  const agents = [...perAgent.entries()];
  await exec(
    conn,
    `INSERT INTO dead_letter_counts (agent_id, total, first_at, last_at, last_reason) VALUES ${placeholders(agents.length, 5)}
     ON CONFLICT (agent_id) DO UPDATE SET total = dead_letter_counts.total + excluded.total, last_at = excluded.last_at, last_reason = excluded.last_reason`,
    agents.flatMap(([agentId, a]) => [agentId, a.total, ts(a.first.at), ts(a.last.at), a.last.reason]),
  );

  // One event per agent and minute: the first letter of that minute speaks for it.
  const events = new Map<string, DeadLetterInput>();
  for (const l of fresh) {
    const minute = new Date(Math.floor(l.at.getTime() / 60_000) * 60_000).toISOString();
    const key = `${l.agentId}\n${minute}`;
    if (!events.has(key)) events.set(key, l);
  }
  // The service is looked up in the same statement (one round trip fewer on ingestion's path).
  const eventRows = [...events.entries()];
  await exec(
    conn,
    `INSERT INTO events (event_id, agent_id, service_id, timestamp, event_type, details, batch_id, ingested_at)
     SELECT v.event_id, v.agent_id, coalesce(a.service_name, nullif(v.agent_id, ''), '(unknown agent)'), v.t, v.event_type, v.details::JSON, NULL, v.t
     FROM (VALUES ${placeholders(eventRows.length, 5)}) AS v(event_id, agent_id, t, event_type, details)
     LEFT JOIN agents a ON a.agent_id = v.agent_id
     ON CONFLICT DO NOTHING`,
    eventRows.flatMap(([key, l]) => [
      `${deadLetterEventType}-${key.split("\n")[1]}`,
      l.agentId,
      ts(l.at),
      deadLetterEventType,
      JSON.stringify({ reason: l.reason, batch_id: l.batchId, subject: l.subject, stream_seq: l.streamSeq, deliveries: l.deliveries, payload_bytes: l.payload.length }),
    ]),
  );
  // Keep the newest rows; checked only when the ids cross a multiple of a tenth of the cap (at most 1000), so it is rarely paid.
  const ids = inserted.map((r) => num(r.id));
  const every = Math.max(1, Math.min(1000, Math.floor(keepRows / 10)));
  if (Math.floor(Math.max(...ids) / every) !== Math.floor((Math.min(...ids) - 1) / every))
    await exec(conn, "DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - $1", [keepRows]);
  return fresh.length;
}

/** Stored and set-aside counts; "recent" means at or after `recentSince`. One query (it is on `coral status`'s path). */
export async function readIngestHealth(conn: Conn, recentSince: Date): Promise<IngestHealthRow> {
  const [row] = await all(
    conn,
    `SELECT (SELECT count(*) FROM ingested_batches) AS stored,
            (SELECT count(*) FROM dead_letters WHERE "at" >= $1) AS recent,
            c.set_aside, c.last_agent, c.last_at, c.last_reason
     FROM (SELECT coalesce(sum(total), 0) AS set_aside, arg_max(agent_id, last_at) AS last_agent,
                  max(last_at) AS last_at, arg_max(last_reason, last_at) AS last_reason
           FROM dead_letter_counts) AS c`,
    [ts(recentSince)],
  );
  return {
    batchesStored: num(row?.stored),
    batchesSetAside: num(row?.set_aside),
    setAsideRecent: num(row?.recent),
    last: row?.last_at ? { agentId: str(row.last_agent), at: date(row.last_at), reason: str(row.last_reason) } : null,
  };
}

/** The newest dead letters first. */
export async function listDeadLetters(conn: Conn, limit = 100, agentId?: string): Promise<DeadLetterRow[]> {
  const rows = await all(
    conn,
    `SELECT letter_key, "at", agent_id, subject, batch_id, reason, payload, payload_bytes, stream_seq, deliveries
     FROM dead_letters ${agentId === undefined ? "" : "WHERE agent_id = $1"} ORDER BY id DESC LIMIT ${Math.max(1, Math.min(10_000, Math.floor(limit)))}`,
    agentId === undefined ? [] : [agentId],
  );
  return rows.map((r) => ({
    key: str(r.letter_key),
    at: date(r.at),
    agentId: str(r.agent_id),
    subject: str(r.subject),
    batchId: r.batch_id === null ? null : str(r.batch_id),
    reason: str(r.reason),
    payload: new Uint8Array(r.payload as Uint8Array),
    payloadBytes: num(r.payload_bytes),
    streamSeq: r.stream_seq === null ? null : num(r.stream_seq),
    deliveries: r.deliveries === null ? null : num(r.deliveries),
  }));
}
