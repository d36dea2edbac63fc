import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { AgentStoreClosedError, MAX_RETENTION_MS, migrations, openAgentStore, type MetricPoint } from "./index.ts";
import { at, tempStores } from "./testing.ts";

describe("opening the agent store", () => {
  it("migrates a new file once and keeps its data across a reopen", async () => {
    await using t = await tempStores();
    const first = await t.open();
    expect(first.migrationsApplied).toEqual(migrations.map((m) => m.version));
    expect(await first.schemaVersion()).toBe(migrations.length);
    await first.recordMetrics([{ timestamp: at(0), name: "cpu", value: 12.5 }]);
    await first.recordEvent({ eventId: "e1", timestamp: at(1), eventType: "start", processName: "api" });
    await first.close();

    const second = await t.open();
    expect(second.migrationsApplied).toEqual([]);
    expect(await second.schemaVersion()).toBe(migrations.length);
    expect((await second.queryMetrics({ limit: 10 })).rows).toEqual([
      { timestamp: at(0), name: "cpu", value: 12.5, labels: {} },
    ]);
    expect((await second.queryEvents({ limit: 10 })).rows.map((e) => e.eventId)).toEqual(["e1"]);
  });

  it("defaults to 1 h retention, accepts 6 h and refuses more with a clear error", async () => {
    await using t = await tempStores();
    expect((await t.open("a.sqlite")).retentionMs).toBe(3_600_000);
    expect((await t.open("b.sqlite", { retentionMs: MAX_RETENTION_MS })).retentionMs).toBe(6 * 3_600_000);
    await expect(t.open("c.sqlite", { retentionMs: MAX_RETENTION_MS + 1 })).rejects.toThrow(/exceeds the maximum of 6 h/);
    await expect(t.open("d.sqlite", { retentionMs: 0 })).rejects.toThrow(/positive number of milliseconds/);
  });

  it("refuses a file migrated by a newer agent", async () => {
    await using t = await tempStores();
    const file = join(t.dir, "newer.sqlite");
    await (await openAgentStore(file)).close();
    const db = new Database(file);
    db.prepare("INSERT INTO schema_migrations VALUES (99, 'from the future', ?)").run(Date.now());
    db.close();
    await expect(openAgentStore(file)).rejects.toThrow(/schema version is 99.*upgrade the agent/);
  });

  it("closes idempotently and rejects calls after close", async () => {
    await using t = await tempStores();
    const store = await openAgentStore(join(t.dir, "closing.sqlite"));
    await store.recordSnapshot({ timestamp: at(0), pid: 1, cpuPercent: 1, memoryBytes: 1, fdCount: 1, threadCount: 1 });
    await Promise.all([store.close(), store.close()]);
    await store[Symbol.asyncDispose]();
    await expect(store.queryMetrics({ limit: 1 })).rejects.toBeInstanceOf(AgentStoreClosedError);
    await expect(store.enqueue({ batchId: "b", subject: "s", payload: new Uint8Array() })).rejects.toBeInstanceOf(
      AgentStoreClosedError,
    );
    expect(() => store.startCleanup()).toThrow(AgentStoreClosedError);
  });
});

describe("metrics", () => {
  it("round-trips points with labels and filters by name and [since, until)", async () => {
    await using t = await tempStores();
    const store = await t.open();
    const points: MetricPoint[] = [];
    for (let s = 0; s < 5; s++) {
      points.push({ timestamp: at(s), name: "cpu_percent", value: s * 10 });
      points.push({ timestamp: at(s), name: "http_requests_total", value: s, labels: { path: "/a", code: "200" } });
    }
    expect(await store.recordMetrics(points)).toBe(10);

    const cpu = await store.queryMetrics({ metricName: "cpu_percent", limit: 100 });
    expect(cpu.truncated).toBe(false);
    expect(cpu.rows.map((p) => [p.timestamp, p.value])).toEqual([0, 1, 2, 3, 4].map((s) => [at(s), s * 10]));

    const http = await store.queryMetrics({ metricName: "http_requests_total", since: at(1), until: at(3), limit: 100 });
    expect(http.rows).toEqual([
      { timestamp: at(1), name: "http_requests_total", value: 1, labels: { path: "/a", code: "200" } },
      { timestamp: at(2), name: "http_requests_total", value: 2, labels: { path: "/a", code: "200" } },
    ]);
    expect((await store.queryMetrics({ metricName: "nope", limit: 10 })).rows).toEqual([]);
  });

  it("limits to the newest points, returns them oldest first and says it truncated", async () => {
    await using t = await tempStores();
    const store = await t.open();
    await store.recordMetrics(Array.from({ length: 10 }, (_, s) => ({ timestamp: at(s), name: "m", value: s })));
    const page = await store.queryMetrics({ metricName: "m", limit: 3 });
    expect(page.truncated).toBe(true);
    expect(page.rows.map((p) => p.value)).toEqual([7, 8, 9]);
    const exact = await store.queryMetrics({ metricName: "m", limit: 10 });
    expect(exact.truncated).toBe(false);
    expect(exact.rows).toHaveLength(10);
    await expect(store.queryMetrics({ limit: 0 })).rejects.toThrow(/limit must be a positive integer/);
  });

  it("skips non-finite values and refuses a malformed batch without writing any of it", async () => {
    await using t = await tempStores();
    const store = await t.open();
    const stored = await store.recordMetrics([
      { timestamp: at(0), name: "m", value: 1 },
      { timestamp: at(1), name: "m", value: Number.NaN },
      { timestamp: at(2), name: "m", value: Number.POSITIVE_INFINITY },
    ]);
    expect(stored).toBe(1);
    await expect(
      store.recordMetrics([
        { timestamp: at(3), name: "m", value: 3 },
        { timestamp: new Date("nope"), name: "m", value: 4 },
      ]),
    ).rejects.toThrow(/metric point 1 timestamp must be a valid Date/);
    await expect(store.recordMetrics([{ timestamp: at(3), name: "", value: 3 }])).rejects.toThrow(/has no name/);
    expect((await store.queryMetrics({ limit: 10 })).rows.map((p) => p.value)).toEqual([1]);
    expect(await store.recordMetrics([])).toBe(0);
  });
});

