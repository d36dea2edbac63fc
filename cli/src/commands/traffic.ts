// coral traffic: the requests the app's Coral SDK middleware sampled (a share
// of them, and every 5xx), kept by the service's agent and filtered there,
// through the colony.
//   coral traffic <service> [--path /checkout] [--method POST] [--status 5xx] [--since 10m] [--limit 50] [--json]
//   coral traffic show <id> [--json]
//   coral traffic configure <service> --sample-rate 0.05
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { TrafficService } from "@coral/proto/gen/coral/colony/v1/traffic_pb";
import { checkTrafficFilters, trafficLimits } from "@coral/common/traffic-filters";
import { Command, InvalidArgumentError, Option } from "commander";
import { UsageError, durationFlag, intOption } from "./options.ts";
import { unaryClient } from "./read-client.ts";
import { sinceOption, useColor } from "./read.ts";
import { explainError, resolveTarget, withRemoteOptions, type ColonyTarget, type RemoteOptions } from "./remote.ts";
import { formatTrafficList, formatTrafficSample, trafficRow, trafficSampleJson } from "../format/traffic.ts";

interface ListOptions extends RemoteOptions {
  path?: string;
  method?: string;
  status?: string;
  since: number;
  limit: number;
}

/** The agent's own failures (offline, unreachable) are not the colony's: say them as they are. */
function explain(err: unknown, target: ColonyTarget): Error {
  const ce = err instanceof ConnectError ? err : undefined;
  if (ce?.code === Code.Unavailable && /agent/.test(ce.rawMessage)) return new Error(ce.rawMessage);
  return explainError(err, target);
}

function rateOption(value: string): number {
  const n = Number(value);
  if (value.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError("must be a number from 0 to 1, e.g. 0.05");
  return n;
}

function formatSince(msValue: number): string {
  if (msValue % 3_600_000 === 0) return `${msValue / 3_600_000}h`;
  if (msValue % 60_000 === 0) return `${msValue / 60_000}m`;
  return `${Math.round(msValue / 1000)}s`;
}

function showCommand(): Command {
  return withRemoteOptions(new Command("show").description("print one sampled request and its response in full: headers and bodies"))
    .argument("<id>", "sample id, as coral traffic lists it (<service>.<hex>)")
    .action(async (id: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<RemoteOptions>();
      const target = await resolveTarget(opts);
      try {
        const res = await unaryClient(TrafficService, target).getTrafficSample({ id });
        if (!res.sample) throw new Error(`the colony answered no sample for ${id}`);
        if (opts.json) console.log(JSON.stringify({ service: res.serviceName, ...trafficSampleJson(res.sample) }, null, 2));
        else console.log(formatTrafficSample(res.sample, { color: useColor() }));
      } catch (err) {
        throw explain(err, target);
      }
    });
}

function configureCommand(): Command {
  return withRemoteOptions(new Command("configure").description("set the share of requests the service's SDK samples (every 5xx is kept whatever it is)"))
    .argument("<service>", "component name, e.g. api")
    .addOption(new Option("--sample-rate <rate>", "share of requests kept, 0 to 1 (0.05 = 5 %)").argParser(rateOption).makeOptionMandatory())
    .action(async (service: string, _opts: unknown, cmd: Command) => {
      const opts = cmd.optsWithGlobals<RemoteOptions & { sampleRate: number }>();
      const target = await resolveTarget(opts);
      try {
        const res = await unaryClient(TrafficService, target).configureTraffic({ serviceName: service, sampleRate: opts.sampleRate });
        if (opts.json) console.log(JSON.stringify({ service, agentId: res.agentId, sampleRate: res.sampleRate, deliveredToSdk: res.deliveredToSdk }, null, 2));
        else
          console.log(
            res.deliveredToSdk
              ? `${service}: sampling ${Math.round(res.sampleRate * 10000) / 100} % of requests (and every 5xx)`
              : `${service}: sample rate ${res.sampleRate} kept by the agent; the app's SDK is not reachable now, it gets the rate when it is`,
          );
      } catch (err) {
        throw explain(err, target);
      }
    });
}

export function trafficCommand(): Command {
  return withRemoteOptions(
    new Command("traffic").description("list sampled requests of a component (from the app's Coral SDK middleware), show one, or set the sample rate"),
  )
    .argument("<service>", "component name, e.g. api")
    .option("--path <prefix>", "only paths starting with this, e.g. /checkout")
    .option("--method <method>", "only this HTTP method, e.g. POST")
    .option("--status <status>", 'only this status ("404") or class ("5xx")')
    .addOption(durationFlag("--since <duration>", "how far back", sinceOption, 600_000))
    .addOption(new Option("--limit <n>", `at most this many samples (1-${trafficLimits.maxLimit})`).argParser(intOption(1, trafficLimits.maxLimit)).default(50))
    .addCommand(showCommand())
    .addCommand(configureCommand())
    .action(async (service: string, opts: ListOptions) => {
      // The colony and the agent check again; a mistake is said before anything is asked.
      try {
        checkTrafficFilters({ pathPrefix: opts.path ?? "", method: opts.method ?? "", status: opts.status ?? "", limit: opts.limit });
      } catch (err) {
        throw new UsageError(`--${(err as Error).message.replace(/^path_prefix/, "path")}`);
      }
      const target = await resolveTarget(opts);
      try {
        const res = await unaryClient(TrafficService, target).queryTraffic({
          serviceName: service,
          pathPrefix: opts.path ?? "",
          method: opts.method ?? "",
          status: opts.status ?? "",
          since: timestampFromDate(new Date(Date.now() - opts.since)),
          limit: opts.limit,
        });
        if (opts.json) console.log(JSON.stringify(res.samples.map(trafficRow), null, 2));
        else console.log(formatTrafficList(service, res.samples, { color: useColor(), since: formatSince(opts.since), sampleRate: res.sampleRate, truncated: res.truncated }));
      } catch (err) {
        throw explain(err, target);
      }
    });
}
