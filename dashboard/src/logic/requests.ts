// The component view's Requests panel: RED over time from the per-route
// request summaries (one series per method, status class and route, see
// @coral/common/http-metric-name), summed per interval into three charts.
// (The metric charts leave those series out: ./series.ts isRequestSeries.)
import { parseRequestMetricName } from "@coral/common/http-metric-name";
import type { Chart } from "./series.ts";

interface Ts {
  seconds: bigint;
  nanos: number;
}

export interface RequestSeriesInput {
  series: { metricName: string; interval: string; points: { timestamp?: Ts; count: bigint | number; p95: number }[] }[];
}

/** Seconds of a rollup interval ("1m", "1h", "10s"); 60 when it cannot be read. */
export function intervalSeconds(interval: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(interval);
  if (!m) return 60;
  return Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as "s" | "m" | "h" | "d"];
}

/**
 * Per interval, over every route: requests per second, 5xx per second, and
 * the p95 latency (the count-weighted mean of the routes' p95s: an upper
 * bound's estimate, as the CLI's table gives over several intervals).
 */
export function redCharts(input: RequestSeriesInput): Chart[] {
  interface Acc {
    requests: number;
    errors: number;
    weightedP95: number;
  }
  const at = new Map<number, Acc>();
  let interval = "";
  for (const s of input.series) {
    const key = parseRequestMetricName(s.metricName);
    if (!key) continue;
    interval ||= s.interval;
    for (const p of s.points) {
      if (!p.timestamp) continue;
      const t = Number(p.timestamp.seconds) + p.timestamp.nanos / 1e9;
      const n = Number(p.count);
      const acc = at.get(t) ?? { requests: 0, errors: 0, weightedP95: 0 };
      acc.requests += n;
      if (key.status === "5xx") acc.errors += n;
      acc.weightedP95 += p.p95 * n;
      at.set(t, acc);
    }
  }
  if (at.size === 0) return [];
  const x = [...at.keys()].sort((a, b) => a - b);
  const per = intervalSeconds(interval);
  const rows = x.map((t) => at.get(t)!);
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return [
    { metric: "requests_per_second", x, lines: [{ label: "requests/s", values: rows.map((r) => round(r.requests / per)) }], resolution: interval },
    { metric: "errors_5xx_per_second", x, lines: [{ label: "5xx/s", values: rows.map((r) => round(r.errors / per)) }], resolution: interval },
    { metric: "latency_p95_ms", x, lines: [{ label: "p95 ms", values: rows.map((r) => (r.requests ? round(r.weightedP95 / r.requests) : null)) }], resolution: interval },
  ];
}
