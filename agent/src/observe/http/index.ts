/** RED metrics from eBPF: HTTP/1.x requests served by the service's processes. */
export { HttpTracer } from "./tracer.ts";
export type { HttpTracerEvents, HttpTracerOptions, HttpTracerStatus } from "./tracer.ts";
export { RequestPairer } from "./pairing.ts";
export type { PairingCounts, ServedRequest } from "./pairing.ts";
export { normaliseRoute, RouteCap, DEFAULT_ROUTE_CAP, OTHER_ROUTE } from "./routes.ts";
export { HTTP_DURATION_METRIC, HTTP_UNPARSED_METRIC, HTTP_SDK_SOURCE_METRIC, encodeRoute, decodeRoute, requestMetricName, parseRequestMetricName } from "@coral/common/http-metric-name";
export type { RequestSeries } from "@coral/common/http-metric-name";
export { requestMetricPoints } from "./metrics.ts";
export { sdkRequestPoints, maxSdkPointsPerDrain, type SdkRequestPoints } from "./sdk-requests.ts";
export { parseTraceLine, requestLines, statusLines } from "./parse.ts";
export { httpRequestsProgram, DEFAULT_CAPTURE_BYTES } from "./program.ts";

/**
 * Whether the agent traces requests: the option, else CORAL_HTTP_TRACING
 * ("0"/"off"/"false" off, "1"/"on"/"true" on), else on whenever the kernel
 * connection source may use eBPF (not "procfs").
 */
export function httpTracingEnabled(option: boolean | undefined, connectionMode: "auto" | "procfs"): boolean {
  if (option !== undefined) return option;
  const env = (process.env.CORAL_HTTP_TRACING ?? "").toLowerCase();
  if (["0", "off", "false", "no"].includes(env)) return false;
  if (["1", "on", "true", "yes"].includes(env)) return true;
  return connectionMode !== "procfs";
}
export { kernelConnectionsUnavailable } from "../kernel-connections.ts";
