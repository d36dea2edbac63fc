// coral logs: OpenTelemetry log records the agents received (OTLP), newest
// last; filters run at the agents through the colony. --follow keeps asking
// (every second) and prints what is new.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { severityNumbers, telemetryLimits } from "@coral/common/telemetry-filters";
import { Command, InvalidArgumentError, Option } from "commander";
import { setTimeout as sleep } from "node:timers/promises";
import { logRow, type LogRow } from "@coral/common/otel-rows";
import { formatLogLine } from "../format/telemetry.ts";
import { durationFlag, intOption } from "./options.ts";
import { unaryClient } from "./read-client.ts";
import { sinceOption, useColor } from "./read.ts";
import { explainError, resolveTarget, withRemoteOptions, type RemoteOptions } from "./remote.ts";
import { traceIdArgument } from "./traces.ts";

export function severityOption(value: string): number {
  const v = value.trim().toLowerCase();
  if (v in severityNumbers) return severityNumbers[v]!;
  throw new InvalidArgumentError(`must be one of ${Object.keys(severityNumbers).filter((k) => k !== "warning").join(", ")}`);
}

export function logsCommand(): Command {
  return withRemoteOptions(new Command("logs").description("show OpenTelemetry log records the agents received"))
    .addOption(new Option("--service <name>", "the apps' service.name"))
    .addOption(new Option("--severity <level>", "at least this severe: trace, debug, info, warn, error, fatal").argParser(severityOption))
    .addOption(new Option("--grep <text>", "records whose body contains this text (case-insensitive)"))
    .addOption(new Option("--trace <trace-id>", "the records of one trace").argParser(traceIdArgument))
    .addOption(durationFlag("--since <duration>", "how far back", sinceOption, 3_600_000))
    .addOption(new Option("--limit <n>", "newest records shown").argParser(intOption(1, telemetryLimits.maxLimit)).default(100))
    .option("-f, --follow", "keep printing new records until Ctrl+C")
    .action(async (opts: RemoteOptions & { service?: string; severity?: number; grep?: string; trace?: string; since: number; limit: number; follow?: boolean }) => {
      const target = await resolveTarget(opts);
      const client = unaryClient(ColonyService, target);
      const ask = (since: Date) =>
        client.queryLogs({ filter: { service: opts.service ?? "", minSeverity: opts.severity ?? 0, grep: opts.grep ?? "", traceId: opts.trace ?? "", since: timestampFromDate(since), limit: opts.limit } });
      const print = (rows: LogRow[]) => {
        for (const r of rows) console.log(opts.json ? JSON.stringify(r) : formatLogLine(r, useColor()));
      };
      try {
        const first = await ask(new Date(Date.now() - opts.since));
        const rows = first.records.map(logRow);
        if (opts.json && !opts.follow) console.log(JSON.stringify({ records: rows, truncated: first.truncated, unavailable: first.unavailable }, null, 2));
        else {
          if (rows.length === 0 && !opts.follow) console.log("No log records match. (Apps send OpenTelemetry logs to the agent: OTLP on 127.0.0.1:4317 gRPC or :4318 HTTP.)");
          print(rows);
          for (const u of first.unavailable) console.error(`not answered: ${u}`);
        }
        if (!opts.follow) return;
        // Follow: from the newest record seen; records at that same instant are told apart by their content.
        let last = first.records.at(-1)?.timeUnixNano ?? BigInt(Date.now()) * 1_000_000n;
        let atLast = new Set(first.records.filter((r) => r.timeUnixNano === last).map((r) => `${r.service}\0${r.body}\0${r.spanId}`));
        let stop = false;
        process.once("SIGINT", () => (stop = true));
        while (!stop) {
          await sleep(1000);
          const next = await ask(new Date(Number(last / 1_000_000n)));
          const fresh = next.records.filter((r) => r.timeUnixNano > last || (r.timeUnixNano === last && !atLast.has(`${r.service}\0${r.body}\0${r.spanId}`)));
          print(fresh.map(logRow));
          if (fresh.length) {
            const newest = fresh.at(-1)!.timeUnixNano;
            if (newest !== last) atLast = new Set();
            last = newest;
            for (const r of fresh) if (r.timeUnixNano === last) atLast.add(`${r.service}\0${r.body}\0${r.spanId}`);
          }
        }
      } catch (err) {
        throw explainError(err, target);
      }
    });
}
