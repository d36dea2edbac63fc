// coral traces: OpenTelemetry spans the agents received (OTLP) and kept by
// their tail rules (every error trace, every slow span's trace, a share of
// the rest); filters run at the agents through the colony. `coral traces
// show <trace-id>` draws one trace as a waterfall across services.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import type { QueryTracesResponse } from "@coral/proto/gen/coral/colony/v1/telemetry_pb";
import type { OtelSpan } from "@coral/proto/gen/coral/agent/v1/telemetry_pb";
import { telemetryLimits } from "@coral/common/telemetry-filters";
import { Command, InvalidArgumentError, Option } from "commander";
import { colors, columns } from "../format/text.ts";
import { durationFlag, intOption } from "./options.ts";
import { unaryClient } from "./read-client.ts";
import { sinceOption, useColor } from "./read.ts";
import { explainError, resolveTarget, withRemoteOptions, type RemoteOptions } from "./remote.ts";

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

const ms = (x: number) => (x >= 100 ? `${x.toFixed(0)} ms` : x >= 10 ? `${x.toFixed(1)} ms` : `${x.toFixed(2)} ms`);
const clock = (iso: string) => iso.slice(11, 23);

export function formatSpans(rows: readonly SpanRow[], options: { color: boolean; truncated: boolean; unavailable: readonly string[] }): string {
  const c = colors(options.color);
  const out: string[] = [];
  if (rows.length === 0) out.push("No spans match. (Apps send OpenTelemetry to the agent: OTLP on 127.0.0.1:4317 gRPC or :4318 HTTP; errors, slow spans and a share of the rest are kept.)");
  else {
    const head = ["TIME", "SERVICE", "OPERATION", "DURATION", "STATUS", "TRACE"].map((h) => c.bold(h));
    const body = rows.map((r) => [clock(r.start), r.service, r.name, ms(r.durationMs), r.error ? c.red(`error${r.statusMessage ? `: ${r.statusMessage}` : ""}`) : "ok", r.traceId]);
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
  const startMs = (r: SpanRow) => Date.parse(r.start);
  const t0 = Math.min(...rows.map(startMs));
  const t1 = Math.max(...rows.map((r) => startMs(r) + r.durationMs));
  const total = Math.max(t1 - t0, 0.001);
  const ids = new Set(rows.map((r) => r.spanId));
  const children = new Map<string, SpanRow[]>();
  // Spans whose parent is not kept here (another agent's window, or the root not kept) hang from the top.
  for (const r of rows) {
    const parent = r.parentSpanId && ids.has(r.parentSpanId) ? r.parentSpanId : "";
    children.set(parent, [...(children.get(parent) ?? []), r]);
  }
  const lines: string[][] = [];
  const walk = (parent: string, depth: number, seen: Set<string>) => {
    for (const r of [...(children.get(parent) ?? [])].sort((a, b) => startMs(a) - startMs(b))) {
      if (seen.has(r.spanId)) continue;
      seen.add(r.spanId);
      const from = Math.floor(((startMs(r) - t0) / total) * width);
      const len = Math.max(1, Math.round((r.durationMs / total) * width));
      const bar = " ".repeat(Math.min(from, width - 1)) + "█".repeat(Math.min(len, width - Math.min(from, width - 1)));
      lines.push([`${"  ".repeat(depth)}${r.name}`, r.service, ms(r.durationMs), r.error ? c.red(bar) : c.cyan(bar), r.error ? c.red(r.statusMessage || "error") : ""]);
      walk(r.spanId, depth + 1, seen);
    }
  };
  walk("", 0, new Set());
  const services = new Set(rows.map((r) => r.service)).size;
  const head = [`trace ${rows[0]!.traceId}: ${rows.length} spans, ${services} service${services === 1 ? "" : "s"}, ${ms(total)}`];
  return [...head, ...columns(["OPERATION", "SERVICE", "DURATION", "TIMELINE", ""].map((h) => c.bold(h)), lines)].join("\n");
}

export function minDurationOption(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s)?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError("must be a duration such as 200ms or 1.5s");
  return Number(m[1]) * (m[2] === "s" ? 1000 : 1);
}

/** A --trace / <trace-id> value: 32 hex digits, lower-cased. */
export function traceIdArgument(value: string): string {
  const id = value.trim().toLowerCase();
  if (!/^[0-9a-f]{32}$/.test(id)) throw new InvalidArgumentError("must be a trace id: 32 hex digits");
  return id;
}

export function tracesCommand(): Command {
  const cmd = withRemoteOptions(new Command("traces").description("list OpenTelemetry spans the agents kept (errors, slow spans and a share of the rest)"))
    .addOption(new Option("--service <name>", "the apps' service.name"))
    .addOption(new Option("--operation <text>", "span names containing this text"))
    .addOption(new Option("--min-duration <duration>", "only spans at least this slow, e.g. 200ms").argParser(minDurationOption))
    .option("--errors", "only spans that failed")
    .addOption(durationFlag("--since <duration>", "how far back", sinceOption, 3_600_000))
    .addOption(new Option("--limit <n>", "newest spans shown").argParser(intOption(1, telemetryLimits.maxLimit)).default(50))
    .action(async (opts: RemoteOptions & { service?: string; operation?: string; minDuration?: number; errors?: boolean; since: number; limit: number }) => {
      const target = await resolveTarget(opts);
      try {
        const res: QueryTracesResponse = await unaryClient(ColonyService, target).queryTraces({
          filter: {
            service: opts.service ?? "",
            operation: opts.operation ?? "",
            minDurationMs: opts.minDuration ?? 0,
            errorsOnly: opts.errors ?? false,
            since: timestampFromDate(new Date(Date.now() - opts.since)),
            limit: opts.limit,
          },
        });
        const rows = res.spans.map(spanRow);
        if (opts.json) console.log(JSON.stringify({ spans: rows, truncated: res.truncated, unavailable: res.unavailable }, null, 2));
        else console.log(formatSpans(rows, { color: useColor(), truncated: res.truncated, unavailable: res.unavailable }));
      } catch (err) {
        throw explainError(err, target);
      }
    });
  cmd.addCommand(
    withRemoteOptions(new Command("show").description("one trace as a waterfall across services"))
      .argument("<trace-id>", "32 hex digits, from coral traces or a log record", traceIdArgument)
      .action(async (traceId: string, opts: RemoteOptions) => {
        const target = await resolveTarget(opts);
        try {
          const res = await unaryClient(ColonyService, target).queryTraces({ filter: { traceId, limit: telemetryLimits.maxLimit } });
          const rows = res.spans.map(spanRow);
          if (opts.json) console.log(JSON.stringify({ traceId, spans: rows, unavailable: res.unavailable }, null, 2));
          else console.log(formatWaterfall(rows, { color: useColor() }));
          if (rows.length === 0) process.exitCode = 1;
        } catch (err) {
          throw explainError(err, target);
        }
      }),
  );
  return cmd;
}
