// Metric answers (QueryMetrics) as chart data: per metric, one x axis in
// seconds and the lines to draw, the shape uPlot takes. Request series (one
// per route and status class) go to the Requests panel instead (./requests.ts).
import { HTTP_DURATION_METRIC, HTTP_SDK_SOURCE_METRIC, HTTP_UNPARSED_METRIC } from "@coral/common/http-metric-name";

/** Series that belong to the Requests panel, not to the metric charts (a service with 100 routes would get hundreds of charts). */
export function isRequestSeries(metricName: string): boolean {
  return metricName.startsWith(`${HTTP_DURATION_METRIC}:`) || metricName === HTTP_SDK_SOURCE_METRIC || metricName === HTTP_UNPARSED_METRIC;
}

interface Ts {
  seconds: bigint;
  nanos: number;
}

export interface MetricsInput {
  series: { metricName: string; interval: string; points: { timestamp?: Ts; mean: number; p95: number; max: number }[] }[];
  rawPoints: { timestamp?: Ts; metricName: string; value: number; agentId: string }[];
}

export interface Chart {
  metric: string;
  /** Unix seconds, ascending. */
  x: number[];
  lines: { label: string; values: (number | null)[] }[];
  /** "raw" or the rollup interval. */
  resolution: string;
}

const ascending = (xs: number[]) => xs.every((v, i) => i === 0 || xs[i - 1]! < v);

const seconds = (t: Ts | undefined) => (t ? Number(t.seconds) + t.nanos / 1e9 : NaN);

export function buildCharts(input: MetricsInput): Chart[] {
  const charts = new Map<string, Chart>();
  if (input.rawPoints.length) {
    // Raw points: one line per agent, on the union of their timestamps.
    const byMetric = new Map<string, Map<string, Map<number, number>>>();
    for (const p of input.rawPoints) {
      if (isRequestSeries(p.metricName)) continue;
      const t = seconds(p.timestamp);
      if (!Number.isFinite(t)) continue;
      const agents = byMetric.get(p.metricName) ?? new Map<string, Map<number, number>>();
      byMetric.set(p.metricName, agents);
      const points = agents.get(p.agentId) ?? new Map<number, number>();
      agents.set(p.agentId, points);
      points.set(t, p.value);
    }
    for (const [metric, agents] of byMetric) {
      if (agents.size === 1) {
        // One agent (the common case, up to 86,400 points a day): its points arrive in time order; sort only when they did not.
        const points = [...agents.values()][0]!;
        let x = [...points.keys()];
        if (!ascending(x)) x = x.sort((a, b) => a - b);
        charts.set(metric, { metric, x, lines: [{ label: metric, values: x.map((t) => points.get(t)!) }], resolution: "raw" });
        continue;
      }
      const x = [...new Set([...agents.values()].flatMap((m) => [...m.keys()]))].sort((a, b) => a - b);
      const lines = [...agents.entries()].map(([agent, points]) => ({ label: agent, values: x.map((t) => points.get(t) ?? null) }));
      charts.set(metric, { metric, x, lines, resolution: "raw" });
    }
  }
  for (const s of input.series) {
    if (isRequestSeries(s.metricName)) continue;
    const points = s.points.map((p) => ({ t: seconds(p.timestamp), p })).filter((p) => Number.isFinite(p.t)).sort((a, b) => a.t - b.t);
    const existing = charts.get(s.metricName);
    if (existing && existing.resolution === "raw") continue;
    if (existing) {
      // Several agents of one service: their series side by side, merged on time.
      const x = [...new Set([...existing.x, ...points.map((p) => p.t)])].sort((a, b) => a - b);
      const at = new Map(points.map((p) => [p.t, p.p.mean]));
      const old = existing.lines.map((l) => ({ label: l.label, values: x.map((t) => l.values[existing.x.indexOf(t)] ?? null) }));
      charts.set(s.metricName, { ...existing, x, lines: [...old, { label: `mean #${old.length + 1}`, values: x.map((t) => at.get(t) ?? null) }] });
      continue;
    }
    charts.set(s.metricName, {
      metric: s.metricName,
      x: points.map((p) => p.t),
      lines: [
        { label: "mean", values: points.map((p) => p.p.mean) },
        { label: "p95", values: points.map((p) => p.p.p95) },
        { label: "max", values: points.map((p) => p.p.max) },
      ],
      resolution: s.interval,
    });
  }
  return [...charts.values()].sort((a, b) => a.metric.localeCompare(b.metric));
}
