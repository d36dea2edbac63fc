import { describe, expect, it } from "vitest";
import type { MetricPoint, MetricSummary } from "./index.ts";
import { at, tempStores } from "./testing.ts";

/** Equal names and counts; the statistics equal to 10 decimal places (interpolation is floating point). */
function expectSummary(actual: MetricSummary | undefined, expected: MetricSummary): void {
  expect(actual).toBeDefined();
  const a = actual as MetricSummary;
  expect({ metricName: a.metricName, count: a.count }).toEqual({ metricName: expected.metricName, count: expected.count });
  for (const key of ["p50", "p95", "p99", "mean", "max", "min"] as const) {
    expect(a[key], key).toBeCloseTo(expected[key], 10);
  }
}

describe("summarize", () => {
  it("computes exact quantiles, mean, max, min and count of 1..100 per metric", async () => {
    await using t = await tempStores();
    const store = await t.open();
    // 1..100 in a scrambled order (37 is coprime with 100), one point per second.
    const values = Array.from({ length: 100 }, (_, i) => ((i * 37) % 100) + 1);
    const points: MetricPoint[] = values.map((value, i) => ({ timestamp: at(i), name: "latency_ms", value }));
    points.push({ timestamp: at(10), name: "cpu_percent", value: 7 });
    points.push({ timestamp: at(20), name: "cpu_percent", value: 9 });
    await store.recordMetrics(points);

    const summary = await store.summarize(at(0), at(100));
    expect(summary.map((s) => s.metricName)).toEqual(["cpu_percent", "latency_ms"]);
    const [cpu, latency] = summary;
    // quantile_cont interpolates between order statistics: 1 + q * 99 for 1..100.
    expect(latency).toMatchObject({ metricName: "latency_ms", p50: 50.5, mean: 50.5, max: 100, min: 1, count: 100 });
    expectSummary(latency, { metricName: "latency_ms", p50: 50.5, p95: 95.05, p99: 99.01, mean: 50.5, max: 100, min: 1, count: 100 });
    expectSummary(cpu, { metricName: "cpu_percent", p50: 8, p95: 8.9, p99: 8.98, mean: 8, max: 9, min: 7, count: 2 });
  });

  it("uses the half-open window [since, until)", async () => {
    await using t = await tempStores();
    const store = await t.open();
    await store.recordMetrics([
      { timestamp: at(59.999), name: "m", value: 1000 },
      { timestamp: at(60), name: "m", value: 1 },
      { timestamp: at(90), name: "m", value: 2 },
      { timestamp: at(119.999), name: "m", value: 3 },
      { timestamp: at(120), name: "m", value: 2000 },
    ]);
    const [m, ...rest] = await store.summarize(at(60), at(120));
    expect(rest).toEqual([]);
    expectSummary(m, { metricName: "m", p50: 2, p95: 2.9, p99: 2.98, mean: 2, max: 3, min: 1, count: 3 });
    expect(await store.summarize(at(200), at(260))).toEqual([]);
    expect(await store.summarize(at(120), at(60))).toEqual([]);
  });
});
