// coral requests <service>: RED per route (requests, 4xx, 5xx, rate, latency
// percentiles) from the metric summaries the agents send. The agent's eBPF
// request tracer records one metric per method, status class and route, named
// `http_request_duration_ms:GET:2xx:/users/:id` (the colony keys summaries by
// name; see agent/src/observe/http/metric-name.ts, whose decoding is repeated
// here): count = requests, p50/p95/p99 = latency in ms. The app's Coral SDK
// middleware writes the same series (the agent then leaves eBPF's out) with
// an HTTP_SDK_SOURCE_METRIC series beside them: summaries of the same
// interval as one of its points are the SDK's.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ColonyService, type QueryMetricsResponse } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { Command } from "commander";
import { HTTP_SDK_SOURCE_METRIC, parseRequestMetricName } from "@coral/common/http-metric-name";
import { colors, columns } from "../format/text.ts";
import { unaryClient } from "./read-client.ts";
import { UsageError, durationFlag } from "./options.ts";
import { sinceOption, useColor } from "./read.ts";
import { explainError, resolveTarget, withRemoteOptions, type RemoteOptions } from "./remote.ts";

export interface RequestRow {
  method: string;
  route: string;
  requests: number;
  "4xx": number;
  "5xx": number;
  /** Requests per second over the window (from its first summary, at most --since). */
  ratePerSec: number;
  /** Latency (ms): exact within one summary interval; over several, their count-weighted mean. */
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  /** Who counted: eBPF, the SDK middleware, or both at different times in the window. */
  source: RequestSource;
}

export type RequestSource = "ebpf" | "sdk" | "sdk+ebpf";

/** One row per method and route, busiest first. */
export function requestRows(res: QueryMetricsResponse, windowMs: number, now = Date.now()): RequestRow[] {
  interface Acc {
    row: RequestRow;
    w50: number;
    w95: number;
    w99: number;
    sdk: number;
    ebpf: number;
  }
  const byRoute = new Map<string, Acc>();
  let first = now;
  const sdkIntervals = new Set<string>();
  for (const s of res.series) {
    if (s.metricName !== HTTP_SDK_SOURCE_METRIC) continue;
    for (const p of s.points) if (p.timestamp) sdkIntervals.add(`${p.timestamp.seconds}.${p.timestamp.nanos}`);
  }
  for (const s of res.series) {
    const key = parseRequestMetricName(s.metricName);
    if (!key) continue;
    const id = `${key.method} ${key.route}`;
    let acc = byRoute.get(id);
    if (!acc) {
      acc = { row: { method: key.method, route: key.route, requests: 0, "4xx": 0, "5xx": 0, ratePerSec: 0, p50Ms: 0, p95Ms: 0, p99Ms: 0, source: "ebpf" }, w50: 0, w95: 0, w99: 0, sdk: 0, ebpf: 0 };
      byRoute.set(id, acc);
    }
    for (const p of s.points) {
      const n = Number(p.count);
      if (p.timestamp) first = Math.min(first, timestampDate(p.timestamp).getTime());
      acc.row.requests += n;
      if (key.status === "4xx") acc.row["4xx"] += n;
      if (key.status === "5xx") acc.row["5xx"] += n;
      acc.w50 += p.p50 * n;
      acc.w95 += p.p95 * n;
      acc.w99 += p.p99 * n;
      if (p.timestamp && sdkIntervals.has(`${p.timestamp.seconds}.${p.timestamp.nanos}`)) acc.sdk += n;
      else acc.ebpf += n;
    }
  }
  const seconds = Math.max(1, Math.min(windowMs, now - first) / 1000);
  const rows = [...byRoute.values()].map(({ row, w50, w95, w99, sdk, ebpf }) => ({
    ...row,
    source: (sdk > 0 && ebpf > 0 ? "sdk+ebpf" : sdk > 0 ? "sdk" : "ebpf") as RequestSource,
    ratePerSec: round(row.requests / seconds, 3),
    p50Ms: row.requests ? round(w50 / row.requests, 3) : 0,
    p95Ms: row.requests ? round(w95 / row.requests, 3) : 0,
    p99Ms: row.requests ? round(w99 / row.requests, 3) : 0,
  }));
  return rows.sort((a, b) => b.requests - a.requests || a.route.localeCompare(b.route) || a.method.localeCompare(b.method));
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));

export function formatRequestRows(service: string, rows: readonly RequestRow[], options: { color: boolean; since: string }): string {
  const c = colors(options.color);
  if (rows.length === 0)
    return `No HTTP requests seen for ${service} in the last ${options.since}.\n(eBPF request tracing needs the agent to run as root with bpftrace, plaintext HTTP/1.x only; or use the Coral SDK's request middleware in the app.)`;
  const head = ["METHOD", "ROUTE", "REQUESTS", "4XX", "5XX", "RATE/S", "P50 MS", "P95 MS", "P99 MS", "SOURCE"].map((h) => c.bold(h));
  const body = rows.map((r) => [
    r.method,
    r.route,
    String(r.requests),
    r["4xx"] ? c.yellow(String(r["4xx"])) : "0",
    r["5xx"] ? c.red(String(r["5xx"])) : "0",
    r.ratePerSec.toFixed(2),
    ms(r.p50Ms),
    ms(r.p95Ms),
    ms(r.p99Ms),
    r.source,
  ]);
  return columns(head, body).join("\n");
}

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
