/** The middleware's state as CoralAppService answers (DrainRequests, DrainTraffic). */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { DrainRequestsResponseSchema, DrainTrafficResponseSchema } from "@coral/proto/gen/coral/sdk/v1/sdk_pb";
import type { RequestRecorder } from "./recorder.ts";

/** DrainTraffic hands over at most this many samples per call. */
export const maxDrainSamples = 1000;

/** `installed`: the app installed middleware (it may have served nothing yet). */
export function drainRequestsResponse(recorder: RequestRecorder | undefined, installed = false) {
  if (!recorder) return create(DrainRequestsResponseSchema, { instrumented: installed });
  const { series, overflow } = recorder.red.drain();
  return create(DrainRequestsResponseSchema, {
    instrumented: installed || recorder.instrumented,
    overflow: BigInt(overflow),
    series: series.map((s) => ({
      method: s.method,
      route: s.route,
      statusClass: s.statusClass,
      count: BigInt(s.count),
      sumMs: s.sumMs,
      buckets: s.buckets.map((b) => ({ ms: b.ms, count: BigInt(b.count) })),
    })),
  });
}

export function drainTrafficResponse(recorder: RequestRecorder | undefined, maxSamples: number) {
  if (!recorder) return create(DrainTrafficResponseSchema, { sampleRate: -1 });
  const max = maxSamples === 0 ? 100 : Math.min(maxSamples, maxDrainSamples);
  const samples: MessageInitShape<typeof DrainTrafficResponseSchema>["samples"] = recorder.takeSamples(max).map((s) => ({
    id: s.id,
    method: s.method,
    path: s.path,
    route: s.route,
    status: s.status,
    startTime: timestampFromDate(s.startTime),
    durationMs: s.durationMs,
    requestHeaders: s.requestHeaders,
    responseHeaders: s.responseHeaders,
    requestBody: s.requestBody,
    requestBodyTruncated: s.requestBodyTruncated,
    requestBodySize: BigInt(s.requestBodySize),
    responseBody: s.responseBody,
    responseBodyTruncated: s.responseBodyTruncated,
    responseBodySize: BigInt(s.responseBodySize),
    reason: s.reason,
  }));
  return create(DrainTrafficResponseSchema, {
    samples,
    dropped: BigInt(recorder.queue.takeDropped()),
    sampleRate: recorder.sampler.rate,
    remaining: recorder.queue.length,
  });
}
