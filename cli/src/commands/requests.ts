// coral requests <service>: RED per route (requests, 4xx, 5xx, rate, latency
// percentiles) from the metric summaries the agents send: the rows are
// @coral/common/request-rows (the coral_query_requests tool and the
// dashboard read the same), the table ../format/requests.ts.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { Command } from "commander";
import { requestRows } from "@coral/common/request-rows";
import { formatRequestRows } from "../format/requests.ts";
import { unaryClient } from "./read-client.ts";
import { UsageError, durationFlag } from "./options.ts";
import { sinceOption, useColor } from "./read.ts";
import { explainError, resolveTarget, withRemoteOptions, type RemoteOptions } from "./remote.ts";

export function requestsCommand(): Command {
  return withRemoteOptions(new Command("requests").description("show requests per route: count, errors, rate and latency (RED, from eBPF or the app's Coral SDK middleware)"))
    .argument("<service>", "component name, e.g. api")
    .addOption(durationFlag("--since <duration>", "how far back", sinceOption, 600_000))
    .action(async (service: string, opts: RemoteOptions & { since: number }) => {
      const target = await resolveTarget(opts);
      try {
        const client = unaryClient(ColonyService, target);
        const res = await client.queryMetrics({ service, metricName: "", since: timestampFromDate(new Date(Date.now() - opts.since)), interval: "", raw: false, limit: 0 });
        if (res.series.length === 0) {
          const names = [...new Set((await client.listServices({})).services.map((s) => s.name))].sort();
          if (!names.includes(service))
            throw new UsageError(
              `unknown component "${service}": ${names.length ? `the colony knows ${names.join(", ")}` : "no components are connected yet (coral connect <name> --port <port>)"}`,
            );
        }
        const rows = requestRows(res, opts.since);
        if (opts.json) console.log(JSON.stringify(rows, null, 2));
        else console.log(formatRequestRows(service, rows, { color: useColor(), since: formatSince(opts.since) }));
      } catch (err) {
        throw explainError(err, target);
      }
    });
}

function formatSince(msValue: number): string {
  if (msValue % 3_600_000 === 0) return `${msValue / 3_600_000}h`;
  if (msValue % 60_000 === 0) return `${msValue / 60_000}m`;
  return `${Math.round(msValue / 1000)}s`;
}
