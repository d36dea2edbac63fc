// Read commands against a local or remote colony: status, topology, events,
// metrics, history. Each takes --json and the remote options.
import { writeFile } from "node:fs/promises";
import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  ColonyService,
  GetHistoryResponseSchema,
  GetStatusResponseSchema,
  GetTopologyResponseSchema,
  QueryEventsResponseSchema,
  QueryMetricsResponseSchema,
  type QueryMetricsResponse,
} from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { Command, InvalidArgumentError } from "commander";
import { parseDuration } from "@coral/common/duration";
import { formatEvents } from "../format/events.ts";
import { formatHistory } from "../format/history.ts";
import { formatMetrics } from "../format/metrics.ts";
import { formatStatus } from "../format/status.ts";
import { formatTopology, topologyToDot } from "../format/topology.ts";
import { unaryClient, type UnaryClient } from "./read-client.ts";
import { UsageError, durationFlag } from "./options.ts";
import { explainError, resolveTarget, withRemoteOptions, type ColonyTarget, type RemoteOptions } from "./remote.ts";

export function useColor(): boolean {
  return Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
}

export function sinceOption(value: string): number {
  const parsed = parseDuration(value);
  if ("error" in parsed) throw new InvalidArgumentError(`${parsed.error}; use e.g. 30s, 10m, 1h, 7d`);
  return parsed.ms;
}

/** "14:05" (today, local time), "2026-11-23T14:05:00Z" or a duration ago ("10m"). */
export function atOption(value: string): Date {
  const clock = /^(\d{1,2}):(\d{2})(?::(\d{2}))?$/.exec(value);
  if (clock) {
    const d = new Date();
    d.setHours(Number(clock[1]), Number(clock[2]), Number(clock[3] ?? 0), 0);
    if (Number(clock[1]) > 23 || Number(clock[2]) > 59) throw new InvalidArgumentError("must be a time like 14:05");
    return d;
  }
  const ago = parseDuration(value);
  if (!("error" in ago)) return new Date(Date.now() - ago.ms);
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) throw new InvalidArgumentError("must be a time like 14:05, an ISO date, or a duration ago like 10m");
  return date;
}

export function printJson<D extends DescMessage>(schema: D, message: MessageShape<D>): void {
  console.log(JSON.stringify(toJson(schema, message, { alwaysEmitImplicit: true }), null, 2));
}

/** Runs `run` with a client of the colony the options name (the light read client: unary calls only). */
async function withColony<T>(options: RemoteOptions, run: (client: UnaryClient<typeof ColonyService>, target: ColonyTarget) => Promise<T>): Promise<T> {
  const target = await resolveTarget(options);
  try {
    return await run(unaryClient(ColonyService, target), target);
  } catch (err) {
    throw explainError(err, target);
  }
}

export function statusCommand(): Command {
  return withRemoteOptions(new Command("status").description("show the application's components, their health and versions")).action(
    async (opts: RemoteOptions) => {
      await withColony(opts, async (client, target) => {
        const res = await client.getStatus({});
        if (opts.json) printJson(GetStatusResponseSchema, res);
        else console.log(formatStatus(res, { color: useColor(), location: opts.colonyUrl ? target.url : "running locally" }));
      });
    },
  );
}

export function topologyCommand(): Command {
  return withRemoteOptions(new Command("topology").description("show which components call which (observed connections)"))
    .option("--export <file>", "write the graph as Graphviz dot")
    .action(async (opts: RemoteOptions & { export?: string }) => {
      await withColony(opts, async (client) => {
        const res = await client.getTopology({});
        if (opts.export) {
          await writeFile(opts.export, topologyToDot(res));
          if (!opts.json) console.log(`✓ Topology written to ${opts.export}`);
        }
        if (opts.json) printJson(GetTopologyResponseSchema, res);
        else console.log(formatTopology(res, { color: useColor() }));
      });
    });
}

export function eventsCommand(): Command {
  return withRemoteOptions(new Command("events").description("show events: deploys, restarts, crashes, health changes"))
    .option("--service <name>", "only this component")
    .option("--type <type>", "only this event type (deploy, restart, crash, health_changed, ...)")
    .addOption(durationFlag("--since <duration>", "how far back", sinceOption, 3600_000))
    .option("--limit <n>", "at most this many", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 10_000) throw new InvalidArgumentError("must be 1 to 10000");
      return n;
    }, 100)
    .action(async (opts: RemoteOptions & { service?: string; type?: string; since: number; limit: number }) => {
      await withColony(opts, async (client) => {
        const res = await client.queryEvents({
          service: opts.service ?? "",
          eventType: opts.type ?? "",
          since: timestampFromDate(new Date(Date.now() - opts.since)),
          limit: opts.limit,
        });
        // Nothing found: a name that is no component or event type is a mistake, not "no events".
        if (res.events.length === 0) {
          if (opts.service) await checkService(client, opts.service);
          if (opts.type) await checkEventType(client, opts.type);
        }
        if (opts.json) printJson(QueryEventsResponseSchema, res);
        else console.log(formatEvents(res, { color: useColor() }));
      });
    });
}

