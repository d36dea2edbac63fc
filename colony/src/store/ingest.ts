// Exactly-once ingestion of telemetry batches.
//
// One call = one transaction; if anything fails it rolls back and nothing,
// not even the batch ids, is stored, so a redelivered message is stored
// exactly once later. Exactly once is by batch id: metric_summaries has no
// row key (since schema 11; its primary-key index was the largest single
// cost of a call), so a metric row is stored once because its batch is.
// Two ways through, the fast one first:
//  - fast (the steady state: every batch new): the batch ids go straight into
//    ingested_batches with an appender, without looking them up first; its
//    primary key refuses a redelivered batch, which fails the call (nothing
//    is stored), and it is redone the careful way.
//  - careful: the batch ids already stored (or repeated within the call) are
//    looked up and skipped. A redelivered batch makes only that call careful.
// The metric rows are appended to a connection-local TEMP staging table and
// moved with a plain INSERT … SELECT rather than appended to metric_summaries
// directly: an appender flushes on the main thread, while the INSERT runs on
// DuckDB's threads and lets the consumer decode the next fetch meanwhile.
// Events go through staging and ON CONFLICT (their ids may repeat);
// connection observations have no key and are appended. Profile and figures:
// bench/colony-ingest/profile-store.ts and the "Colony ingest" section of
// bench/BENCHMARKS.md.
import { DuckDBTimestampValue, type DuckDBAppender } from "@duckdb/node-api";
import type {
  ConnectionObservation,
  Event,
  MetricSummary,
  TelemetryBatch,
} from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { parseHostPort } from "./addresses.ts";
import { ingestProfiles, profileStagingDdl } from "./profiles.ts";
import { withAppender } from "@coral/common/duckdb";
import { all, exec, transaction, ts, type Conn } from "./sql.ts";
import { intervals, type IngestResult, type Interval } from "./types.ts";

/** A batch that cannot be stored as sent (the whole call is refused, nothing stored). */
export class IngestError extends Error {
  constructor(
    message: string,
    readonly batchId?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "IngestError";
  }
}

const stagingDdl = `
CREATE TEMP TABLE IF NOT EXISTS stage_metrics (
  timestamp TIMESTAMP, service_id TEXT, metric_name TEXT, interval TEXT,
  p50 DOUBLE, p95 DOUBLE, p99 DOUBLE, mean DOUBLE, max DOUBLE, min DOUBLE,
  count BIGINT, agent_id TEXT, labels TEXT
);
CREATE TEMP TABLE IF NOT EXISTS stage_events (
  event_id TEXT, agent_id TEXT, service_id TEXT, timestamp TIMESTAMP,
  event_type TEXT, details TEXT, batch_id TEXT
);
`;

/**
 * From the staging table into metric_summaries; $1 is the write generation. (Staging the per-batch strings as a
 * batch index, joined or looked up in a list parameter here, made filling the
 * staging table a quarter cheaper on the main thread but this statement about
 * a third dearer: not kept.)
 */
const insertStagedMetrics = `INSERT INTO metric_summaries
  (timestamp, service_id, metric_name, interval, p50, p95, p99, mean, max, min, count, agent_id, labels, gen)
SELECT timestamp, service_id, metric_name, interval, p50, p95, p99, mean, max, min, count, agent_id, labels::JSON, $1
FROM stage_metrics`;

/**
 * WAL size that triggers an automatic checkpoint. DuckDB's default, 16 MB, is
 * about three 50,000-row ingest calls: every second commit then also ran a
 * checkpoint (≈ 130–300 ms on top of ≈ 60 ms). A checkpoint costs about as
 * much whatever the WAL holds, so fewer of them are cheaper; 128 MB of WAL
 * replays in a few seconds after a crash.
 */
export const ingestCheckpointThreshold = "128MB";

/**
 * Prepares the writer connection: its staging tables (TEMP tables live per
 * connection) and the database's checkpoint threshold (a database-wide setting).
 */
export async function prepareIngest(writer: Conn): Promise<void> {
  await writer.run(stagingDdl);
  await writer.run(profileStagingDdl);
  await writer.run(`SET checkpoint_threshold = '${ingestCheckpointThreshold}'`);
}

const intervalSet = new Set<string>(intervals);
const maxBigInt = 2n ** 63n - 1n;

