// Insights over a real DuckDB store fed the way agents feed it: scripted
// incidents raise the expected insights with their numbers; a quiet baseline
// raises none; repeated runs deduplicate; dismissed insights stay quiet.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sleep } from "@coral/common/async";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type ColonyStore } from "../store/index.ts";
import {
  countActiveInsights,
  dedupeKey,
  dismissInsight,
  listBaselines,
  listInsights,
  runInsights,
  startInsightsLoop,
  type InsightRecord,
} from "./index.ts";
import { SimAgent, at, leakingFrontend, noise, steady } from "./testing.ts";

const MB = 1e6;
let dir: string;
let store: ColonyStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "colony-insights-"));
  store = await openStore(join(dir, ".coral", "colony.duckdb"));
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const byDetector = (list: InsightRecord[], detector: string, key?: string): InsightRecord[] =>
  list.filter((i) => i.detector === detector && (key === undefined || i.key === key));

async function rowCount(sql = "SELECT count(*) FROM insights"): Promise<number> {
  return store.read(async (c) => Number((await c.runAndReadAll(sql)).getRows()[0]?.[0]));
}

function incident(): ReturnType<typeof leakingFrontend> {
  return leakingFrontend(store, at);
}

describe("baselines", () => {
  it("learns mean, stddev and percentiles per service, metric and window, leaving the recent window out", async () => {
    await incident();
    await runInsights(store, at(126));
    const baselines = await listBaselines(store, "frontend");
    const memory = Object.fromEntries(baselines.filter((b) => b.metric === "memory_bytes").map((b) => [b.window, b]));
    expect(Object.keys(memory).sort()).toEqual(["1d", "1h", "7d"]);
    // 1h: minutes 61-120 (the leak's minutes 121-125 are the recent window).
    expect(memory["1h"]!.sampleCount).toBe(60);
    expect(memory["1h"]!.mean).toBeCloseTo(100 * MB, -1);
    expect(memory["1h"]!.stddev).toBeCloseTo(Math.sqrt(1.25) * MB, -1);
    expect(memory["1h"]!.p50).toBeCloseTo(100 * MB, -1);
    expect(memory["1h"]!.p95).toBeCloseTo(101.5 * MB, -1);
    // 1d and 7d: everything before the recent window (minutes 0-120).
    expect(memory["1d"]!.sampleCount).toBe(121);
    expect(memory["7d"]!.sampleCount).toBe(121);
    expect(memory["1d"]!.lastUpdated).toEqual(at(126));
  });
});

describe("baselines past the 1m rows' retention", () => {
  it("takes the week's older part from the 15m rollups, count-weighted", async () => {
    const s = await openStore(join(dir, "retained.duckdb"), { retention: { metrics_1m: 3 * 3_600_000 } });
    try {
      const worker = new SimAgent(s, "worker-1", "worker", 9000);
      await worker.register(at(0), "1.0.0");
      // 10 hours: 50 ms for the first 7, then 100 ms.
      for (let m = 0; m < 600; m++) worker.minute(at(m), { queue_latency_ms: m < 420 ? 50 : 100 });
      await worker.flush();
      await s.rollup(at(600));
      await s.applyRetention(at(600)); // 1m rows before minute 420 are gone
      await runInsights(s, at(600));
      const b = Object.fromEntries((await listBaselines(s, "worker")).map((x) => [x.window, x]));
      expect(b["1h"]).toMatchObject({ sampleCount: 60, mean: 100, stddev: 0 });
      expect(b["1d"]).toMatchObject({ sampleCount: 175, mean: 100 });
      // 175 minutes (60 samples each) + 28 quarter hours (900 samples each) at 50.
      expect(b["7d"]!.sampleCount).toBe(175 + 28);
      expect(b["7d"]!.mean).toBeCloseTo((175 * 60 * 100 + 28 * 900 * 50) / (175 * 60 + 28 * 900), 9);
      expect(b["7d"]!.p50).toBe(100);
    } finally {
      await s.close();
    }
  });
});

