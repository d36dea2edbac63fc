// RED per route (requests, 4xx, 5xx, rate, latency percentiles) from the
// metric summaries the agents send: what `coral requests` prints, what the
// coral_query_requests tool answers and what the dashboard's Requests panel
// shows (browser-safe: no Node imports). The agent's eBPF request tracer
// records one metric per method, status class and route, named
// `http_request_duration_ms:GET:2xx:/users/:id` (the colony keys summaries by
// name; see ./http-metric-name.ts): count = requests, p50/p95/p99 = latency
// in ms. The app's Coral SDK middleware writes the same series (the agent then
// leaves eBPF's out) with an HTTP_SDK_SOURCE_METRIC series beside them:
// summaries of the same interval as one of its points are the SDK's.
import type { QueryMetricsResponse } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { HTTP_SDK_SOURCE_METRIC, parseRequestMetricName } from "./http-metric-name.ts";

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
      if (p.timestamp) first = Math.min(first, Number(p.timestamp.seconds) * 1000 + p.timestamp.nanos / 1e6);
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