function micros(t: Timestamp | undefined, what: string, batchId: string): DuckDBTimestampValue {
  if (!t) throw new IngestError(`batch ${batchId}: ${what} has no timestamp`, batchId);
  return new DuckDBTimestampValue(t.seconds * 1_000_000n + BigInt(Math.trunc(t.nanos / 1000)));
}

function intervalOf(m: MetricSummary, batchId: string): Interval {
  const iv = m.interval === "" ? "1m" : m.interval;
  if (!intervalSet.has(iv)) {
    throw new IngestError(
      `batch ${batchId}: metric ${m.metricName} has interval "${m.interval}" (expected one of ${intervals.join(", ")})`,
      batchId,
    );
  }
  return iv as Interval;
}

/** Checks what can be checked without the database; throws IngestError. */
export function validateBatch(b: TelemetryBatch): void {
  if (!b.batchId) throw new IngestError("a batch has no batch_id");
  if (!b.agentId) throw new IngestError(`batch ${b.batchId}: no agent_id`, b.batchId);
  for (const m of b.metrics) {
    if (!m.metricName) throw new IngestError(`batch ${b.batchId}: a metric has no name`, b.batchId);
    intervalOf(m, b.batchId);
    micros(m.timestamp, `metric ${m.metricName}`, b.batchId);
    if (m.count > maxBigInt || m.count < -maxBigInt - 1n)
      throw new IngestError(`batch ${b.batchId}: metric ${m.metricName} has count ${m.count}, more than the store holds`, b.batchId);
  }
  for (const e of b.events) {
    if (!e.eventType) throw new IngestError(`batch ${b.batchId}: event ${e.eventId} has no event_type`, b.batchId);
    micros(e.timestamp, `event ${e.eventId}`, b.batchId);
  }
  for (const c of b.connections) {
    if (!c.remoteAddr) throw new IngestError(`batch ${b.batchId}: a connection has no remote_addr`, b.batchId);
    micros(c.observedAt, "a connection observation", b.batchId);
  }
  for (const w of b.profiles) {
    micros(w.timestamp, "a profile window", b.batchId);
    for (const st of w.stacks)
      for (const id of st.frameIds)
        if (id >= w.frames.length) throw new IngestError(`batch ${b.batchId}: a profile stack has frame id ${id}, out of range`, b.batchId);
  }
}

function appendMetric(a: DuckDBAppender, m: MetricSummary, service: string, b: TelemetryBatch): void {
  a.appendTimestamp(micros(m.timestamp, "metric", b.batchId));
  a.appendVarchar(service);
  a.appendVarchar(m.metricName);
  a.appendVarchar(intervalOf(m, b.batchId));
  a.appendDouble(m.p50);
  a.appendDouble(m.p95);
  a.appendDouble(m.p99);
  a.appendDouble(m.mean);
  a.appendDouble(m.max);
  a.appendDouble(m.min);
  a.appendBigInt(m.count);
  a.appendVarchar(b.agentId);
  let hasLabels = false;
  for (const _ in m.labels) {
    hasLabels = true;
    break;
  }
  if (hasLabels) a.appendVarchar(JSON.stringify(m.labels));
  else a.appendNull();
  a.endRow();
}

function appendEvent(a: DuckDBAppender, e: Event, index: number, service: string, b: TelemetryBatch): void {
  // Event ids are unique per agent; an agent that sends none gets a stable one
  // derived from the batch (batches are stored once, so this stays unique).
  a.appendVarchar(e.eventId || `${b.batchId}#${index}`);
  a.appendVarchar(b.agentId);
  a.appendVarchar(service);
  a.appendTimestamp(micros(e.timestamp, "event", b.batchId));
  a.appendVarchar(e.eventType);
  if (e.detailsJson === "") a.appendNull();
  else a.appendVarchar(e.detailsJson);
  a.appendVarchar(b.batchId);
  a.endRow();
}

