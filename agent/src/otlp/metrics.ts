// OTLP metrics as the agent's own metric points, so they reach the colony's
// summaries and `coral metrics` like the Prometheus scrape's: one point per
// data point, named as Prometheus would name it (characters outside
// [A-Za-z0-9_:] as "_"), its attributes as labels. Histograms (explicit and
// exponential) and summaries come flattened as a scrape exposes them:
// `x_count`, `x_sum`, and for summaries `x{quantile="0.99"}`. Points carry
// the agent's time, not the sender's (ingest.ts restamps them as they are
// stored): a sender's clock, or a slow write, cannot put a point in a window
// already summarised.
import type { KeyValue } from "@coral/proto/gen/opentelemetry/proto/common/v1/common_pb";
import type { NumberDataPoint } from "@coral/proto/gen/opentelemetry/proto/metrics/v1/metrics_pb";
import type { MetricPoint } from "../storage/types.ts";
import type { OtlpRequest } from "./decode.ts";
import { attributeObject, resourceOf, type Attribution } from "./records.ts";

/** Points taken from one request; the rest are counted as dropped (a sender with runaway cardinality). */
export const maxPointsPerRequest = 20_000;
const maxLabels = 32;
const maxLabelChars = 256;

/** An OTLP metric name as a Prometheus-style name ("http.server.duration" → "http_server_duration"). */
export function metricName(name: string): string {
  const clean = name.slice(0, 200).replace(/[^A-Za-z0-9_:]/g, "_");
  return /^[A-Za-z_:]/.test(clean) ? clean : `_${clean}`;
}

function labelsOf(attrs: readonly KeyValue[], extra: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = { ...extra };
  let n = Object.keys(out).length;
  for (const [k, v] of Object.entries(attributeObject(attrs))) {
    if (n++ >= maxLabels) break;
    const text = typeof v === "string" ? v : JSON.stringify(v);
    out[k.slice(0, maxLabelChars)] = text.slice(0, maxLabelChars);
  }
  return out;
}

function numberValue(p: NumberDataPoint): number {
  const v = p.value;
  if (v.case === "asDouble") return v.value;
  if (v.case === "asInt") return Number(v.value);
  return NaN;
}

export interface OtlpMetricPoints {
  points: MetricPoint[];
  /** Data points over maxPointsPerRequest, not kept. */
  dropped: number;
}

/**
 * `agentService`: data from another service.name (a second app sending to
 * this agent) keeps that name as a `service.name` label. `attributeTo`: how
 * each resource is attributed (default by its service.name, else the agent's).
 */
export function metricPoints(req: OtlpRequest<"metrics">, agentService: string, now: Date, attributeTo: Attribution = (attrs) => resourceOf(attrs, agentService)): OtlpMetricPoints {
  const points: MetricPoint[] = [];
  let dropped = 0;
  const push = (name: string, value: number, labels: Record<string, string>) => {
    if (!Number.isFinite(value)) return;
    if (points.length >= maxPointsPerRequest) return void dropped++;
    points.push({ timestamp: now, name, value, labels });
  };
  for (const rm of req.resourceMetrics) {
    const { service } = attributeTo(rm.resource?.attributes);
    const extra: Record<string, string> = service === agentService ? {} : { "service.name": service };
    for (const sm of rm.scopeMetrics)
      for (const m of sm.metrics) {
        const name = metricName(m.name);
        const d = m.data;
        switch (d.case) {
          case "gauge":
          case "sum":
            for (const p of d.value.dataPoints) push(name, numberValue(p), labelsOf(p.attributes, extra));
            break;
          case "histogram":
          case "exponentialHistogram":
            for (const p of d.value.dataPoints) {
              const labels = labelsOf(p.attributes, extra);
              push(`${name}_count`, Number(p.count), labels);
              if (p.sum !== undefined) push(`${name}_sum`, p.sum, labels);
            }
            break;
          case "summary":
            for (const p of d.value.dataPoints) {
              const labels = labelsOf(p.attributes, extra);
              push(`${name}_count`, Number(p.count), labels);
              push(`${name}_sum`, p.sum, labels);
              for (const q of p.quantileValues) push(name, q.value, { ...labels, quantile: String(q.quantile) });
            }
            break;
          default:
            break;
        }
      }
  }
  return { points, dropped };
}