export function metricsCommand(): Command {
  return withRemoteOptions(new Command("metrics").description("show metric summaries of a component"))
    .argument("<service>", "component name, e.g. api")
    .argument("[metric]", "metric name, e.g. cpu_percent (default: all)")
    .addOption(durationFlag("--since <duration>", "how far back", sinceOption, 3600_000))
    .option("--interval <interval>", "1m, 5m, 15m, 1h or 1d (default: picked from --since)")
    .option("--raw", "raw points from the agents' local stores (about the last hour), through the colony")
    .option("--limit <n>", "with --raw: at most this many points per agent", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new InvalidArgumentError("must be 1 to 100000");
      return n;
    }, 1000)
    .action(async (service: string, metric: string | undefined, opts: RemoteOptions & { since: number; interval?: string; raw?: boolean; limit: number }) => {
      await withColony(opts, async (client) => {
        const res = await client.queryMetrics({
          service,
          metricName: metric ?? "",
          since: timestampFromDate(new Date(Date.now() - opts.since)),
          interval: opts.interval ?? "",
          raw: opts.raw ?? false,
          limit: opts.raw ? opts.limit : 0,
        });
        if (res.series.length === 0 && res.rawPoints.length === 0) await checkService(client, service);
        if (opts.json) printJson(QueryMetricsResponseSchema, res);
        else if (opts.raw) console.log(formatRawPoints(res));
        else console.log(formatMetrics(res, { color: useColor() }));
      });
    });
}

/** A usage error naming the known components when `service` is none of them. */
async function checkService(client: UnaryClient<typeof ColonyService>, service: string): Promise<void> {
  const names = [...new Set((await client.listServices({})).services.map((s) => s.name))].sort();
  if (names.includes(service)) return;
  throw new UsageError(
    `unknown component "${service}": ${names.length ? `the colony knows ${names.join(", ")}` : "no components are connected yet (coral connect <name> --port <port>)"}`,
  );
}

/** Event types the agents and the colony record; the colony's stored ones are added to them. */
export const knownEventTypes = [
  "process_found",
  "process_exited",
  "restart",
  "workers_changed",
  "health_changed",
  "metrics_scrape_failed",
  "metrics_scrape_recovered",
  "outbox.dropped",
  "deploy",
  "version_changed",
  "agent_registering",
  "agent_online",
  "agent_degraded",
  "agent_offline",
  "agent_expired",
  "ingest.dead_letter",
];

/** A usage error listing the event types when `type` is neither a known one nor one the colony has stored. */
async function checkEventType(client: UnaryClient<typeof ColonyService>, type: string): Promise<void> {
  if (knownEventTypes.includes(type)) return;
  const stored = (await client.queryEvents({ limit: 10_000 })).events.map((e) => e.eventType);
  const types = [...new Set([...knownEventTypes, ...stored])].sort();
  if (types.includes(type)) return;
  throw new UsageError(`unknown event type "${type}": use one of ${types.join(", ")}`);
}

function formatRawPoints(res: QueryMetricsResponse): string {
  const lines = res.rawPoints.map((p) => {
    const at = p.timestamp ? timestampDate(p.timestamp).toISOString().replace("T", " ").slice(0, 23) : "";
    const labels = Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(",");
    return `${at}  ${p.metricName.padEnd(24)} ${String(Number(p.value.toFixed(3))).padStart(14)}  ${p.agentId}${labels ? `  {${labels}}` : ""}`;
  });
  if (lines.length === 0) lines.push("No raw points in that range.");
  else lines.unshift(`${"TIME (UTC)".padEnd(23)}  ${"METRIC".padEnd(24)} ${"VALUE".padStart(14)}  AGENT`);
  for (const u of res.unavailable) lines.push(`! not answering: ${u}`);
  if (res.truncated) lines.push("(more points matched: raise --limit or narrow --since)");
  return lines.join("\n");
}

export function historyCommand(): Command {
  return withRemoteOptions(new Command("history").description("what the colony believed about a component's agent at any moment, and why it changed"))
    .argument("<service>", "component name")
    .option("--at <time>", "a moment: 14:05, an ISO date, or a duration ago like 10m (default: now)", atOption)
    .action(async (service: string, opts: RemoteOptions & { at?: Date }) => {
      await withColony(opts, async (client) => {
        const res = await client.getHistory({ service, at: opts.at ? timestampFromDate(opts.at) : undefined });
        if (opts.json) printJson(GetHistoryResponseSchema, res);
        else console.log(formatHistory(res, { color: useColor() }));
      });
    });
}

export { withColony };