function appendConnection(a: DuckDBAppender, c: ConnectionObservation, service: string, b: TelemetryBatch): void {
  const local = parseHostPort(c.localAddr);
  const remote = parseHostPort(c.remoteAddr);
  a.appendVarchar(b.agentId);
  a.appendVarchar(service);
  a.appendVarchar(c.localAddr);
  a.appendVarchar(c.remoteAddr);
  if (local.port === null) a.appendNull();
  else a.appendInteger(local.port);
  a.appendVarchar(remote.host);
  if (remote.port === null) a.appendNull();
  else a.appendInteger(remote.port);
  a.appendVarchar(c.state);
  a.appendTimestamp(micros(c.observedAt, "connection", b.batchId));
  // Agents that say where they saw connections (source set) send 0 for
  // "none open now, some opened during the interval"; older agents sent >= 1.
  a.appendInteger(c.count > 0 ? Math.min(c.count, 2_147_483_647) : c.source ? 0 : 1);
  a.appendVarchar(b.batchId);
  a.appendInteger(Math.min(c.opened, 2_147_483_647));
  if (c.source === "") a.appendNull();
  else a.appendVarchar(c.source);
  a.endRow();
}


/** The batch ids already stored, and a fresh write generation (one round trip). */
async function seenAndGen(conn: Conn, ids: string[]): Promise<{ seen: Set<string>; gen: bigint }> {
  const seen = new Set<string>();
  let gen = 0n;
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    const placeholders = chunk.map((_, j) => `$${j + 1}`).join(", ");
    const sql =
      i === 0
        ? `SELECT nextval('write_gen') AS gen,
                  (SELECT list(batch_id) FROM ingested_batches WHERE batch_id IN (${placeholders})) AS seen`
        : `SELECT NULL AS gen, (SELECT list(batch_id) FROM ingested_batches WHERE batch_id IN (${placeholders})) AS seen`;
    const [row] = await all(conn, sql, chunk);
    if (i === 0) gen = BigInt(row?.gen as bigint);
    for (const id of (row?.seen as string[] | null) ?? []) seen.add(id);
  }
  return { seen, gen };
}

/** A fresh write generation only (the fast way does not look batch ids up). */
async function nextGen(conn: Conn): Promise<bigint> {
  const [row] = await all(conn, "SELECT nextval('write_gen') AS gen");
  return BigInt(row?.gen as bigint);
}

async function serviceNames(conn: Conn, batches: TelemetryBatch[]): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  const missing = batches.filter((b) => !b.serviceName).map((b) => b.agentId);
  if (missing.length > 0) {
    const unique = [...new Set(missing)];
    const placeholders = unique.map((_, j) => `$${j + 1}`).join(", ");
    const rows = await all(
      conn,
      `SELECT agent_id, service_name FROM agents WHERE agent_id IN (${placeholders})`,
      unique,
    );
    for (const r of rows) names.set(String(r.agent_id), String(r.service_name));
  }
  for (const b of batches) {
    if (b.serviceName) continue;
    const known = names.get(b.agentId);
    if (!known) {
      throw new IngestError(
        `batch ${b.batchId}: no service_name and agent ${b.agentId} is not registered`,
        b.batchId,
      );
    }
  }
  return names;
}

function isConstraintError(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) if (/Constraint Error|duplicate key|constraint violation/i.test(e.message)) return true;
  return false;
}

/** Writes that must commit with the batches, or not at all (ingestion's dead letters). */
export type WithinIngest = (conn: Conn) => Promise<unknown>;

/** What made a fast call fail, when it was a repeat. */
interface FastOutcome {
  repeatedBatch: boolean;
}

/**
 * Runs on the writer connection (the caller queues it). `within` runs in the
 * same transaction: one commit for the batches and what rides along.
 */
export async function ingestBatches(conn: Conn, batches: readonly TelemetryBatch[], now = new Date(), within?: WithinIngest): Promise<IngestResult> {
  const outcome: FastOutcome = { repeatedBatch: false };
  try {
    return await ingestOnce(conn, batches, now, outcome, within);
  } catch (err) {
    if (!outcome.repeatedBatch || !isConstraintError(err)) throw err;
    return ingestOnce(conn, batches, now, null, within);
  }
}

/** Appends with a fresh appender; a failure (a repeated key) is noted in `outcome` before it is thrown. */
async function appendOrNote(conn: Conn, table: string, note: () => void, fill: (a: DuckDBAppender) => void): Promise<void> {
  try {
    await withAppender(conn, table, fill);
  } catch (err) {
    note();
    throw err;
  }
}

