// Metric names → units, readable labels and values, and the smallest increase
// worth reporting.
import { formatNumber } from "@coral/common/units";

export type Unit = "bytes" | "ms" | "percent" | "count" | "";

export function metricUnit(metric: string): Unit {
  if (/bytes$/.test(metric)) return "bytes";
  if (/(_ms|_millis|_milliseconds)$/.test(metric) || /latency/.test(metric)) return "ms";
  if (/(percent|_pct)$/.test(metric)) return "percent";
  if (/(_count|_total)$/.test(metric)) return "count";
  return "";
}

const labels: Record<string, string> = {
  memory_bytes: "memory",
  cpu_percent: "CPU",
  health_latency_ms: "health check latency",
  fd_count: "open file descriptors",
  thread_count: "threads",
  process_count: "processes",
};

/** "memory" for memory_bytes, the name itself for metrics without a label. */
export function metricLabel(metric: string): string {
  return labels[metric] ?? metric;
}

/** 300000000 bytes → "300 MB", 105 ms → "105 ms", 85 percent → "85%". */
export function formatValue(metric: string, value: number): string {
  switch (metricUnit(metric)) {
    case "bytes": {
      const abs = Math.abs(value);
      const [size, suffix] = abs >= 1e9 ? [1e9, "GB"] : abs >= 1e6 ? [1e6, "MB"] : abs >= 1e3 ? [1e3, "kB"] : [1, "B"];
      return `${formatNumber(value / size)} ${suffix}`;
    }
    case "ms":
      return Math.abs(value) >= 10_000 ? `${formatNumber(value / 1000)} s` : `${formatNumber(value)} ms`;
    case "percent":
      return `${formatNumber(value)}%`;
    default:
      return formatNumber(value);
  }
}

/**
 * The smallest increase of a mean worth an insight, so an idle process going
 * from 0.2% to 0.6% CPU or a 2 ms health check taking 5 ms stays quiet.
 */
export function minShiftDelta(metric: string): number {
  switch (metricUnit(metric)) {
    case "bytes":
      return 16e6;
    case "ms":
      return 10;
    case "percent":
      return 10;
    case "count":
      return 8;
    default:
      return 0;
  }
}

/** The agent's own gauges whose names end like Prometheus counters. */
const gauges = new Set(["fd_count", "thread_count", "process_count"]);

/**
 * Cumulative series (Prometheus counters and histogram/summary parts): their
 * level only grows and resets on restart, so comparing it with a baseline
 * says nothing; rates would.
 */
export function isCumulative(metric: string): boolean {
  if (gauges.has(metric)) return false;
  return /_(total|sum|count|bucket|created)$/.test(metric);
}

/** Rounds for evidence: 2.999999 → 3, 0.123456 → 0.1235. */
export function round(value: number, digits = 4): number {
  if (!Number.isFinite(value)) return value;
  return Number(value.toPrecision(digits));
}
