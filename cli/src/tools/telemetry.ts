// coral_query_traces, coral_get_trace and coral_query_logs: the OpenTelemetry
// spans and log records the agents received (OTLP) and kept, filtered at the
// agents through the colony, as `coral traces`, `coral traces show <id>` and
// `coral logs` print them. The filters are checked by the same functions as
// at the colony and the agents (@coral/common/telemetry-filters).
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { checkLogFilter, checkSpanFilter, severityNumbers, telemetryLimits } from "@coral/common/telemetry-filters";
import { z } from "zod";
import { logRow, spanMs, spanRow, traceTree, type LogRow, type SpanRow } from "@coral/common/otel-rows";
import { clip, defineTool, fitLines, iso, need, parseTime, sharedCheck, textBudgetChars, timeArg, timeRange, toolArgs } from "./common.ts";

const traceIdHint = "a trace id: 32 hex digits, from coral_query_traces or coral_query_logs";
const severities = ["trace", "debug", "info", "warn", "error", "fatal"] as const;
const noOtlp = "Apps send OpenTelemetry to their agent: OTLP on 127.0.0.1:4317 (gRPC) or :4318 (HTTP).";

/** The arguments coral_query_traces and coral_query_logs share. */
const common = {
  service: z.string().min(1).optional().describe("Only this service (the apps' OpenTelemetry service.name)"),
  since: timeArg('Start of the range: ISO time or a duration ago like "1h" (default 1h; agents keep about the last hours)').optional(),
  until: timeArg("End of the range: ISO time or a duration ago (default now)").optional(),
};

/** The shared arguments as the colony's check takes them (times as dates: timeArg has refused what parseTime cannot read). */
function checkedCommon(a: { service?: string; since?: string; until?: string; limit: number }) {
  const now = Date.now();
  return { service: a.service ?? "", since: a.since ? parseTime(a.since, now) : undefined, until: a.until ? parseTime(a.until, now) : undefined, limit: a.limit };
}

const limitArg = (what: string, byDefault: number) =>
  z.number().int().min(1).max(telemetryLimits.maxLimit).default(byDefault).describe(`At most this many ${what}, the newest (1-${telemetryLimits.maxLimit}, default ${byDefault})`);

function unavailableLines(unavailable: readonly string[]): string[] {
  return unavailable.map((u) => `! not answered: ${u} (its data is missing from this answer)`);
}

const spanLine = (r: SpanRow) =>
  `- ${iso(new Date(r.start))} ${r.service} "${clip(r.name, 100)}" ${spanMs(r.durationMs)} ${r.error ? `error${r.statusMessage ? `: ${clip(r.statusMessage, 120)}` : ""}` : "ok"} trace=${r.traceId}`;