describe("a process that leaks memory and restarts after a version change", () => {
  it("raises a memory shift, a restart loop, the connection changes and a degraded-after-deploy recommendation", async () => {
    await incident();
    const run = await runInsights(store, at(126));
    expect(run.created).toBe(5);
    const list = await listInsights(store, {}, at(126));
    expect(list.map((i) => dedupeKey(i)).sort()).toEqual([
      "connection_change|frontend|new:127.0.0.1:6379",
      "connection_change|frontend|vanished:legacy",
      "metric_shift|frontend|memory_bytes",
      "restart_loop|frontend|",
      "version_degradation|frontend|1.9.2",
    ]);
    expect(list.every((i) => i.status === "active" && i.occurrences === 1)).toBe(true);

    const [memory] = byDetector(list, "metric_shift");
    expect(memory).toMatchObject({
      type: "anomaly",
      priority: "high",
      service: "frontend",
      affectedServices: ["frontend"],
      title: "frontend memory 3.0× its usual (100 MB → 300 MB)",
    });
    expect(memory!.evidence).toMatchObject({
      metric: "memory_bytes",
      recent_samples: 5,
      recent_window_minutes: 5,
      baseline_window: "1h",
      baseline_samples: 60,
      ratio: 3,
    });
    expect(memory!.evidence.recent_mean as number).toBeCloseTo(300 * MB, -1);
    expect(memory!.evidence.baseline_mean as number).toBeCloseTo(100 * MB, -1);
    expect(memory!.evidence.sigmas as number).toBeGreaterThan(100);
    expect(memory!.evidenceLines[0]).toBe("memory_bytes mean 300 MB over the last 5 min (5 samples, peak 340 MB)");
    expect(memory!.expiresAt).toEqual(new Date(at(126).getTime() + 30 * 60_000));

    const [loop] = byDetector(list, "restart_loop");
    expect(loop).toMatchObject({ type: "pattern", priority: "high", title: "frontend has restarted 3× in 15 min - possible memory leak" });
    expect(loop!.evidence).toMatchObject({ restarts: 3, exits: 3, count: 3, window_minutes: 15, exit_rss_bytes: [310 * MB, 330 * MB, 355 * MB] });
    expect(loop!.evidence.times).toEqual([at(116.5 + 5 / 60), at(120.5 + 5 / 60), at(124.5 + 5 / 60)].map((d) => d.toISOString()));

    const [degraded] = byDetector(list, "version_degradation");
    expect(degraded).toMatchObject({
      type: "recommendation",
      priority: "high",
      title: "frontend degraded after 1.9.1 → 1.9.2: memory 3.0×, 3 restarts",
      recommendations: expect.arrayContaining(["Roll back frontend to 1.9.1"]),
    });
    expect(degraded!.evidence).toMatchObject({
      from_version: "1.9.1",
      to_version: "1.9.2",
      changed_at: at(100).toISOString(),
      source: "registration",
      minutes_since_change: 26,
      signals: [
        { kind: "metric_shift", metric: "memory_bytes", ratio: 3, baseline_window: "1h" },
        { kind: "restarts", count: 3 },
      ],
    });

    const [added] = byDetector(list, "connection_change", "new:127.0.0.1:6379");
    expect(added).toMatchObject({ title: "New connection after deploy: frontend → 127.0.0.1:6379", affectedServices: ["frontend"] });
    expect(added!.evidence).toMatchObject({ change: "new", external: true, first_observed: at(102).toISOString(), version_change: { from: "1.9.1", to: "1.9.2" } });
    const [gone] = byDetector(list, "connection_change", "vanished:legacy");
    expect(gone).toMatchObject({ title: "Connection gone after deploy: frontend → legacy", affectedServices: ["frontend", "legacy"] });
    expect(gone!.evidence).toMatchObject({ change: "vanished", last_observed: at(100).toISOString() });

    // Highest priority first.
    expect(list.map((i) => i.priority)).toEqual(["high", "high", "high", "medium", "medium"]);
    expect(await countActiveInsights(store, at(126))).toBe(5);
  });

  it("raises nothing from the same data before the incident", async () => {
    await incident();
    // At minute 98 frontend still runs 1.9.1 and everything is steady.
    const run = await runInsights(store, at(98));
    expect(run.findings).toEqual([]);
    expect(await rowCount()).toBe(0);
  });

  it("keeps one row per insight across repeated runs and updates its evidence", async () => {
    await incident();
    const first = await runInsights(store, at(126));
    const second = await runInsights(store, at(126.5));
    const third = await runInsights(store, at(127));
    expect(first.created).toBe(5);
    expect(second).toMatchObject({ created: 0, updated: 5 });
    expect(third).toMatchObject({ created: 0, updated: 5 });
    expect(await rowCount()).toBe(5);
    expect(third.ids.sort()).toEqual(first.ids.sort());
    const [memory] = byDetector(await listInsights(store, {}, at(127)), "metric_shift");
    expect(memory).toMatchObject({ occurrences: 3, createdAt: at(126), lastSeen: at(127) });
    // At minute 127 the recent window is minutes 122-125 (4 samples, mean 310 MB).
    expect(memory!.evidence).toMatchObject({ recent_samples: 4 });
    expect(memory!.evidence.recent_mean as number).toBeCloseTo(310 * MB, -1);
    expect(memory!.expiresAt).toEqual(new Date(at(127).getTime() + 30 * 60_000));
  });

  it("does not raise a dismissed insight again while its condition lasts, and expires the rest once it is gone", async () => {
    const { frontend } = await incident();
    await runInsights(store, at(126));
    const [memory] = byDetector(await listInsights(store, {}, at(126)), "metric_shift");
    const dismissed = await dismissInsight(store, memory!.id, { by: "local", now: at(126.2) });
    expect(dismissed).toMatchObject({ id: memory!.id, status: "dismissed", dismissedBy: "local", dismissedAt: at(126.2) });
    expect(await dismissInsight(store, 999_999)).toBeNull();

    // The leak goes on.
    for (let m = 126; m < 129; m++) frontend.minute(at(m), { memory_bytes: (360 + 20 * (m - 126)) * MB, cpu_percent: 5, health_up: 1 }, ["127.0.0.1:8080", "127.0.0.1:6379"]);
    await frontend.flush();
    const later = await runInsights(store, at(129));
    expect(later.findings.some((f) => f.detector === "metric_shift")).toBe(true);
    expect(later.suppressed).toBe(1);
    expect(later.created).toBe(0);
    const active = await listInsights(store, {}, at(129));
    expect(byDetector(active, "metric_shift")).toEqual([]);
    expect(active).toHaveLength(4);
    expect(await countActiveInsights(store, at(129))).toBe(4);
    const all = await listInsights(store, { status: "all" }, at(129));
    expect(all).toHaveLength(5);
    expect(byDetector(all, "metric_shift")[0]).toMatchObject({ id: memory!.id, status: "dismissed", occurrences: 2 });
    expect(await listInsights(store, { status: "dismissed" }, at(129))).toHaveLength(1);

    // Two hours after the deploy, with no data and no restarts for an hour and a
    // half: every condition is gone and the rest expire.
    const quiet = await runInsights(store, at(230));
    expect(quiet.findings).toEqual([]);
    expect(quiet.expired).toBe(4);
    expect(await listInsights(store, {}, at(230))).toEqual([]);
    expect(await listInsights(store, { status: "expired" }, at(230))).toHaveLength(4);
    expect(await countActiveInsights(store, at(230))).toBe(0);
  });
});

