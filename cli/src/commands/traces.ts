// coral traces: OpenTelemetry spans the agents received (OTLP) and kept by
// their tail rules (every error trace, every slow span's trace, a share of
// the rest); filters run at the agents through the colony. `coral traces
// show <trace-id>` draws one trace as a waterfall across services.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import type { QueryTracesResponse } from "@coral/proto/gen/coral/colony/v1/telemetry_pb";
import { telemetryLimits } from "@coral/common/telemetry-filters";
import { Command, InvalidArgumentError, Option } from "commander";
import { spanRow } from "@coral/common/otel-rows";
import { formatSpans, formatWaterfall } from "../format/telemetry.ts";
import { durationFlag, intOption } from "./options.ts";
import { unaryClient } from "./read-client.ts";
import { sinceOption, useColor } from "./read.ts";
import { explainError, resolveTarget, withRemoteOptions, type RemoteOptions } from "./remote.ts";

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
