import { describe, expect, it } from "vitest";
import { eventMagnitude, metricShift, rankChanges, type CorrelationInput, type CorrelationSeries } from "./correlation.ts";

const t0 = Date.parse("2026-05-01T14:05:00Z");
const at = (seconds: number) => new Date(t0 + seconds * 1000);
const minute = 60;

function series(service: string, metric: string, values: Array<[offsetMinutes: number, p95: number, mean?: number]>): CorrelationSeries {
  return { service, metric, points: values.map(([m, p95, mean]) => ({ timestamp: at(m * minute), p95, mean: mean ?? p95 / 2, count: 60 })) };
}

const base = (over: Partial<CorrelationInput>): CorrelationInput => ({ incident: at(0), windowMs: 15 * 60_000, events: [], series: [], edges: [], ...over });

describe("rankChanges", () => {
  it("ranks by closeness in time × magnitude, with the numbers as evidence", () => {
    const changes = rankChanges(
      base({
        events: [
          { timestamp: at(20), service: "api", eventType: "restart", details: { pid: 43, previous_pid: 42 } },
          { timestamp: at(-120), service: "api", eventType: "deploy", details: { version: "2.1.0", previous_version: "2.0.9" } },
          { timestamp: at(0), service: "api", eventType: "agent_online", details: { from: "registering", to: "online" } },
          { timestamp: at(-450), service: "db", eventType: "agent_offline", details: { from: "online", to: "offline", reason: "no heartbeat for 95s" } },
          { timestamp: at(-40 * minute), service: "api", eventType: "restart", details: {} },
          { timestamp: at(16 * minute), service: "api", eventType: "crash", details: {} },
        ],
        series: [series("api", "latency_ms", [...[-5, -4, -3, -2, -1].map((m) => [m, m % 2 ? 118 : 122] as [number, number]), [0, 276], [1, 276], [2, 276]])],
        edges: [{ from: "api", to: "10.0.0.9:5432", protocol: "tcp", external: true, connectionCount: 4, firstObserved: at(-60) }],
      }),
    );
    expect(changes.map((c) => [c.kind, c.title, c.score])).toEqual([
      ["metric_shift", "api latency_ms p95 rose 2.3×", 1],
      ["event", "api restarted", 0.88], // (1 - 20/900) × 0.9
      ["event", "api deployed version 2.1.0 (was 2.0.9)", 0.87], // (1 - 120/900) × 1
      ["new_connection", "new connection api → 10.0.0.9:5432 (external)", 0.56], // (1 - 60/900) × 0.6
      ["state_change", "db's agent went online → offline", 0.45], // (1 - 450/900) × 0.9
      ["state_change", "api's agent went registering → online", 0.3], // 1 × 0.3
    ]);
    const shift = changes[0]!;
    expect(shift.offsetSeconds).toBe(0);
    expect(shift.evidence).toBe(
      "p95 119.6 → 276 (2.3×): average of 5 intervals before the incident vs 3 from it on; before ranged 118–122 (sd 2.191, shift 71.39 sd); first moved at 2026-05-01T14:05:00Z (276)",
    );
    expect(shift.details).toMatchObject({ metric: "latency_ms", stat: "p95", before: 119.6, after: 276, beforePoints: 5, afterPoints: 3 });
    expect(changes[1]!.evidence).toBe("restart at 2026-05-01T14:05:20Z: pid=43 previous_pid=42");
    expect(changes[1]!.offsetSeconds).toBe(20);
    expect(changes[2]!.offsetSeconds).toBe(-120);
    expect(changes[3]!.evidence).toBe("first seen 2026-05-01T14:04:00Z, tcp, peak 4 connections");
  });

  it("leaves out what happened outside the window and other components (edges count from either end)", () => {
    const input = base({
      windowMs: 5 * 60_000,
      services: ["api"],
      events: [
        { timestamp: at(-301), service: "api", eventType: "deploy", details: {} },
        { timestamp: at(-299), service: "api", eventType: "deploy", details: {} },
        { timestamp: at(10), service: "web", eventType: "restart", details: {} },
      ],
      edges: [
        { from: "web", to: "api", protocol: "tcp", external: false, connectionCount: 1, firstObserved: at(30) },
        { from: "web", to: "cache", protocol: "tcp", external: false, connectionCount: 1, firstObserved: at(30) },
        { from: "api", to: "db", protocol: "tcp", external: false, connectionCount: 1, firstObserved: at(-600) },
      ],
    });
    const changes = rankChanges(input);
    expect(changes.map((c) => c.title)).toEqual(["new connection web → api", "api deployed"]);
    expect(changes[1]!.score).toBe(0); // 299 s of 300: closeness rounds to 0
  });

  it("breaks score ties by closeness in time", () => {
    const changes = rankChanges(
      base({
        events: [
          { timestamp: at(-90), service: "a", eventType: "deploy", details: {} }, // 0.9 × 1
          { timestamp: at(0), service: "b", eventType: "restart", details: {} }, // 1 × 0.9
        ],
      }),
    );
    expect(changes.map((c) => [c.service, c.score])).toEqual([
      ["b", 0.9],
      ["a", 0.9],
    ]);
  });
});

