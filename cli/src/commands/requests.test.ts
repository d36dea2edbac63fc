import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { QueryMetricsResponseSchema } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { describe, expect, it } from "vitest";
import { HTTP_SDK_SOURCE_METRIC, parseRequestMetricName } from "@coral/common/http-metric-name";
import { requestRows } from "@coral/common/request-rows";
import { formatRequestRows } from "../format/requests.ts";

describe("coral requests", () => {
  it("decodes the agent's metric names (agent/src/observe/http/metric-name.ts encodes them)", () => {
    const cases: [string, string][] = [
      ["http_request_duration_ms:GET:2xx:/users/:id", "/users/{id}"],
      ["http_request_duration_ms:GET:2xx:/a_b/c-d.e", "/a_b/c-d.e"],
      ["http_request_duration_ms:GET:2xx:/v1/things::3abatchGet", "/v1/things:batchGet"],
      ["http_request_duration_ms:GET:2xx:/::c3::bc/:uuid/x", "/ü/{uuid}/x"],
      ["http_request_duration_ms:GET:2xx:other", "other"],
      ["http_request_duration_ms:GET:2xx:::2a", "*"],
      ["http_request_duration_ms:GET:2xx:/::2541::20b", "/%41 b"],
    ];
    for (const [name, route] of cases) expect(parseRequestMetricName(name)).toEqual({ method: "GET", status: "2xx", route });
    expect(parseRequestMetricName("cpu_percent")).toBeNull();
  });

  it("sums per method and route: requests, 4xx, 5xx, rate; count-weighted percentiles", () => {
    const now = Date.parse("2026-12-05T12:10:00Z");
    const at = (min: number) => timestampFromDate(new Date(now - min * 60_000));
    const point = (min: number, count: number, p: number) => ({ timestamp: at(min), count: BigInt(count), p50: p, p95: p * 2, p99: p * 3, mean: p, max: p * 4, min: 0 });
    const res = create(QueryMetricsResponseSchema, {
      series: [
        { service: "api", metricName: "http_request_duration_ms:GET:2xx:/users/:id", interval: "1m", points: [point(2, 90, 1), point(1, 30, 5)] },
        { service: "api", metricName: "http_request_duration_ms:GET:5xx:/users/:id", interval: "1m", points: [point(1, 10, 10)] },
        { service: "api", metricName: "http_request_duration_ms:POST:4xx:/orders", interval: "1m", points: [point(1, 3, 2)] },
        { service: "api", metricName: "cpu_percent", interval: "1m", points: [point(1, 60, 3)] },
      ],
    });
    const rows = requestRows(res, 600_000, now);
    expect(rows).toEqual([
      { method: "GET", route: "/users/{id}", requests: 130, "4xx": 0, "5xx": 10, ratePerSec: round(130 / 120), p50Ms: round((90 + 150 + 100) / 130), p95Ms: round((180 + 300 + 200) / 130), p99Ms: round((270 + 450 + 300) / 130), source: "ebpf" },
      { method: "POST", route: "/orders", requests: 3, "4xx": 3, "5xx": 0, ratePerSec: 0.025, p50Ms: 2, p95Ms: 4, p99Ms: 6, source: "ebpf" },
    ]);
    const text = formatRequestRows("api", rows, { color: false, since: "10m" });
    expect(text.split("\n")[1]).toMatch(/^GET\s+\/users\/\{id\}\s+130\s+0\s+10\s+1\.08\s/);
    expect(formatRequestRows("api", [], { color: false, since: "10m" })).toContain("No HTTP requests seen for api in the last 10m");
  });

  it("says sdk for the intervals the SDK middleware counted (its source series beside them), eBPF for the others", () => {
    const now = Date.parse("2026-12-05T12:10:00Z");
    const at = (min: number) => timestampFromDate(new Date(now - min * 60_000));
    const point = (min: number, count: number) => ({ timestamp: at(min), count: BigInt(count), p50: 1, p95: 2, p99: 3, mean: 1, max: 4, min: 0 });
    const res = create(QueryMetricsResponseSchema, {
      series: [
        { service: "api", metricName: "http_request_duration_ms:GET:2xx:/a", interval: "1m", points: [point(3, 5), point(2, 5)] },
        { service: "api", metricName: "http_request_duration_ms:GET:2xx:/b", interval: "1m", points: [point(2, 4)] },
        { service: "api", metricName: "http_request_duration_ms:GET:2xx:/c", interval: "1m", points: [point(3, 1)] },
        { service: "api", metricName: HTTP_SDK_SOURCE_METRIC, interval: "1m", points: [point(2, 1)] },
      ],
    });
    const source = Object.fromEntries(requestRows(res, 600_000, now).map((r) => [r.route, [r.requests, r.source]]));
    expect(source).toEqual({ "/a": [10, "sdk+ebpf"], "/b": [4, "sdk"], "/c": [1, "ebpf"] });
  });
});

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
