/**
 * The series the agent derives from OpenTelemetry data for the colony's
 * summaries (and so for `coral metrics`, the dashboard and insights): per
 * operation, the latency of every span received (kept or not), named
 * `otel_span_latency_ms:GET::20/users/:id` (the operation encoded as routes
 * are, ./http-metric-name.ts; count = spans, percentiles in ms); and per
 * interval the spans that failed and the log records at ERROR or worse
 * (one summary per interval, its mean the count).
 */
import { decodeRoute, encodeRoute } from "./http-metric-name.ts";

export const SPAN_LATENCY_METRIC = "otel_span_latency_ms";
export const SPAN_ERRORS_METRIC = "otel_span_errors";
export const LOG_ERRORS_METRIC = "otel_log_errors";
/** Operations beyond this many in one interval are summarised together as this name. */
export const OTHER_OPERATION = "other";

export function spanMetricName(operation: string): string {
  return `${SPAN_LATENCY_METRIC}:${encodeRoute(operation.slice(0, 200))}`;
}

/** The operation of an `otel_span_latency_ms:…` name, else null. */
export function parseSpanMetricName(name: string): string | null {
  return name.startsWith(`${SPAN_LATENCY_METRIC}:`) ? decodeRoute(name.slice(SPAN_LATENCY_METRIC.length + 1)) : null;
}