describe("a dependency that turns slow", () => {
  it("raises a metric shift naming it and its callers", async () => {
    const api = new SimAgent(store, "api-1", "api", 8080);
    const payments = new SimAgent(store, "payments-1", "payments", 9090);
    await api.register(at(0), "2.1.0");
    await payments.register(at(0), "3.4.0");
    for (let m = 0; m < 125; m++) {
      const latency = m >= 120 ? 100 : steady(20, m, 1);
      payments.minute(at(m), { health_latency_ms: latency, health_up: 1, memory_bytes: steady(80 * MB, m, MB), cpu_percent: steady(8, m, 1) });
      api.minute(at(m), { health_latency_ms: steady(12, m, 1), health_up: 1, memory_bytes: steady(150 * MB, m, MB), cpu_percent: steady(15, m, 2) }, ["127.0.0.1:9090"]);
    }
    await Promise.all([api.flush(), payments.flush()]);

    const run = await runInsights(store, at(125));
    expect(run.findings.map((f) => dedupeKey(f))).toEqual(["metric_shift|payments|health_latency_ms"]);
    const [slow] = await listInsights(store, {}, at(125));
    expect(slow).toMatchObject({
      detector: "metric_shift",
      service: "payments",
      type: "anomaly",
      priority: "high",
      affectedServices: ["payments", "api"],
      title: "payments health check latency 5.0× its usual (20 ms → 100 ms)",
    });
    expect(slow!.summary).toContain("api calls it");
    expect(slow!.evidence).toMatchObject({ metric: "health_latency_ms", recent_mean: 100, recent_samples: 5, baseline_window: "1h", baseline_samples: 60, ratio: 5, dependents: ["api"] });
    expect(slow!.evidence.baseline_mean as number).toBeCloseTo(20, 6);
    expect(slow!.evidenceLines).toContain("called by api");
    expect(slow!.recommendations[0]).toBe("Check payments: api depends on it");
    expect(await listInsights(store, { service: "api" }, at(125))).toHaveLength(1);
    expect(await listInsights(store, { service: "legacy" }, at(125))).toHaveLength(0);
  });
});

