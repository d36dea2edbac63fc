// OpenTelemetry in: the spans the tail keep rules kept and the log records,
// appended in batches (one appender flush each), read back newest first
// with the filters `coral traces` and `coral logs` take, run here at the
// agent so only matches cross the mesh.
import { withAppender } from "@coral/common/duckdb";
import type { LogRecordRow, SpanRecord } from "../otlp/records.ts";
import { Where, all, checkLimit, date, newestPage, num, str, ts, type Conn, type Row } from "./sql.ts";

/** ns since the epoch → Date (ms precision; the ns stay in their own column). */
const nsDate = (ns: bigint) => new Date(Number(ns / 1_000_000n));

export async function recordSpans(conn: Conn, spans: readonly SpanRecord[]): Promise<number> {
  if (spans.length === 0) return 0;
  return withAppender(conn, "otlp_spans", (a) => {
    for (const s of spans) {
      a.appendVarchar(s.traceId);
      a.appendVarchar(s.spanId);
      a.appendVarchar(s.parentSpanId);
      a.appendVarchar(s.service);
      a.appendInteger(s.pid);
      a.appendVarchar(s.name);
      a.appendVarchar(s.kind);
      a.appendTimestamp(ts(nsDate(s.startNs)));
      a.appendBigInt(s.startNs);
      a.appendDouble(s.durationMs);
      a.appendBoolean(s.error);
      a.appendVarchar(s.statusMessage);
      a.appendVarchar(s.attributes);
      a.endRow();
    }
    return spans.length;
  });
}

export async function recordLogs(conn: Conn, logs: readonly LogRecordRow[]): Promise<number> {
  if (logs.length === 0) return 0;
  return withAppender(conn, "otlp_logs", (a) => {
    for (const l of logs) {
      a.appendTimestamp(ts(nsDate(l.timeNs)));
      a.appendBigInt(l.timeNs);
      a.appendVarchar(l.service);
      a.appendInteger(l.pid);
      a.appendInteger(l.severityNumber);
      a.appendVarchar(l.severityText);
      a.appendVarchar(l.body);
      a.appendVarchar(l.attributes);
      a.appendVarchar(l.traceId);
      a.appendVarchar(l.spanId);
      a.endRow();
    }
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

/** `%`, `_` and `\` taken literally in an ILIKE pattern. */
const likeLiteral = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

function spanOf(r: Row): SpanRecord {
  return {
    traceId: str(r.trace_id),
    spanId: str(r.span_id),
    parentSpanId: str(r.parent_span_id),
    service: str(r.service),
    pid: num(r.pid),
    name: str(r.name),
    kind: str(r.kind),
    startNs: BigInt(r.start_ns as bigint),
    endNs: BigInt(r.start_ns as bigint) + BigInt(Math.round(num(r.duration_ms) * 1e6)),
    durationMs: num(r.duration_ms),
    error: r.error === true,
    statusMessage: str(r.status_message),
    attributes: typeof r.attributes === "string" ? r.attributes : JSON.stringify(r.attributes),
  };
}

/** Newest `limit` spans that match, returned oldest first. */
export async function querySpans(conn: Conn, q: SpanQuery): Promise<{ rows: SpanRecord[]; truncated: boolean }> {
  const limit = checkLimit(q.limit);
  const where = new Where().eq("service", q.service).eq("trace_id", q.traceId).range("start_time", q.since, q.until);
  let sql = `SELECT * FROM otlp_spans ${where}`;
  const more: string[] = [];
  if (q.operation) {
    where.params.push(likeLiteral(q.operation));
    more.push(`name ILIKE $${where.params.length} ESCAPE '\\'`);
  }
  if (q.minDurationMs !== undefined) {
    where.params.push(q.minDurationMs);
    more.push(`duration_ms >= $${where.params.length}`);
  }
  if (q.errorsOnly) more.push("error");
  if (more.length) sql += `${where.toString() ? " AND " : " WHERE "}${more.join(" AND ")}`;
  const rows = await all(conn, `${sql} ORDER BY start_ns DESC LIMIT ${limit + 1}`, where.params);
  return newestPage(rows.map(spanOf), limit);
}

function logOf(r: Row): LogRecordRow & { timestamp: Date } {
  return {
    timestamp: date(r.timestamp),
    timeNs: BigInt(r.time_ns as bigint),
    service: str(r.service),
    pid: num(r.pid),
    severityNumber: num(r.severity_number),
    severityText: str(r.severity_text),
    body: str(r.body),
    attributes: typeof r.attributes === "string" ? r.attributes : JSON.stringify(r.attributes),
    traceId: str(r.trace_id),
    spanId: str(r.span_id),
  };
}

/** Newest `limit` log records that match, returned oldest first. */
export async function queryLogs(conn: Conn, q: LogQuery): Promise<{ rows: (LogRecordRow & { timestamp: Date })[]; truncated: boolean }> {
  const limit = checkLimit(q.limit);
  const where = new Where().eq("service", q.service).eq("trace_id", q.traceId).range("timestamp", q.since, q.until);
  let sql = `SELECT * FROM otlp_logs ${where}`;
  const more: string[] = [];
  if (q.minSeverity !== undefined) {
    where.params.push(q.minSeverity);
    more.push(`severity_number >= $${where.params.length}`);
  }
  if (q.grep) {
    where.params.push(likeLiteral(q.grep));
    more.push(`body ILIKE $${where.params.length} ESCAPE '\\'`);
  }
  if (more.length) sql += `${where.toString() ? " AND " : " WHERE "}${more.join(" AND ")}`;
  const rows = await all(conn, `${sql} ORDER BY time_ns DESC LIMIT ${limit + 1}`, where.params);
  return newestPage(rows.map(logOf), limit);
}
