/**
 * The app's Coral SDK middleware counts requests from inside (HTTPS too):
 * its drained RED aggregates become the same metric series the eBPF tracer
 * writes (same names), one point per request at its bucket's latency, plus
 * one HTTP_SDK_SOURCE_METRIC point per request so `coral requests` can say
 * where the figures came from.
 */
import { HTTP_SDK_SOURCE_METRIC, requestMetricName } from "@coral/common/http-metric-name";
import type { DrainRequestsResponse } from "@coral/proto/gen/coral/sdk/v1/sdk_pb";
import type { HttpMetricPoint } from "./metrics.ts";

/** Points made from one drain at most (a drain every second: far above any real rate). */
export const maxSdkPointsPerDrain = 500_000;

const methodRe = /^[A-Z]{1,16}$/;
const statusRe = /^[1-5]xx$/;

export interface SdkRequestPoints {
  points: HttpMetricPoint[];
  requests: number;
  /** Series or requests left out: malformed, or beyond maxSdkPointsPerDrain. */
  skipped: number;
}

export function sdkRequestPoints(res: DrainRequestsResponse, now: Date = new Date()): SdkRequestPoints {
  const points: HttpMetricPoint[] = [];
  let skipped = 0;
  let requests = 0;
  for (const s of res.series) {
    if (!methodRe.test(s.method) || !statusRe.test(s.statusClass) || !s.route || s.route.length > 200) {
      skipped += Number(s.count);
      continue;
    }
    const name = requestMetricName({ method: s.method, route: s.route, status: s.statusClass });
    const labels = { method: s.method, route: s.route, status: s.statusClass, source: "sdk" };
    for (const b of s.buckets) {
      const n = Number(b.count);
      if (!Number.isFinite(b.ms) || b.ms < 0) {
        skipped += n;
        continue;
      }
      const room = maxSdkPointsPerDrain - points.length;
      const take = Math.min(n, room);
      skipped += n - take;
      for (let i = 0; i < take; i++) points.push({ timestamp: now, name, value: b.ms, labels });
      requests += take;
    }
  }
  if (requests > 0) points.push({ timestamp: now, name: HTTP_SDK_SOURCE_METRIC, value: requests, labels: { source: "sdk" } });
  return { points, requests, skipped };
}