describe("health that flaps after a deploy", () => {
  it("raises health flapping and ties it to the deploy event's version", async () => {
    const worker = new SimAgent(store, "worker-1", "worker", 9000);
    await worker.register(at(0), "1.0.0");
    for (let m = 0; m < 120; m++) worker.minute(at(m), { cpu_percent: steady(20, m, 2), memory_bytes: steady(90 * MB, m, MB), health_up: 1 });
    // A deploy reported as an event (by a deploy tool or the SDK), not by re-registering.
    worker.event(at(110), "deploy", { version: "1.1.0", previous_version: "1.0.0" });
    [114, 115, 117, 118, 119.5].forEach((m, i) => worker.event(at(m), "health_changed", { healthy: i % 2 === 1, status: i % 2 === 1 ? 200 : 503 }));
    await worker.flush();

    await runInsights(store, at(120));
    const list = await listInsights(store, {}, at(120));
    expect(list.map((i) => dedupeKey(i))).toEqual(["version_degradation|worker|1.1.0", "health_flapping|worker|"]);
    const [degraded, flapping] = list;
    expect(flapping).toMatchObject({ type: "pattern", priority: "medium", title: "worker health is flapping (5 changes in 10 min)" });
    expect(flapping!.evidence).toMatchObject({ changes: 5, to_unhealthy: 3, threshold: 4, window_minutes: 10 });
    expect(flapping!.evidenceLines[1]).toBe("09:54 unhealthy, 09:55 healthy, 09:57 unhealthy, 09:58 healthy, 09:59 unhealthy");
    expect(degraded).toMatchObject({ title: "worker degraded after 1.0.0 → 1.1.0: failing health checks" });
    expect(degraded!.evidence).toMatchObject({
      from_version: "1.0.0",
      to_version: "1.1.0",
      source: "deploy",
      changed_at: at(110).toISOString(),
      signals: [{ kind: "unhealthy", count: 3, first_at: at(114).toISOString() }],
    });
    expect(degraded!.evidenceLines[0]).toBe("version change: worker 1.0.0 → 1.1.0 at 09:50 UTC (deploy)");
  });
});