export const queryTracesTool = defineTool({
  name: "coral_query_traces",
  title: "Query traces",
  description:
    "OpenTelemetry spans the agents received and kept (every error span's trace, every slow span's trace, a share of the rest), newest first: " +
    "time, service, operation, duration, error status and trace id. Filter by service, operation text, minimum duration and errors only. " +
    "Open one trace across services with coral_get_trace; its log records with coral_query_logs trace_id=<id>.",
  inputSchema: toolArgs({
    service: common.service,
    operation: z.string().min(1).optional().describe("Only span names containing this text (case-insensitive), e.g. checkout"),
    min_duration_ms: z.number().min(0).optional().describe("Only spans at least this slow, in ms (at most 86400000, a day)"),
    errors_only: z.boolean().optional().describe("Only spans that failed"),
    since: common.since,
    until: common.until,
    limit: limitArg("spans", 50),
  }).superRefine(
    sharedCheck((a) =>
      checkSpanFilter({ ...checkedCommon(a), operation: a.operation ?? "", minDurationMs: a.min_duration_ms ?? 0, errorsOnly: a.errors_only ?? false, traceId: "" }),
    ),
  ),
  readOnly: true,
  async run(ctx, args) {
    const range = timeRange(ctx, args.since, args.until, "1h");
    const res = await ctx.colony.queryTraces({
      filter: {
        service: args.service ?? "",
        operation: args.operation ?? "",
        minDurationMs: args.min_duration_ms ?? 0,
        errorsOnly: args.errors_only ?? false,
        since: timestampFromDate(range.since),
        until: timestampFromDate(range.until),
        limit: args.limit,
      },
    });
    // The colony answers oldest first; newest first reads better and keeps the newest when cut.
    const spans = res.spans.map(spanRow).reverse();
    const filters = [
      args.service ? `service=${args.service}` : "",
      args.operation ? `operation=${args.operation}` : "",
      args.min_duration_ms ? `min_duration_ms=${args.min_duration_ms}` : "",
      args.errors_only ? "errors_only" : "",
    ].filter(Boolean);
    const data = { since: iso(range.since), until: iso(range.until), truncated: res.truncated, unavailable: res.unavailable, spans };
    const head = `Spans ${iso(range.since)} → ${iso(range.until)}${filters.length ? ` (${filters.join(", ")})` : ""}: ${spans.length}${res.truncated ? "+" : ""} found, newest first.`;
    if (spans.length === 0)
      return {
        text: [head, `None kept that match. Try a longer since or fewer filters. ${noOtlp}`, ...unavailableLines(res.unavailable)].join("\n"),
        data,
      };
    const traces = new Set(spans.map((s) => s.traceId)).size;
    const errors = spans.filter((s) => s.error).length;
    const lines = [head, `${traces} trace(s), ${errors} error span(s), slowest ${spanMs(Math.max(...spans.map((s) => s.durationMs)))}.`];
    const { shown, omitted } = fitLines(spans.map(spanLine), textBudgetChars - lines.join("\n").length - 400);
    lines.push(...shown);
    if (res.truncated || omitted > 0)
      lines.push(
        `More spans match${omitted > 0 ? ` (${omitted} of this answer not shown to keep it short)` : ""}: narrow service/operation/min_duration_ms, ` +
          `or call again with until=${iso(new Date(spans[shown.length - 1]!.start))} for older ones.`,
      );
    lines.push(...unavailableLines(res.unavailable));
    return { text: lines.join("\n"), data };
  },
});

