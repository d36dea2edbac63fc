// OpenTelemetry in: the spans the tail keep rules kept and the log records,
// inserted in batches (one transaction each), read back newest first with
// the filters `coral traces` and `coral logs` take, run here at the agent so
// only matches cross the mesh. Times stay in OTLP's nanoseconds (bigint).
import type { LogRecordRow, SpanRecord } from "../otlp/records.ts";
import { bool, checkDate, checkLimit, isTrue, marks, newestPage, num, str, Where, type Conn, type Row } from "./sql.ts";

/** ns since the epoch → Date (ms precision; the ns stay in their own column). */
const nsDate = (ns: bigint) => new Date(Number(ns / 1_000_000n));
/** A Date as ns since the epoch, for comparing with the ns columns. */
export const dateNs = (d: Date) => BigInt(checkDate(d, "time").getTime()) * 1_000_000n;

const spanColumns = "trace_id, span_id, parent_span_id, service, pid, name, kind, start_ns, duration_ms, error, status_message, attributes";
const logColumns = "time_ns, service, pid, severity_number, severity_text, body, attributes, trace_id, span_id";

export function recordSpans(conn: Conn, spans: readonly SpanRecord[]): number {
  if (spans.length === 0) return 0;
  const insert = conn.stmt(`INSERT INTO otlp_spans (${spanColumns}) VALUES (${marks(12)})`);
  return conn.tx(() => {
    for (const s of spans)
      insert.run(s.traceId, s.spanId, s.parentSpanId, s.service, s.pid, s.name, s.kind, s.startNs, s.durationMs, bool(s.error), s.statusMessage, s.attributes);
    return spans.length;
  });
}

export function recordLogs(conn: Conn, logs: readonly LogRecordRow[]): number {
  if (logs.length === 0) return 0;
  const insert = conn.stmt(`INSERT INTO otlp_logs (${logColumns}) VALUES (${marks(9)})`);
  return conn.tx(() => {
    for (const l of logs) insert.run(l.timeNs, l.service, l.pid, l.severityNumber, l.severityText, l.body, l.attributes, l.traceId, l.spanId);
    return logs.length;
  });
}

export interface SpanQuery {
  service?: string;
  /** Substring of the span name, case-insensitive. */
  operation?: string;
  minDurationMs?: number;
  errorsOnly?: boolean;
  traceId?: string;
  since?: Date;
  until?: Date;
  limit: number;
}

export interface LogQuery {
  service?: string;
  /** At least this severity number (1–24; ERROR is 17). */
  minSeverity?: number;
  /** Substring of the body, case-insensitive. */
  grep?: string;
  traceId?: string;
  since?: Date;
  until?: Date;
  limit: number;
}

/** `%`, `_` and `\` taken literally in a LIKE pattern (SQLite's LIKE ignores ASCII case). */
const likeLiteral = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

/** [since, until) on a ns column. */
function nsRange(where: Where, column: string, since: Date | undefined, until: Date | undefined): Where {
  if (since !== undefined) where.add(`${column} >= ?`, dateNs(since));
  if (until !== undefined) where.add(`${column} < ?`, dateNs(until));
  return where;
}

function spanOf(r: Row): SpanRecord {
  const startNs = BigInt(r.start_ns as bigint);
  return {
    traceId: str(r.trace_id),
    spanId: str(r.span_id),
    parentSpanId: str(r.parent_span_id),
    service: str(r.service),
    pid: num(r.pid),
    name: str(r.name),
    kind: str(r.kind),
    startNs,
    endNs: startNs + BigInt(Math.round(num(r.duration_ms) * 1e6)),
    durationMs: num(r.duration_ms),
    error: isTrue(r.error),
    statusMessage: str(r.status_message),
    attributes: str(r.attributes),
  };
}

/** Newest `limit` spans that match, returned oldest first. */
export function querySpans(conn: Conn, q: SpanQuery): { rows: SpanRecord[]; truncated: boolean } {
  const limit = checkLimit(q.limit);
  const where = nsRange(new Where().eq("service", q.service).eq("trace_id", q.traceId), "start_ns", q.since, q.until);
  if (q.operation) where.add("name LIKE ? ESCAPE '\\'", likeLiteral(q.operation));
  if (q.minDurationMs !== undefined) where.add("duration_ms >= ?", q.minDurationMs);
  if (q.errorsOnly) where.add("error = 1");
  const rows = conn.all(`SELECT ${spanColumns} FROM otlp_spans ${where} ORDER BY start_ns DESC LIMIT ?`, [...where.params, limit + 1], true);
  return newestPage(rows.map(spanOf), limit);
}

function logOf(r: Row): LogRecordRow & { timestamp: Date } {
  const timeNs = BigInt(r.time_ns as bigint);
  return {
    timestamp: nsDate(timeNs),
    timeNs,
    service: str(r.service),
    pid: num(r.pid),
    severityNumber: num(r.severity_number),
    severityText: str(r.severity_text),
    body: str(r.body),
    attributes: str(r.attributes),
    traceId: str(r.trace_id),
    spanId: str(r.span_id),
  };
}

/** Newest `limit` log records that match, returned oldest first. */
export function queryLogs(conn: Conn, q: LogQuery): { rows: (LogRecordRow & { timestamp: Date })[]; truncated: boolean } {
  const limit = checkLimit(q.limit);
  const where = nsRange(new Where().eq("service", q.service).eq("trace_id", q.traceId), "time_ns", q.since, q.until);
  if (q.minSeverity !== undefined) where.add("severity_number >= ?", q.minSeverity);
  if (q.grep) where.add("body LIKE ? ESCAPE '\\'", likeLiteral(q.grep));
  const rows = conn.all(`SELECT ${logColumns} FROM otlp_logs ${where} ORDER BY time_ns DESC LIMIT ?`, [...where.params, limit + 1], true);
  return newestPage(rows.map(logOf), limit);
}
