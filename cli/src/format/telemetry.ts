// `coral traces` and `coral logs` output: a span list, one trace as a
// waterfall, one line per log record. The rows and the trace tree are
// @coral/common/otel-rows (shared with the coral_query_traces,
// coral_get_trace and coral_query_logs tools and the dashboard).
import { spanMs, traceTree, type LogRow, type SpanRow } from "@coral/common/otel-rows";
import { colors, columns } from "./text.ts";

const clock = (iso: string) => iso.slice(11, 23);

export function formatSpans(rows: readonly SpanRow[], options: { color: boolean; truncated: boolean; unavailable: readonly string[] }): string {
  const c = colors(options.color);
  const out: string[] = [];
  if (rows.length === 0) out.push("No spans match. (Apps send OpenTelemetry to the agent: OTLP on 127.0.0.1:4317 gRPC or :4318 HTTP; errors, slow spans and a share of the rest are kept.)");
  else {
    const head = ["TIME", "SERVICE", "OPERATION", "DURATION", "STATUS", "TRACE"].map((h) => c.bold(h));
    const body = rows.map((r) => [clock(r.start), r.service, r.name, spanMs(r.durationMs), r.error ? c.red(`error${r.statusMessage ? `: ${r.statusMessage}` : ""}`) : "ok", r.traceId]);
    out.push(...columns(head, body));
  }
  if (options.truncated) out.push(c.dim("(more spans match: narrow the filters, or raise --limit)"));
  for (const u of options.unavailable) out.push(c.yellow(`not answered: ${u}`));
  return out.join("\n");
}

/** One trace as a tree, children under their parent by start time, with a bar for where each span ran. */
export function formatWaterfall(rows: readonly SpanRow[], options: { color: boolean; width?: number }): string {
  const c = colors(options.color);
  if (rows.length === 0) return "No spans of this trace are kept (it may be older than the agents' raw window, or not kept by their rules).";
  const width = options.width ?? 40;
  const tree = traceTree(rows);
  const total = tree.totalMs;
  const lines = tree.spans.map(({ row: r, depth, offsetMs }) => {
    const from = Math.floor((offsetMs / total) * width);
    const len = Math.max(1, Math.round((r.durationMs / total) * width));
    const bar = " ".repeat(Math.min(from, width - 1)) + "█".repeat(Math.min(len, width - Math.min(from, width - 1)));
    return [`${"  ".repeat(depth)}${r.name}`, r.service, spanMs(r.durationMs), r.error ? c.red(bar) : c.cyan(bar), r.error ? c.red(r.statusMessage || "error") : ""];
  });
  const head = [`trace ${rows[0]!.traceId}: ${rows.length} spans, ${tree.services} service${tree.services === 1 ? "" : "s"}, ${spanMs(total)}`];
  return [...head, ...columns(["OPERATION", "SERVICE", "DURATION", "TIMELINE", ""].map((h) => c.bold(h)), lines)].join("\n");
}

export function formatLogLine(r: LogRow, color: boolean): string {
  const c = colors(color);
  const sev = r.severity.padEnd(5);
  const painted = r.severityNumber >= 17 ? c.red(sev) : r.severityNumber >= 13 ? c.yellow(sev) : sev;
  return `${r.time.slice(11, 23)}  ${painted}  ${r.service}  ${r.body}${r.traceId ? c.dim(`  trace=${r.traceId}`) : ""}`;
}