export const getTraceTool = defineTool({
  name: "coral_get_trace",
  title: "One trace across services",
  description:
    "Every kept span of one trace, from all agents, as a tree (children under their parent, by start time): operation, service, start offset " +
    "from the trace's start, duration and error status. Use it to see where a slow or failed request spent its time.",
  inputSchema: toolArgs({
    trace_id: z
      .string(need(traceIdHint))
      .trim()
      .toLowerCase()
      .regex(/^[0-9a-f]{32}$/, { message: `Must be ${traceIdHint}` })
      .describe("32 hex digits"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const res = await ctx.colony.queryTraces({ filter: { traceId: args.trace_id, limit: telemetryLimits.maxLimit } });
    const rows = res.spans.map(spanRow);
    if (rows.length === 0)
      return {
        text: [
          `Trace ${args.trace_id}: no spans kept (older than the agents' raw window, or not kept by their rules: errors, slow spans and a share of the rest).`,
          ...unavailableLines(res.unavailable),
        ].join("\n"),
        data: { traceId: args.trace_id, spans: [], unavailable: res.unavailable },
      };
    const tree = traceTree(rows);
    const errors = rows.filter((r) => r.error).length;
    const lines = [
      `Trace ${args.trace_id}: ${rows.length} span(s), ${tree.services} service(s), ${spanMs(tree.totalMs)} from ${iso(new Date(tree.spans[0]!.row.start))}${errors ? `, ${errors} error span(s)` : ""}. ` +
        "Tree (indent = child), each: operation [service] +start offset, duration:",
    ];
    const spanLines = tree.spans.map(
      ({ row: r, depth, offsetMs }) =>
        `${"  ".repeat(Math.min(depth, 20))}- ${clip(r.name, 100)} [${r.service}] +${spanMs(offsetMs)}, ${spanMs(r.durationMs)}${r.error ? `, error${r.statusMessage ? `: ${clip(r.statusMessage, 120)}` : ""}` : ""}`,
    );
    const { shown, omitted } = fitLines(spanLines, textBudgetChars - lines[0]!.length - 300);
    lines.push(...shown);
    if (omitted > 0) lines.push(`… ${omitted} later span(s) not shown to keep it short; coral_query_traces with a narrower operation or service lists them.`);
    lines.push(...unavailableLines(res.unavailable));
    return {
      text: lines.join("\n"),
      data: { traceId: args.trace_id, totalMs: tree.totalMs, services: tree.services, spans: tree.spans.map((s) => ({ ...s.row, depth: s.depth, offsetMs: s.offsetMs })), unavailable: res.unavailable },
    };
  },
});

const logLine = (r: LogRow) => `- ${iso(new Date(r.time))} ${r.severity || "-"} ${r.service} ${clip(r.body.replace(/\s+/g, " "), 300)}${r.traceId ? ` trace=${r.traceId}` : ""}`;

export const queryLogsTool = defineTool({
  name: "coral_query_logs",
  title: "Query logs",
  description:
    "OpenTelemetry log records the agents received, newest first (the newest `limit` of the range): time, severity, service, body and trace id. " +
    "Filter by service, minimum severity, body text (grep, case-insensitive) and trace id (the records of one request, e.g. from coral_query_traces).",
  inputSchema: toolArgs({
    service: common.service,
    severity: z.enum(severities, { error: `Must be one of ${severities.join(", ")}` }).optional().describe("At least this severe: trace, debug, info, warn, error or fatal"),
    grep: z.string().min(1).optional().describe("Only records whose body contains this text (case-insensitive)"),
    trace_id: z.string().optional().describe("Only the records of this trace (32 hex digits)"),
    since: common.since,
    until: common.until,
    limit: limitArg("records", 100),
  }).superRefine(
    sharedCheck((a) => checkLogFilter({ ...checkedCommon(a), minSeverity: 0, grep: a.grep ?? "", traceId: a.trace_id ?? "" })),
  ),
  readOnly: true,
  async run(ctx, args) {
    const range = timeRange(ctx, args.since, args.until, "1h");
    const res = await ctx.colony.queryLogs({
      filter: {
        service: args.service ?? "",
        minSeverity: args.severity ? severityNumbers[args.severity]! : 0,
        grep: args.grep ?? "",
        traceId: (args.trace_id ?? "").trim().toLowerCase(),
        since: timestampFromDate(range.since),
        until: timestampFromDate(range.until),
        limit: args.limit,
      },
    });
    // The colony answers oldest first; newest first, as the other tools answer (and kept when cut).
    const records = res.records.map(logRow).reverse();
    const filters = [
      args.service ? `service=${args.service}` : "",
      args.severity ? `severity>=${args.severity}` : "",
      args.grep ? `grep=${JSON.stringify(args.grep)}` : "",
      args.trace_id ? `trace_id=${args.trace_id}` : "",
    ].filter(Boolean);
    const data = { since: iso(range.since), until: iso(range.until), truncated: res.truncated, unavailable: res.unavailable, records };
    const head = `Log records ${iso(range.since)} → ${iso(range.until)}${filters.length ? ` (${filters.join(", ")})` : ""}: ${records.length}${res.truncated ? "+" : ""} found, newest first.`;
    if (records.length === 0)
      return { text: [head, `None match. Try a longer since or fewer filters. ${noOtlp}`, ...unavailableLines(res.unavailable)].join("\n"), data };
    const bySeverity = new Map<string, number>();
    for (const r of records) bySeverity.set(r.severity || "-", (bySeverity.get(r.severity || "-") ?? 0) + 1);
    const lines = [head, `By severity: ${[...bySeverity].sort((a, b) => b[1] - a[1]).map(([s, n]) => `${s} ${n}`).join(", ")}.`];
    const { shown, omitted } = fitLines(records.map(logLine), textBudgetChars - lines.join("\n").length - 400);
    lines.push(...shown);
    if (res.truncated || omitted > 0)
      lines.push(
        `Older records match too${omitted > 0 ? ` (${omitted} of this answer not shown to keep it short)` : ""}: narrow the filters, ` +
          `or call again with until=${iso(new Date(records[shown.length - 1]!.time))} for older ones.`,
      );
    lines.push(...unavailableLines(res.unavailable));
    return { text: lines.join("\n"), data };
  },
});