/** One transaction: the fast way when `fast` is given (it records why it failed), else the careful way. */
async function ingestOnce(conn: Conn, batches: readonly TelemetryBatch[], now: Date, fast: FastOutcome | null, within?: WithinIngest): Promise<IngestResult> {
  for (const b of batches) validateBatch(b);

  // Repeats inside one call: keep the first.
  const unique: TelemetryBatch[] = [];
  const inCall = new Set<string>();
  for (const b of batches) {
    if (inCall.has(b.batchId)) continue;
    inCall.add(b.batchId);
    unique.push(b);
  }

  const result: IngestResult = {
    stored: 0,
    duplicates: batches.length - unique.length,
    metricRows: 0,
    eventRows: 0,
    connectionRows: 0,
  };
  if (unique.length === 0) {
    if (within) await transaction(conn, () => within(conn));
    return result;
  }

  try {
    return await transaction(conn, async () => {
      await within?.(conn);
      let fresh = unique;
      let gen: bigint;
      if (fast) gen = await nextGen(conn);
      else {
        const looked = await seenAndGen(
          conn,
          unique.map((b) => b.batchId),
        );
        gen = looked.gen;
        fresh = unique.filter((b) => !looked.seen.has(b.batchId));
        result.duplicates += unique.length - fresh.length;
        if (fresh.length === 0) return result;
      }

      const names = await serviceNames(conn, fresh);
      const service = (b: TelemetryBatch): string => b.serviceName || (names.get(b.agentId) ?? b.agentId);
      const ingestedAt = ts(now);
      const recordBatchIds = (a: DuckDBAppender) => {
        for (const b of fresh) {
          a.appendVarchar(b.batchId);
          a.appendVarchar(b.agentId);
          a.appendTimestamp(ingestedAt);
          a.endRow();
        }
      };

      // The fast way records the batch ids first: a redelivered batch fails
      // here (primary key) before any row is written. This flush runs on the
      // main thread (appenders flush synchronously), but is small.
      if (fast) await appendOrNote(conn, "ingested_batches", () => (fast.repeatedBatch = true), recordBatchIds);

      const metricCount = fresh.reduce((n, b) => n + b.metrics.length, 0);
      const eventCount = fresh.reduce((n, b) => n + b.events.length, 0);
      const connCount = fresh.reduce((n, b) => n + b.connections.length, 0);

      if (metricCount > 0) {
        // The staging tables are empty here: they are emptied before every
        // commit, and a rollback discards what a failed call appended.
        await withAppender(conn, "stage_metrics", (a) => {
          for (const b of fresh) {
            const s = service(b);
            for (const m of b.metrics) appendMetric(a, m, s, b);
          }
        });
        result.metricRows = await exec(conn, insertStagedMetrics, [gen]);
        await exec(conn, "DELETE FROM stage_metrics");
      }

      if (eventCount > 0) {
        await withAppender(conn, "stage_events", (a) => {
          for (const b of fresh) {
            const s = service(b);
            b.events.forEach((e, i) => appendEvent(a, e, i, s, b));
          }
        });
        result.eventRows = await exec(
          conn,
          `INSERT INTO events (event_id, agent_id, service_id, timestamp, event_type, details, batch_id, ingested_at)
           SELECT event_id, agent_id, service_id, timestamp, event_type, details::JSON, batch_id, $1
           FROM stage_events
           ON CONFLICT DO NOTHING`,
          [ingestedAt],
        );
        await exec(conn, "DELETE FROM stage_events");
      }

      if (connCount > 0) {
        await withAppender(conn, "connection_observations", (a) => {
          for (const b of fresh) {
            const s = service(b);
            for (const c of b.connections) appendConnection(a, c, s, b);
          }
        });
        result.connectionRows = connCount;
      }

      await ingestProfiles(conn, fresh, service);

      // The careful way checked the ids above in this transaction, and the
      // writer is the only writer: these ids cannot conflict.
      if (!fast) await withAppender(conn, "ingested_batches", recordBatchIds);
      result.stored = fresh.length;
      return result;
    });
  } catch (err) {
    if (err instanceof IngestError) throw err;
    throw new IngestError(
      `ingest of ${unique.length} batch(es) failed, nothing was stored: ${(err as Error).message}`,
      undefined,
      { cause: err },
    );
  }
}