describe("a quiet baseline", () => {
  it("raises no insight over two hours of steady data, a routine deploy and a late starter", async () => {
    const rand = noise(42);
    const agents = ["api", "worker", "frontend"].map((name, i) => new SimAgent(store, `${name}-1`, name, 8000 + i));
    for (const a of agents) await a.register(at(0), "1.0.0");
    const late = new SimAgent(store, "cache-1", "cache", 6379);
    await late.register(at(100), "7.2.0");
    for (let m = 0; m < 120; m++) {
      agents.forEach((a, i) => {
        a.minute(
          at(m),
          {
            cpu_percent: 10 + 5 * rand(),
            memory_bytes: (150 + 50 * i) * MB * (1 + 0.05 * rand()),
            health_latency_ms: 15 + 10 * rand(),
            health_up: 1,
            thread_count: 10 + i,
            fd_count: 40 + Math.round(3 * rand()),
            http_requests_total: 1000 * m + 17 * i,
          },
          i === 0 ? ["127.0.0.1:8001", "127.0.0.1:6379"] : [],
        );
      });
      // The late starter warms up: its memory triples in its first minutes.
      if (m >= 100) late.minute(at(m), { memory_bytes: Math.min(20 + 6 * (m - 100), 80) * MB, cpu_percent: 30 - (m - 100), health_up: 1 });
    }
    // A routine deploy of worker at minute 60: one restart, new version, nothing else changes.
    agents[1]!.restart(at(59.9));
    // One health blip on api.
    agents[0]!.event(at(70), "health_changed", { healthy: false, status: 503 }).event(at(70.5), "health_changed", { healthy: true, status: 200 });
    for (const a of [...agents, late]) await a.flush();
    await agents[1]!.register(at(60), "1.1.0");

    for (let m = 10; m <= 120; m += 10) {
      const run = await runInsights(store, at(m));
      expect(run.findings, `at minute ${m}`).toEqual([]);
    }
    expect(await rowCount()).toBe(0);
    expect((await listBaselines(store)).length).toBeGreaterThan(0);
  });
});

describe("the loop", () => {
  it("runs on its interval with the given clock and stops cleanly", async () => {
    await incident();
    const runs: number[] = [];
    const loop = startInsightsLoop(store, { intervalMs: 20, now: () => at(126), onRun: (r) => runs.push(r.created) });
    await expect.poll(() => runs.length, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
    await loop.stop();
    const after = runs.length;
    expect(runs[0]).toBe(5);
    expect(runs.slice(1).every((n) => n === 0)).toBe(true);
    expect(await rowCount()).toBe(5);
    await sleep(60);
    expect(runs.length).toBe(after);
  });
});

describe("OpenTelemetry: error bursts and slow operations", () => {
  const checkout = "otel_span_latency_ms:POST::20/checkout";

  it("raises an error burst from a quiet baseline and a shift of one operation's latency, with their numbers", async () => {
    const api = new SimAgent(store, "api-1", "api", 3001);
    await api.register(at(0), "1.0.0");
    const jitter = noise(7);
    // Two quiet hours: no error logs, checkout at ~20 ms. Then 5 minutes of 8 error records a minute and checkout at ~120 ms.
    for (let m = 0; m < 125; m++) {
      const burst = m >= 120;
      api.minute(at(m), { otel_log_errors: burst ? 8 : 0, otel_span_errors: 0, [checkout]: burst ? 120 + jitter() : 20 + jitter() });
    }
    await api.flush();
    await runInsights(store, at(125));
    const list = await listInsights(store, {}, at(125));
    const [burst] = byDetector(list, "error_burst", "otel_log_errors");
    expect(burst).toBeDefined();
    expect(burst!.title).toBe("api: 40 log records at ERROR or worse in 5 min (usually none in the last 1h)");
    expect(burst!.priority).toBe("high");
    expect(burst!.evidence).toMatchObject({ recent_total: 40, recent_per_minute: 8, baseline_window: "1h", baseline_per_minute: 0, ratio: null });
    expect(burst!.recommendations[0]).toBe("coral logs --service api --severity error --since 15m");
    expect(byDetector(list, "error_burst", "otel_span_errors")).toEqual([]); // no failed spans
    expect(byDetector(list, "metric_shift", "otel_log_errors")).toEqual([]); // judged by error_burst only
    const [slow] = byDetector(list, "metric_shift", checkout);
    expect(slow).toBeDefined();
    expect(slow!.evidence).toMatchObject({ metric: checkout });
    expect(Number(slow!.evidence.ratio)).toBeGreaterThan(5);
  });

  it("stays quiet when the errors are as usual, or too few", async () => {
    const api = new SimAgent(store, "api-1", "api", 3001);
    await api.register(at(0), "1.0.0");
    for (let m = 0; m < 125; m++) api.minute(at(m), { otel_log_errors: m >= 120 ? 12 : 10, otel_span_errors: m >= 120 ? 1 : 0 });
    await api.flush();
    const run = await runInsights(store, at(125));
    expect(run.findings.filter((f) => f.detector === "error_burst")).toEqual([]);
  });
});
