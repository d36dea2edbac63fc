/** Served requests as the agent's metric points (one per request: the summaries give count and p50/p95/p99). */
import type { ServedRequest } from "./pairing.ts";
import { requestMetricName } from "@coral/common/http-metric-name";

export interface HttpMetricPoint {
  timestamp: Date;
  name: string;
  value: number;
  labels: Record<string, string>;
}

/** Kernel monotonic ns → wall clock (bpftrace's nsecs and process.hrtime are both CLOCK_MONOTONIC). */
export function wallClock(ns: bigint): Date {
  const agoMs = Number(process.hrtime.bigint() - ns) / 1e6;
  return new Date(Date.now() - Math.max(0, agoMs));
}

export function requestMetricPoints(requests: readonly ServedRequest[]): HttpMetricPoint[] {
  return requests.map((r) => ({
    timestamp: wallClock(r.endNs),
    name: requestMetricName({ method: r.method, route: r.route, status: r.statusClass }),
    value: r.durationMs,
    labels: { method: r.method, route: r.route, status: r.statusClass, source: "ebpf" },
  }));
}
