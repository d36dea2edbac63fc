import { describe, expect, it } from "vitest";
import { startLoop } from "./cleanup.ts";
import { RETENTION_CHUNK } from "./retention.ts";
import type { StorageLogger } from "./index.ts";
import { at, tempStores, waitFor } from "./testing.ts";

const hour = 3_600_000;

describe("retention", () => {
  it("deletes only raw rows older than the retention and never the outbox", async () => {
    await using t = await tempStores();
    const store = await t.open("agent.sqlite", { retentionMs: hour });
    const now = at(2 * 3600);
    const old = new Date(now.getTime() - hour - 1);
    const edge = new Date(now.getTime() - hour);
    const fresh = new Date(now.getTime() - 1000);
    await store.recordMetrics([
      { timestamp: old, name: "m", value: 1 },
      { timestamp: edge, name: "m", value: 2 },
      { timestamp: fresh, name: "m", value: 3 },
    ]);
    await store.recordEvent({ eventId: "old", timestamp: old, eventType: "start" });
    await store.recordEvent({ eventId: "fresh", timestamp: fresh, eventType: "stop" });
    await store.recordConnections([{ localAddr: "a:1", remoteAddr: "b:2", state: "ESTABLISHED" }], old);
    await store.recordConnections([{ localAddr: "a:1", remoteAddr: "b:2", state: "ESTABLISHED" }], fresh);
    const snap = { pid: 1, cpuPercent: 0, memoryBytes: 0, fdCount: 0, threadCount: 1 };
    await store.recordSnapshot({ ...snap, timestamp: old });
    await store.recordSnapshot({ ...snap, timestamp: fresh });
    const window = { durationMs: 60_000, hz: 19, totalSamples: 3, otherSamples: 1, frames: [{ function: "main", module: "/bin/x", kernel: false }], stacks: [{ frameIds: [0], samples: 2, pid: 7 }] };
    await store.recordProfileWindow({ ...window, start: old });
    await store.recordProfileWindow({ ...window, start: fresh, totalSamples: 5 });
    const ns = (d: Date) => BigInt(d.getTime()) * 1_000_000n;
    const span = { traceId: "ab".repeat(16), spanId: "cd".repeat(8), parentSpanId: "", service: "api", pid: 1, name: "GET /", kind: "server", endNs: 0n, durationMs: 1, error: false, statusMessage: "", attributes: "{}" };
    await store.recordSpans([{ ...span, startNs: ns(old) }, { ...span, spanId: "ef".repeat(8), startNs: ns(fresh) }]);
    const log = { service: "api", pid: 1, severityNumber: 17, severityText: "ERROR", attributes: "{}", traceId: "", spanId: "" };
    await store.recordLogs([{ ...log, timeNs: ns(old), body: "old" }, { ...log, timeNs: ns(fresh), body: "fresh" }]);
    await store.enqueue({ batchId: "ancient", subject: "coral.c.telemetry", payload: new Uint8Array([1]), at: at(0) });

    expect(await store.applyRetention(now)).toEqual({ cutoff: edge, metrics: 1, events: 1, connections: 1, snapshots: 1, uprobeEvents: 0, profileWindows: 1, uprobeCollectors: 0, otlpSpans: 1, otlpLogs: 1 });
    expect((await store.queryMetrics({ limit: 10 })).rows.map((p) => p.value)).toEqual([2, 3]);
    expect((await store.queryEvents({ limit: 10 })).rows.map((e) => e.eventId)).toEqual(["fresh"]);
    expect((await store.queryConnections({ limit: 10 })).rows.map((c) => c.observedAt)).toEqual([fresh]);
    expect((await store.querySnapshots({ limit: 10 })).rows.map((s) => s.timestamp)).toEqual([fresh]);
    expect((await store.queryProfileWindows({ limit: 10 })).rows).toEqual([{ ...window, start: fresh, totalSamples: 5 }]);
    expect((await store.querySpans({ limit: 10 })).rows.map((r) => r.spanId)).toEqual(["ef".repeat(8)]);
    expect((await store.queryLogs({ limit: 10 })).rows.map((r) => r.body)).toEqual(["fresh"]);
    expect((await store.peek(10)).map((r) => r.batchId)).toEqual(["ancient"]);
    expect(await store.pendingCount()).toBe(1);
  });

  it("deletes more rows than one chunk, chunk by chunk, and keeps the rest", async () => {
    await using t = await tempStores();
    const store = await t.open("agent.sqlite", { retentionMs: hour });
    const now = at(3 * 3600);
    const old = Array.from({ length: RETENTION_CHUNK * 2 + 17 }, (_, i) => ({ timestamp: new Date(now.getTime() - 2 * hour + i), name: "m", value: i }));
    await store.recordMetrics([...old, { timestamp: now, name: "m", value: -1 }]);
    expect((await store.applyRetention(now)).metrics).toBe(old.length);
    expect((await store.queryMetrics({ limit: 10 })).rows.map((p) => p.value)).toEqual([-1]);
  });

  it("runs retention periodically until stopped", async () => {
    await using t = await tempStores();
    const logged: { level: string; msg: string }[] = [];
    const store = await t.open("agent.sqlite", { retentionMs: hour, logger: (level, msg) => logged.push({ level, msg }) });
    const twoHoursAgo = new Date(Date.now() - 2 * hour);
    await store.recordMetrics([
      { timestamp: twoHoursAgo, name: "m", value: 1 },
      { timestamp: new Date(), name: "m", value: 2 },
    ]);
    const stop = store.startCleanup(20);
    await waitFor("the old point to be deleted", async () => (await store.queryMetrics({ limit: 10 })).rows.length === 1);
    await stop();
    await store.recordMetrics([{ timestamp: twoHoursAgo, name: "m", value: 3 }]);
    // Stopped: the loop is gone, so the stale point stays until someone applies retention.
    expect((await store.queryMetrics({ limit: 10 })).rows.map((p) => p.value)).toEqual([3, 2]);
    expect(logged.some((l) => l.level === "info" && l.msg === "agent storage retention")).toBe(true);
    expect(() => store.startCleanup(-1)).toThrow(/positive number of ms/);
  });

  it("logs a failing run and keeps going, never throwing from the timer", async () => {
    const logged: { level: string; err: unknown }[] = [];
    const logger: StorageLogger = (level, _msg, fields) => logged.push({ level, err: fields?.err });
    let runs = 0;
    const loop = startLoop(
      5,
      async () => {
        runs++;
        throw new Error(`disk full #${runs}`);
      },
      logger,
    );
    await waitFor("three failed runs", () => runs >= 3);
    await loop.stop();
    expect(logged.slice(0, 2)).toEqual([
      { level: "error", err: "disk full #1" },
      { level: "error", err: "disk full #2" },
    ]);
  });
});
