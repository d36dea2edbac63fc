import { describe, expect, it } from "vitest";
import { LOG_ERRORS_METRIC, SPAN_ERRORS_METRIC, parseSpanMetricName, spanMetricName } from "@coral/common/span-metric-name";
import { OperationStats } from "./operations.ts";

describe("per-operation summaries of every span received", () => {
  it("counts exactly and gives DuckDB's interpolated percentiles while the sample holds every span", () => {
    const stats = new OperationStats();
    for (let ms = 1; ms <= 100; ms++) stats.span("api", "api", "GET /users/{id}", ms, ms % 40 === 0);
    stats.span("api", "api", "charge card", 12, false);
    const out = Object.fromEntries(stats.drain().map((s) => [s.metricName, s]));
    expect(out[spanMetricName("GET /users/{id}")]).toEqual({ metricName: "otel_span_latency_ms:GET::20/users/:id", count: 100, mean: 50.5, min: 1, max: 100, p50: 50.5, p95: 95.05, p99: 99.01 });
    expect(out[spanMetricName("charge card")]!.count).toBe(1);
    // Error counts: one summary for the interval, its mean the count.
    expect(out[SPAN_ERRORS_METRIC]).toMatchObject({ count: 1, mean: 2 });
    expect(out[LOG_ERRORS_METRIC]).toBeUndefined(); // no logs yet: no series
    expect(parseSpanMetricName("otel_span_latency_ms:GET::20/users/:id")).toBe("GET /users/{id}");
  });

  it("starts a new interval, and sends zero error counts once data has come", () => {
    const stats = new OperationStats();
    expect(stats.drain()).toEqual([]);
    stats.log(17);
    stats.log(9);
    stats.log(21);
    stats.span("api", "api", "x", 1, false);
    expect(Object.fromEntries(stats.drain().map((s) => [s.metricName, s.mean]))).toEqual({ [spanMetricName("x")]: 1, [SPAN_ERRORS_METRIC]: 0, [LOG_ERRORS_METRIC]: 2 });
    expect(Object.fromEntries(stats.drain().map((s) => [s.metricName, s.mean]))).toEqual({ [SPAN_ERRORS_METRIC]: 0, [LOG_ERRORS_METRIC]: 0 });
  });

  it("caps the operations per interval (the rest as other), names other services' operations, and keeps the sample bounded", () => {
    const stats = new OperationStats({ maxOperations: 3, sampleSize: 16, random: () => 0.5 });
    for (const op of ["a", "b", "c", "d", "e"]) stats.span("api", "api", op, 1, false);
    stats.span("api", "billing", "invoice", 2, false);
    for (let i = 0; i < 1000; i++) stats.span("api", "api", "a", i, false);
    const out = Object.fromEntries(stats.drain().map((s) => [parseSpanMetricName(s.metricName) ?? s.metricName, s]));
    expect(Object.keys(out).sort()).toEqual(["a", "b", "c", "other", SPAN_ERRORS_METRIC].sort());
    expect(out.other!.count).toBe(3); // d, e and billing's invoice
    expect(out.a).toMatchObject({ count: 1001, min: 0, max: 999 });
    const capped = new OperationStats({ maxOperations: 300 });
    capped.span("api", "billing", "invoice", 2, false);
    expect(capped.drain().map((s) => parseSpanMetricName(s.metricName))).toContain("billing: invoice");
  });
});
