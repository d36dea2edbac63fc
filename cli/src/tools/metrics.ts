// coral_query_metrics: metric summaries (percentiles per interval) of a
// component, summarised for an assistant; raw points from the agents on
// request, through the colony.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { MetricSeries, QueryMetricsResponse, RawMetricPoint } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { z } from "zod";
import { defineTool, toolArgs, fitLines, iso, num, textBudgetChars, timeArg, timeRange, tsDate, serviceArg } from "./common.ts";

export const metricIntervals = ["1m", "5m", "15m", "1h", "1d"] as const;
const maxTableRows = 40;
const maxRawRows = 40;

export interface SeriesSummary {
  service: string;
  metric: string;
  interval: string;
  points: number;
  from: string;
  to: string;
  /** Count-weighted mean of the interval means. */
  mean: number;
  min: number;
  max: number;
  p50: { min: number; max: number; last: number };
  p95: { min: number; max: number; last: number };
  p99: { max: number; last: number };
  samples: number;
  first: { at: string; mean: number; p95: number };
  last: { at: string; mean: number; p95: number };
}

export function summariseSeries(series: MetricSeries): SeriesSummary | undefined {
  const pts = series.points;
  if (pts.length === 0) return undefined;
  const first = pts[0]!;
  const last = pts.at(-1)!;
  const samples = pts.reduce((n, p) => n + Number(p.count), 0);
  const mean = samples > 0 ? pts.reduce((s, p) => s + p.mean * Number(p.count), 0) / samples : pts.reduce((s, p) => s + p.mean, 0) / pts.length;
  return {
    service: series.service,
    metric: series.metricName,
    interval: series.interval,
    points: pts.length,
    from: iso(first.timestamp),
    to: iso(last.timestamp),
    mean,
    min: Math.min(...pts.map((p) => p.min)),
    max: Math.max(...pts.map((p) => p.max)),
    p50: { min: Math.min(...pts.map((p) => p.p50)), max: Math.max(...pts.map((p) => p.p50)), last: last.p50 },
    p95: { min: Math.min(...pts.map((p) => p.p95)), max: Math.max(...pts.map((p) => p.p95)), last: last.p95 },
    p99: { max: Math.max(...pts.map((p) => p.p99)), last: last.p99 },
    samples,
    first: { at: iso(first.timestamp), mean: first.mean, p95: first.p95 },
    last: { at: iso(last.timestamp), mean: last.mean, p95: last.p95 },
  };
}

function summaryLine(s: SeriesSummary): string {
  return (
    `${s.metric}: ${s.points} × ${s.interval} points ${s.from} → ${s.to}; mean ${num(s.mean)}, min ${num(s.min)}, max ${num(s.max)}, ` +
    `p50 ${num(s.p50.min)}–${num(s.p50.max)}, p95 ${num(s.p95.min)}–${num(s.p95.max)} (last ${num(s.p95.last)}), p99 max ${num(s.p99.max)}, ` +
    `mean first→last ${num(s.first.mean)} → ${num(s.last.mean)}, ${s.samples} samples`
  );
}

function summariesText(res: QueryMetricsResponse, service: string, metric: string | undefined, range: { since: Date; until: Date }) {
  const lines: string[] = [];
  const summaries = res.series.map(summariseSeries);
  const interval = res.series[0]?.interval ?? "";
  lines.push(
    `${service}${metric ? ` · ${metric}` : ""}: ${res.series.length} metric series${interval ? ` at ${interval} resolution` : ""}, ${iso(range.since)} → ${iso(range.until)}. ` +
      "Values per interval: p50/p95/p99 are percentiles of the samples in it, mean/min/max over them, count the samples.",
  );
  if (res.series.length === 0) {
    lines.push(
      `No ${metric ? `"${metric}" ` : ""}metric summaries for ${service} in this range. Agents send summaries every minute: try a longer since, ` +
        "check the component name with coral_get_status, or omit metric to list the metrics it has.",
    );
    return lines;
  }
  const summaryRows = res.series.map((series, i) => (summaries[i] ? `- ${summaryLine(summaries[i])}` : `- ${series.metricName}: no points in range`));
  const single = res.series.length === 1 ? res.series[0]! : undefined;
  const fitted = fitLines(summaryRows, single ? 1500 : textBudgetChars - 800);
  lines.push(...fitted.shown);
  if (fitted.omitted > 0) lines.push(`… ${fitted.omitted} more metrics not shown: ask for one with metric=<name>.`);
  if (single && single.points.length > 0) {
    const pts = single.points.slice(-maxTableRows);
    const omitted = single.points.length - pts.length;
    lines.push("time (interval start, UTC) | p50 | p95 | p99 | mean | min | max | count");
    for (const p of pts) lines.push(`${iso(p.timestamp)} | ${num(p.p50)} | ${num(p.p95)} | ${num(p.p99)} | ${num(p.mean)} | ${num(p.min)} | ${num(p.max)} | ${p.count}`);
    if (omitted > 0)
      lines.push(`(${omitted} older points not listed; the summary above covers them all. For the full series use a coarser interval, e.g. interval=15m, or a narrower since/until.)`);
  } else if (!metric) lines.push("Ask for one metric (metric=<name>) to see its points interval by interval.");
  return lines;
}

interface RawGroup {
  agentId: string;
  metric: string;
  labels: string;
  points: RawMetricPoint[];
}

