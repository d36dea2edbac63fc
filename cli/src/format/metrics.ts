// `coral metrics <service> [metric]`: per series a header, then
// TIME P50 P95 P99 MEAN MAX COUNT with numbers rounded for reading.
import type { QueryMetricsResponse } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { colors, columns, formatNumber, formatTime, timeHeader, type FormatOptions } from "./text.ts";

export const noMetricsHint =
  "No metrics for this component in this time range. Agents send summaries every minute; try a longer --since, or check the name with: coral status";

export function formatMetrics(res: QueryMetricsResponse, options: FormatOptions): string {
  const c = colors(options.color);
  if (res.series.length === 0) return noMetricsHint;
  const blocks = res.series.map((series) => {
    const title = c.bold(`${series.service} · ${series.metricName}${series.interval ? ` (${series.interval} intervals)` : ""}`);
    if (series.points.length === 0) return [title, "  no points in this time range"].join("\n");
    const rows = series.points.map((p) => [
      formatTime(p.timestamp, options),
      formatNumber(p.p50),
      formatNumber(p.p95),
      formatNumber(p.p99),
      formatNumber(p.mean),
      formatNumber(p.max),
      formatNumber(p.count),
    ]);
    const [head, ...lines] = columns([timeHeader(options), "P50", "P95", "P99", "MEAN", "MAX", "COUNT"], rows);
    return [title, c.bold(head!), ...lines].join("\n");
  });
  return blocks.join("\n\n");
}
