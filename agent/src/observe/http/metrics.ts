/** Served requests as the agent's metric points (one per request: the summaries give count and p50/p95/p99). */
import type { ServedRequest } from "./pairing.ts";
import { requestMetricName } from "@coral/common/http-metric-name";

export interface HttpMetricPoint {
  timestamp: Date;
  name: string;
  value: number;
  labels: Record<string, string>;
}

/**
 * Stamped when they reach the agent's store, not when the response was
 * written: the agent summarises the points of [last summary, now), so a point
 * stamped with its (earlier) response time could arrive after its window was
 * summarised and never be counted. The difference is the tracer's hold
 * (about 200 ms) plus the agent's own delays.
 */
export function requestMetricPoints(requests: readonly ServedRequest[], now: Date = new Date()): HttpMetricPoint[] {
  return requests.map((r) => ({
    timestamp: now,
    name: requestMetricName({ method: r.method, route: r.route, status: r.statusClass }),
    value: r.durationMs,
    labels: { method: r.method, route: r.route, status: r.statusClass, source: "ebpf" },
  }));
}