function rawText(res: QueryMetricsResponse, service: string, limit: number) {
  const lines: string[] = [];
  const groups = new Map<string, RawGroup>();
  for (const p of res.rawPoints) {
    const labels = Object.entries(p.labels).sort().map(([k, v]) => `${k}=${v}`).join(",");
    const key = `${p.agentId}\u0000${p.metricName}\u0000${labels}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { agentId: p.agentId, metric: p.metricName, labels, points: [] }));
    g.points.push(p);
  }
  lines.push(`${service}: ${res.rawPoints.length} raw points from the agents' local stores, ${groups.size} series (agent · metric · labels).`);
  const stats = [...groups.values()].map((g) => {
    const values = g.points.map((p) => p.value);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const last = g.points.at(-1)!;
    return {
      agentId: g.agentId,
      metric: g.metric,
      labels: g.labels,
      count: values.length,
      min: Math.min(...values),
      max: Math.max(...values),
      mean,
      first: iso(g.points[0]!.timestamp),
      last: iso(last.timestamp),
      lastValue: last.value,
    };
  });
  const statRows = stats.map(
    (s) =>
      `- ${s.agentId} · ${s.metric}${s.labels ? `{${s.labels}}` : ""}: ${s.count} point${s.count === 1 ? "" : "s"} ${s.first} → ${s.last}; min ${num(s.min)}, max ${num(s.max)}, mean ${num(s.mean)}, last ${num(s.lastValue)}`,
  );
  const fitted = fitLines(statRows, 3000);
  lines.push(...fitted.shown);
  if (fitted.omitted > 0) lines.push(`… ${fitted.omitted} more series not shown: ask for one metric with metric=<name>.`);
  const recent = res.rawPoints.slice(-maxRawRows);
  if (recent.length > 0) {
    lines.push(`Latest ${recent.length} points (time | agent | metric | value):`);
    const rows = recent.map((p) => {
      const labels = Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(",");
      return `${iso(p.timestamp)} | ${p.agentId} | ${p.metricName}${labels ? `{${labels}}` : ""} | ${num(p.value)}`;
    });
    lines.push(...fitLines(rows, textBudgetChars - lines.join("\n").length - 400).shown);
  } else lines.push("No raw points in this range (agents keep about the last hour locally).");
  for (const u of res.unavailable) lines.push(`! agent not answering: ${u}`);
  if (res.truncated) lines.push(`(Some agents had more than ${limit} points: narrow since/until, pick one metric, or raise limit.)`);
  return { lines, stats };
}

export const queryMetricsTool = defineTool({
  name: "coral_query_metrics",
  title: "Query metrics",
  description:
    "Metrics of one component (cpu_percent, memory_bytes, request latency, ...). By default it answers with summaries the colony keeps " +
    "(per interval p50/p95/p99/mean/min/max/count) condensed to one line per metric; name one metric to also get its points. " +
    "raw=true fetches the raw samples from the component's agents (about the last hour) through the colony.",
  inputSchema: toolArgs({
    service: serviceArg(),
    metric: z.string().min(1).optional().describe("Metric name, e.g. cpu_percent; omit to get every metric of the component"),
    since: timeArg('Start of the range: ISO time or a duration ago like "1h" (default 1h)').optional(),
    until: timeArg("End of the range: ISO time or a duration ago (default now)").optional(),
    interval: z.enum(metricIntervals, { error: `Must be one of ${metricIntervals.join(", ")}` }).optional().describe("Resolution of the summaries: 1m, 5m, 15m, 1h or 1d (default: picked from the range)"),
    raw: z.boolean().default(false).describe("Raw points from the agents instead of summaries (default false)"),
    limit: z.number().int().min(1).max(10_000).default(500).describe("With raw: at most this many points per agent (default 500)"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const range = timeRange(ctx, args.since, args.until, "1h");
    const res = await ctx.colony.queryMetrics({
      service: args.service,
      metricName: args.metric ?? "",
      since: timestampFromDate(range.since),
      until: timestampFromDate(range.until),
      interval: args.raw ? "" : (args.interval ?? ""),
      raw: args.raw,
      limit: args.raw ? args.limit : 0,
    });
    if (args.raw) {
      const { lines, stats } = rawText(res, args.service, args.limit);
      return {
        text: lines.join("\n"),
        data: {
          service: args.service,
          raw: true,
          since: iso(range.since),
          until: iso(range.until),
          series: stats,
          points: res.rawPoints.map((p) => ({ timestamp: tsDate(p.timestamp)?.toISOString(), agentId: p.agentId, metric: p.metricName, value: p.value, labels: p.labels })),
          unavailable: res.unavailable,
          truncated: res.truncated,
        },
      };
    }
    const lines = summariesText(res, args.service, args.metric, range);
    return {
      text: lines.join("\n"),
      data: {
        service: args.service,
        raw: false,
        since: iso(range.since),
        until: iso(range.until),
        summaries: res.series.map(summariseSeries).filter(Boolean),
        series: res.series.map((s) => ({
          metric: s.metricName,
          interval: s.interval,
          points: s.points.map((p) => ({
            timestamp: tsDate(p.timestamp)?.toISOString(),
            p50: p.p50,
            p95: p.p95,
            p99: p.p99,
            mean: p.mean,
            min: p.min,
            max: p.max,
            count: Number(p.count),
          })),
        })),
      },
    };
  },
});