describe("events", () => {
  it("stores an event, returns it as stored and keeps the first on a repeated id", async () => {
    await using t = await tempStores();
    const store = await t.open();
    const generated = await store.recordEvent({ timestamp: at(0), eventType: "start", processName: "api", details: { pid: 42 } });
    expect(generated).toEqual({
      eventId: expect.stringMatching(/^[0-9a-f-]{36}$/),
      timestamp: at(0),
      eventType: "start",
      processName: "api",
      details: { pid: 42 },
    });
    const first = await store.recordEvent({ eventId: "crash-1", timestamp: at(5), eventType: "crash", details: { code: 137 } });
    const again = await store.recordEvent({ eventId: "crash-1", timestamp: at(9), eventType: "stop" });
    expect(again).toEqual(first);
    expect(first).toEqual({ eventId: "crash-1", timestamp: at(5), eventType: "crash", processName: null, details: { code: 137 } });
    expect((await store.queryEvents({ limit: 10 })).rows.map((e) => e.eventId)).toEqual([generated.eventId, "crash-1"]);
  });

  it("filters by type, process and time and limits to the newest", async () => {
    await using t = await tempStores();
    const store = await t.open();
    const types = ["start", "deploy", "crash", "start", "stop"];
    for (const [i, eventType] of types.entries()) {
      await store.recordEvent({ eventId: `e${i}`, timestamp: at(i), eventType, processName: i % 2 ? "worker" : "api" });
    }
    const ids = async (q: Parameters<typeof store.queryEvents>[0]) => (await store.queryEvents(q)).rows.map((e) => e.eventId);
    expect(await ids({ eventType: "start", limit: 10 })).toEqual(["e0", "e3"]);
    expect(await ids({ processName: "worker", limit: 10 })).toEqual(["e1", "e3"]);
    expect(await ids({ since: at(1), until: at(4), limit: 10 })).toEqual(["e1", "e2", "e3"]);
    const page = await store.queryEvents({ limit: 2 });
    expect(page).toMatchObject({ truncated: true });
    expect(page.rows.map((e) => e.eventId)).toEqual(["e3", "e4"]);
  });
});

describe("process snapshots and connections", () => {
  it("round-trips snapshots and filters by pid and time", async () => {
    await using t = await tempStores();
    const store = await t.open();
    for (let s = 0; s < 4; s++) {
      await store.recordSnapshot({
        timestamp: at(s),
        pid: s < 3 ? 100 : 200,
        cpuPercent: 1.5 * s,
        memoryBytes: 5_000_000_000 + s,
        fdCount: 10 + s,
        threadCount: 4,
      });
    }
    const pid100 = await store.querySnapshots({ pid: 100, since: at(1), limit: 10 });
    expect(pid100).toEqual({
      truncated: false,
      rows: [
        { timestamp: at(1), pid: 100, cpuPercent: 1.5, memoryBytes: 5_000_000_001, fdCount: 11, threadCount: 4 },
        { timestamp: at(2), pid: 100, cpuPercent: 3, memoryBytes: 5_000_000_002, fdCount: 12, threadCount: 4 },
      ],
    });
    const newest = await store.querySnapshots({ limit: 1 });
    expect(newest.truncated).toBe(true);
    expect(newest.rows.map((r) => r.pid)).toEqual([200]);
  });

  it("stores the connections seen at a moment", async () => {
    await using t = await tempStores();
    const store = await t.open();
    expect(
      await store.recordConnections(
        [
          { localAddr: "10.0.0.2:41000", remoteAddr: "10.0.0.9:5432", state: "ESTABLISHED" },
          { localAddr: "10.0.0.2:41002", remoteAddr: "10.0.0.7:6379", state: "TIME_WAIT" },
        ],
        at(0),
      ),
    ).toBe(2);
    await store.recordConnections([{ localAddr: "10.0.0.2:41004", remoteAddr: "10.0.0.9:5432", state: "ESTABLISHED" }], at(60));
    const latest = await store.queryConnections({ since: at(60), limit: 10 });
    expect(latest.rows).toEqual([
      { localAddr: "10.0.0.2:41004", remoteAddr: "10.0.0.9:5432", state: "ESTABLISHED", observedAt: at(60) },
    ]);
    expect((await store.queryConnections({ limit: 10 })).rows).toHaveLength(3);
  });
});
