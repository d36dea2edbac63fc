// OpenTelemetry spans and log records as plain rows, and one trace as a tree:
// what `coral traces`/`coral logs` print, what the coral_query_traces,
// coral_get_trace and coral_query_logs tools answer and what the dashboard's
// Traces and Logs views show (browser-safe: no Node imports).
import type { OtelLogRecord, OtelSpan } from "@coral/proto/gen/coral/agent/v1/telemetry_pb";

export interface SpanRow {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  service: string;
  name: string;
  kind: string;
  start: string;
  durationMs: number;
  error: boolean;
  statusMessage: string;
  attributes: Record<string, unknown>;
}

/** An attributes_json field as an object ({} if it is not one: the agents store valid JSON). */
export function attributesOf(json: string): Record<string, unknown> {
  try {
    return JSON.parse(json || "{}") as Record<string, unknown>;
  } catch {
    return {};
  }
}

export function spanRow(s: OtelSpan): SpanRow {
  const attributes = attributesOf(s.attributesJson);
  return {
    traceId: s.traceId,
    spanId: s.spanId,
    parentSpanId: s.parentSpanId,
    service: s.service,
    name: s.name,
    kind: s.kind,
    start: new Date(Number(s.startUnixNano / 1_000_000n)).toISOString(),
    durationMs: Math.round(s.durationMs * 1000) / 1000,
    error: s.error,
    statusMessage: s.statusMessage,
    attributes,
  };
}

/** "250 ms", "10.0 ms", "2.50 ms". */
export const spanMs = (x: number) => (x >= 100 ? `${x.toFixed(0)} ms` : x >= 10 ? `${x.toFixed(1)} ms` : `${x.toFixed(2)} ms`);

export interface TraceTree {
  /** Depth-first, children under their parent by start time. */
  spans: { row: SpanRow; depth: number; offsetMs: number }[];
  /** From the first span's start to the last span's end. */
  totalMs: number;
  services: number;
}

/**
 * One trace's spans as a tree: children under their parent by start time;
 * spans whose parent is not kept here (another agent's window, or the root
 * not kept) hang from the top. Every span appears once.
 */
export function traceTree(rows: readonly SpanRow[]): TraceTree {
  const startMs = (r: SpanRow) => Date.parse(r.start);
  const t0 = Math.min(...rows.map(startMs));
  const t1 = Math.max(...rows.map((r) => startMs(r) + r.durationMs));
  const ids = new Set(rows.map((r) => r.spanId));
  const children = new Map<string, SpanRow[]>();
  for (const r of rows) {
    const parent = r.parentSpanId && ids.has(r.parentSpanId) ? r.parentSpanId : "";
    children.set(parent, [...(children.get(parent) ?? []), r]);
  }
  const spans: TraceTree["spans"] = [];
  const seen = new Set<string>();
  const byStart = (list: readonly SpanRow[]) => [...list].sort((a, b) => startMs(a) - startMs(b));
  const visit = (r: SpanRow, depth: number) => {
    if (seen.has(r.spanId)) return;
    seen.add(r.spanId);
    spans.push({ row: r, depth, offsetMs: startMs(r) - t0 });
    for (const child of byStart(children.get(r.spanId) ?? [])) visit(child, depth + 1);
  };
  for (const r of byStart(children.get("") ?? [])) visit(r, 0);
  // Parents that point at each other (a broken sender) reach no root: shown from the top too, never dropped.
  for (const r of byStart(rows)) visit(r, 0);
  return { spans, totalMs: rows.length ? Math.max(t1 - t0, 0.001) : 0, services: new Set(rows.map((r) => r.service)).size };
}

export interface LogRow {
  time: string;
  service: string;
  severity: string;
  severityNumber: number;
  body: string;
  traceId: string;
  spanId: string;
  attributes: Record<string, unknown>;
}

/** OpenTelemetry's severity number as a word, when the sender gave no text. */
function severityName(n: number): string {
  if (n >= 21) return "FATAL";
  if (n >= 17) return "ERROR";
  if (n >= 13) return "WARN";
  if (n >= 9) return "INFO";
  if (n >= 5) return "DEBUG";
  return n >= 1 ? "TRACE" : "";
}

export function logRow(l: OtelLogRecord): LogRow {
  const attributes = attributesOf(l.attributesJson);
  return {
    time: new Date(Number(l.timeUnixNano / 1_000_000n)).toISOString(),
    service: l.service,
    severity: l.severityText || severityName(l.severityNumber),
    severityNumber: l.severityNumber,
    body: l.body,
    traceId: l.traceId,
    spanId: l.spanId,
    attributes,
  };
}