describe("metricShift", () => {
  const incident = at(0);
  const w = 15 * 60_000;

  it("ignores small shifts and shifts within the noise", () => {
    // +20%: under the 25% threshold.
    expect(metricShift(series("api", "x", [[-3, 100, 100], [-2, 100, 100], [-1, 100, 100], [0, 120, 120], [1, 120, 120]]), incident, w)).toBeUndefined();
    // +50% but the before points swing by ±60: under 3 standard deviations.
    const noisy = series("api", "x", [[-4, 40, 40], [-3, 160, 160], [-2, 40, 40], [-1, 160, 160], [0, 150, 150], [1, 150, 150]]);
    expect(metricShift(noisy, incident, w)).toBeUndefined();
    // Nothing after (or before) the incident: nothing to compare.
    expect(metricShift(series("api", "x", [[-3, 1], [-2, 100]]), incident, w)).toBeUndefined();
    expect(metricShift(series("api", "x", [[0, 1], [1, 100]]), incident, w)).toBeUndefined();
  });

  it("reports drops, shifts from zero, and where the shift began", () => {
    const drop = metricShift(series("api", "rps", [[-3, 100, 100], [-2, 100, 100], [-1, 100, 100], [0, 100, 100], [2, 40, 40], [3, 40, 40]]), incident, w)!;
    // Mean of after: (100 + 40 + 40) / 3 = 60 → 0.6×; onset is the first interval at least half way (≤ 80): +2m.
    expect(drop.title).toBe("api rps p95 fell 0.6×");
    expect(drop.offsetSeconds).toBe(120);
    expect(drop.magnitude).toBe(0.87); // 0.5 + 0.5 × |log2 0.6|
    expect(drop.closeness).toBe(0.87);
    expect(drop.score).toBe(0.75);

    const fromZero = metricShift(series("api", "errors", [[-2, 0, 0], [-1, 0, 0], [0, 5, 5]]), incident, w)!;
    expect(fromZero.title).toBe("api errors p95 rose from 0");
    expect(fromZero.magnitude).toBe(1);
    expect(fromZero.evidence).toMatch(/^p95 0 → 5 \(from 0\)/);

    // The interval holding the incident counts as after; a 1.25× shift is just worth reporting.
    const small = metricShift(series("api", "x", [[-2, 100, 100], [-1, 100, 100], [-0.5, 125, 125]]), incident, w)!;
    expect(small.offsetSeconds).toBe(-30);
    expect(small.magnitude).toBe(0.66);
  });

  it("picks the statistic that moved most", () => {
    const s = series("api", "latency", [[-2, 100, 50], [-1, 100, 50], [0, 110, 200]]);
    const change = metricShift(s, incident, w)!;
    expect(change.details.stat).toBe("mean");
    expect(change.title).toBe("api latency mean rose 4×");
  });
});

describe("eventMagnitude", () => {
  it("weighs exits and deploys over recoveries", () => {
    expect(eventMagnitude("process_exited")).toBe(1);
    expect(eventMagnitude("deploy")).toBe(1);
    expect(eventMagnitude("health_changed", { healthy: false })).toBe(0.8);
    expect(eventMagnitude("health_changed", { healthy: true, status: "healthy" })).toBe(0.4);
    expect(eventMagnitude("agent_online")).toBe(0.3);
    expect(eventMagnitude("something_else")).toBe(0.3);
  });
});
