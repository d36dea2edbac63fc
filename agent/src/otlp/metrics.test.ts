import { create } from "@bufbuild/protobuf";
import { ExportMetricsServiceRequestSchema } from "@coral/proto/gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb";
import { describe, expect, it } from "vitest";
import { maxPointsPerRequest, metricName, metricPoints } from "./metrics.ts";

const now = new Date("2026-12-06T04:00:00Z");
const str = (key: string, value: string) => ({ key, value: { value: { case: "stringValue" as const, value } } });

describe("OTLP metrics as the agent's metric points", () => {
  it("names them as Prometheus would", () => {
    expect(metricName("http.server.duration")).toBe("http_server_duration");
    expect(metricName("process.runtime.nodejs-heap")).toBe("process_runtime_nodejs_heap");
    expect(metricName("9lives")).toBe("_9lives");
    expect(metricName("ok_name:total")).toBe("ok_name:total");
  });

  it("flattens gauges, sums, histograms and summaries, with attributes as labels and the arrival time", () => {
    const req = create(ExportMetricsServiceRequestSchema, {
      resourceMetrics: [
        {
          resource: { attributes: [str("service.name", "api")] },
          scopeMetrics: [
            {
              metrics: [
                { name: "queue.depth", data: { case: "gauge", value: { dataPoints: [{ value: { case: "asInt", value: 7n }, attributes: [str("queue", "mail")], timeUnixNano: 1n }] } } },
                { name: "orders", data: { case: "sum", value: { dataPoints: [{ value: { case: "asDouble", value: 2.5 } }] } } },
                { name: "latency", data: { case: "histogram", value: { dataPoints: [{ count: 3n, sum: 60 }] } } },
                { name: "size", data: { case: "exponentialHistogram", value: { dataPoints: [{ count: 4n }] } } },
                { name: "rpc", data: { case: "summary", value: { dataPoints: [{ count: 10n, sum: 5, quantileValues: [{ quantile: 0.99, value: 1.5 }] }] } } },
                { name: "nan", data: { case: "gauge", value: { dataPoints: [{ value: { case: "asDouble", value: Number.NaN } }] } } },
              ],
            },
          ],
        },
        { resource: { attributes: [str("service.name", "worker")] }, scopeMetrics: [{ metrics: [{ name: "jobs", data: { case: "sum", value: { dataPoints: [{ value: { case: "asInt", value: 1n } }] } } }] }] },
      ],
    });
    const { points, dropped } = metricPoints(req, "api", now);
    expect(dropped).toBe(0);
    expect(points.map((p) => [p.name, p.value, p.labels])).toEqual([
      ["queue_depth", 7, { queue: "mail" }],
      ["orders", 2.5, {}],
      ["latency_count", 3, {}],
      ["latency_sum", 60, {}],
      ["size_count", 4, {}],
      ["rpc_count", 10, {}],
      ["rpc_sum", 5, {}],
      ["rpc", 1.5, { quantile: "0.99" }],
      ["jobs", 1, { "service.name": "worker" }],
    ]);
    expect(points.every((p) => p.timestamp === now)).toBe(true);
  });

  it("keeps at most maxPointsPerRequest points of one request and counts the rest", () => {
    const dataPoints = Array.from({ length: maxPointsPerRequest + 5 }, (_, n) => ({ value: { case: "asInt" as const, value: BigInt(n) }, attributes: [str("n", String(n))] }));
    const req = create(ExportMetricsServiceRequestSchema, { resourceMetrics: [{ scopeMetrics: [{ metrics: [{ name: "wide", data: { case: "gauge", value: { dataPoints } } }] }] }] });
    const { points, dropped } = metricPoints(req, "api", now);
    expect(points).toHaveLength(maxPointsPerRequest);
    expect(dropped).toBe(5);
  });
});
