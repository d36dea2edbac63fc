import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { pollUntil, sleep } from "@coral/common/async";
import {
  ConnectionObservationSchema,
  EventSchema,
  MetricSummarySchema,
  TelemetryBatchSchema,
  type TelemetryBatch,
} from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  IngestError,
  SnapshotVersionError,
  StoreClosedError,
  isLoopback,
  migrations,
  openStore,
  parseHostPort,
  pickInterval,
  type AgentRow,
  type ColonyStore,
} from "./index.ts";
import { startLoop } from "./maintenance.ts";
import { migrate } from "./migrations.ts";
import { DuckDBInstance } from "@duckdb/node-api";

let dir: string;
let stores: ColonyStore[] = [];

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "colony-store-"));
  stores = [];
});

afterEach(async () => {
  for (const s of stores) await s.close();
  await rm(dir, { recursive: true, force: true });
});

async function open(name = "colony.duckdb", retention = {}): Promise<ColonyStore> {
  const s = await openStore(join(dir, ".coral", name), { retention });
  stores.push(s);
  return s;
}

const T0 = new Date("2024-05-01T10:00:00.000Z");
const min = (n: number): Date => new Date(T0.getTime() + n * 60_000);

interface MetricInit {
  at: Date;
  name?: string;
  interval?: string;
  mean?: number;
  max?: number;
  min?: number;
  p50?: number;
  p95?: number;
  p99?: number;
  count?: number;
}

function batch(
  id: string,
  opts: {
    agent?: string;
    service?: string;
    metrics?: MetricInit[];
    events?: { id: string; at: Date; type?: string; details?: string }[];
    connections?: { local: string; remote: string; at: Date; count?: number; state?: string }[];
  } = {},
): TelemetryBatch {
  return create(TelemetryBatchSchema, {
    batchId: id,
    agentId: opts.agent ?? "agent-api",
    serviceName: opts.service ?? "api",
    createdAt: timestampFromDate(T0),
    metrics: (opts.metrics ?? []).map((m) =>
      create(MetricSummarySchema, {
        timestamp: timestampFromDate(m.at),
        metricName: m.name ?? "http.latency_ms",
        interval: m.interval ?? "",
        p50: m.p50 ?? 1,
        p95: m.p95 ?? 2,
        p99: m.p99 ?? 3,
        mean: m.mean ?? 1.5,
        max: m.max ?? 4,
        min: m.min ?? 0.5,
        count: BigInt(m.count ?? 10),
      }),
    ),
    events: (opts.events ?? []).map((e) =>
      create(EventSchema, {
        eventId: e.id,
        timestamp: timestampFromDate(e.at),
        eventType: e.type ?? "deploy",
        detailsJson: e.details ?? '{"version":"1.2.3"}',
      }),
    ),
    connections: (opts.connections ?? []).map((c) =>
      create(ConnectionObservationSchema, {
        localAddr: c.local,
        remoteAddr: c.remote,
        state: c.state ?? "ESTABLISHED",
        observedAt: timestampFromDate(c.at),
        count: c.count ?? 1,
      }),
    ),
  });
}

function agent(id: string, service: string, port: number, address = "127.0.0.1"): AgentRow {
  return {
    agentId: id,
    serviceName: service,
    port,
    address,
    version: "0.1.0",
    hostname: "laptop",
    tags: { env: "dev" },
    agentUrl: `http://${address}:9${port}`,
    registeredAt: T0,
    lastSeen: min(1),
    health: "healthy",
    pid: 4242,
    processStartedAt: null,
    restartCount: 0,
    cpuPercent: 12.5,
    memoryBytes: 123_456_789,
  };
}

async function count(store: ColonyStore, sql: string): Promise<number> {
  return store.read(async (c) => {
    const r = await c.runAndReadAll(sql);
    return Number(r.getRows()[0]?.[0]);
  });
}

describe("migrations", () => {
  it("run once; reopening keeps the schema version and the data", async () => {
    const path = join(dir, "nested", "deeper", "colony.duckdb");
    const a = await openStore(path);
    expect(await a.schemaVersion()).toBe(migrations.length);
    await a.upsertAgent(agent("agent-api", "api", 8080));
    await a.close();

    const b = await openStore(path);
    stores.push(b);
    expect(await b.schemaVersion()).toBe(migrations.length);
    expect(await count(b, "SELECT count(*) FROM schema_migrations")).toBe(migrations.length);
    const got = await b.getAgent("agent-api");
    expect(got).toMatchObject({ serviceName: "api", port: 8080, tags: { env: "dev" }, memoryBytes: 123_456_789 });
    expect(got?.lastSeen.toISOString()).toBe(min(1).toISOString());
  });

  it("11 keeps a schema-10 store's metric summaries and drops their row key", async () => {
    const path = join(dir, "v10.duckdb");
    const db = await DuckDBInstance.create(path);
    const c = await db.connect();
    await migrate(c, migrations.filter((m) => m.version <= 10));
    const insert = `INSERT INTO metric_summaries (timestamp, service_id, metric_name, interval, mean, count, gen)
      VALUES (TIMESTAMP '2026-06-01 12:00:00', 'api', 'cpu', '1m', 1, 60, 1), (TIMESTAMP '2026-06-01 12:00:00', 'api', 'cpu', '5m', 2, 300, 2)`;
    await c.run(insert);
    await expect(c.run(insert)).rejects.toThrow(/duplicate key|constraint/i);
    c.closeSync();
    db.closeSync();

    const s = await openStore(path);
    stores.push(s);
    expect(await s.schemaVersion()).toBe(migrations.length);
    expect(await count(s, "SELECT count(*) FROM metric_summaries WHERE interval = '5m' AND mean = 2 AND count = 300 AND gen = 2")).toBe(1);
    // the same key from another batch is stored now
    expect(await s.ingest([batch("b", { metrics: [{ at: new Date("2026-06-01T12:00:00Z"), mean: 3 }] })])).toMatchObject({ metricRows: 1 });
    expect(await count(s, "SELECT count(*) FROM metric_summaries WHERE interval = '1m'")).toBe(2);
  });
});

describe("ingest", () => {
  it("stores metric and event rows; a redelivered batch is a duplicate, also after reopening", async () => {
    const path = join(dir, "colony.duckdb");
    const s1 = await openStore(path);
    const b1 = batch("b-1", {
      metrics: [{ at: min(0) }, { at: min(1), name: "cpu" }],
      events: [{ id: "e-1", at: min(0) }],
    });
    expect(await s1.ingest([b1])).toEqual({ stored: 1, duplicates: 0, metricRows: 2, eventRows: 1, connectionRows: 0 });
    // the same id twice in one call, and once more on its own
    expect(await s1.ingest([b1, b1])).toMatchObject({ stored: 0, duplicates: 2, metricRows: 0 });
    await s1.close();

    const s2 = await openStore(path);
    stores.push(s2);
    expect(await s2.ingest([b1, batch("b-2", { metrics: [{ at: min(2) }] })])).toMatchObject({
      stored: 1,
      duplicates: 1,
      metricRows: 1,
    });
    expect(await count(s2, "SELECT count(*) FROM metric_summaries")).toBe(3);
    expect(await count(s2, "SELECT count(*) FROM events")).toBe(1);
    expect(await count(s2, "SELECT count(*) FROM ingested_batches")).toBe(2);
  });

  it("stores the rows of two batches that share a metric key (exactly once is per batch), and the first of a repeated event id", async () => {
    const s = await open();
    const r = await s.ingest([
      batch("b-1", { metrics: [{ at: min(0), mean: 1 }], events: [{ id: "e-1", at: min(0) }] }),
      batch("b-2", { metrics: [{ at: min(0), mean: 99 }], events: [{ id: "e-1", at: min(1) }] }),
    ]);
    expect(r).toMatchObject({ stored: 2, metricRows: 2, eventRows: 1 });
    const [series] = await s.queryMetrics({ service: "api", since: min(-1), until: min(5), interval: "1m" });
    expect(series?.points.map((p) => p.mean).sort((a, b) => a - b)).toEqual([1, 99]);
    // a redelivery of either adds nothing, in a later call or in the same one
    expect(await s.ingest([batch("b-2", { metrics: [{ at: min(0), mean: 99 }] }), batch("b-3", { metrics: [{ at: min(0), mean: 5 }] })])).toMatchObject({ stored: 1, duplicates: 1, metricRows: 1 });
    expect(await count(s, "SELECT count(*) FROM metric_summaries")).toBe(3);
  });

  it("a failing batch leaves nothing behind, and the good batch can be stored later", async () => {
    const s = await open();
    const good = batch("good", { metrics: [{ at: min(0) }], events: [{ id: "e-1", at: min(0) }] });
    const bad = batch("bad", {
      metrics: [{ at: min(1) }],
      events: [{ id: "e-2", at: min(1), details: "{not json" }],
      connections: [{ local: "127.0.0.1:50000", remote: "127.0.0.1:5432", at: min(1) }],
    });
    await expect(s.ingest([good, bad])).rejects.toThrow(IngestError);
    await expect(s.ingest([good, bad])).rejects.toThrow(/nothing was stored/);
    for (const table of ["metric_summaries", "events", "connection_observations", "ingested_batches"]) {
      expect(await count(s, `SELECT count(*) FROM ${table}`)).toBe(0);
    }
    // the writer keeps working after the failure
    expect(await s.ingest([good])).toMatchObject({ stored: 1, metricRows: 1, eventRows: 1 });
    expect(await s.ingest([good])).toMatchObject({ stored: 0, duplicates: 1 });
  });

  it("refuses invalid batches with a clear error before touching the database", async () => {
    const s = await open();
    await expect(s.ingest([batch("")])).rejects.toThrow(/no batch_id/);
    await expect(s.ingest([batch("x", { metrics: [{ at: min(0), interval: "2m" }] })])).rejects.toThrow(
      /interval "2m"/,
    );
    await expect(s.ingest([batch("y", { service: "", agent: "unknown" })])).rejects.toThrow(/not registered/);
    expect(await count(s, "SELECT count(*) FROM ingested_batches")).toBe(0);
  });

  it("takes the service name from the registered agent when the batch has none", async () => {
    const s = await open();
    await s.upsertAgent(agent("agent-db", "postgres", 5432));
    await s.ingest([batch("b", { agent: "agent-db", service: "", events: [{ id: "e", at: min(0) }] })]);
    expect((await s.queryEvents({ service: "postgres", limit: 5 })).map((e) => e.eventId)).toEqual(["e"]);
  });

  it("uses the message's interval, defaulting to 1m", async () => {
    const s = await open();
    await s.ingest([batch("b", { metrics: [{ at: min(0) }, { at: min(0), interval: "5m" }] })]);
    expect(await count(s, "SELECT count(*) FROM metric_summaries WHERE interval = '1m'")).toBe(1);
    expect(await count(s, "SELECT count(*) FROM metric_summaries WHERE interval = '5m'")).toBe(1);
  });
});

describe("queries", () => {
  it("queryMetrics: one series per metric, ascending, filtered by service, name, range and interval", async () => {
    const s = await open();
    await s.ingest([
      batch("b-api", {
        metrics: [
          { at: min(2), name: "latency", mean: 12 },
          { at: min(0), name: "latency", mean: 10 },
          { at: min(1), name: "latency", mean: 11 },
          { at: min(10), name: "latency", mean: 20 },
          { at: min(0), name: "cpu", mean: 0.5 },
        ],
      }),
      batch("b-web", { agent: "agent-web", service: "frontend", metrics: [{ at: min(0), name: "latency" }] }),
    ]);
    const all = await s.queryMetrics({ service: "api", since: min(0), until: min(5), interval: "1m" });
    expect(all.map((x) => x.metricName)).toEqual(["cpu", "latency"]);
    const latency = all.find((x) => x.metricName === "latency");
    expect(latency?.points.map((p) => [p.timestamp.toISOString(), p.mean])).toEqual([
      [min(0).toISOString(), 10],
      [min(1).toISOString(), 11],
      [min(2).toISOString(), 12],
    ]);
    expect(latency?.points[0]).toMatchObject({ p50: 1, p95: 2, p99: 3, max: 4, min: 0.5, count: 10 });
    const one = await s.queryMetrics({ service: "api", metricName: "cpu", since: min(0), until: min(60), interval: "1m" });
    expect(one).toHaveLength(1);
    expect(one[0]?.points).toHaveLength(1);
    expect(await s.queryMetrics({ service: "api", since: min(0), until: min(60), interval: "5m" })).toEqual([]);
    // Without a service: every service in one scan, one series per service and metric.
    const everyService = await s.queryMetrics({ since: min(0), until: min(5), interval: "1m" });
    expect(everyService.map((x) => [x.service, x.metricName, x.points.length])).toEqual([
      ["api", "cpu", 1],
      ["api", "latency", 3],
      ["frontend", "latency", 1],
    ]);
  });

  it("queryEvents: newest first, filtered by service, type, range, limited", async () => {
    const s = await open();
    await s.ingest([
      batch("b1", {
        events: [
          { id: "e1", at: min(0), type: "deploy" },
          { id: "e2", at: min(5), type: "crash", details: '{"code":137}' },
          { id: "e3", at: min(10), type: "deploy" },
        ],
      }),
      batch("b2", { agent: "agent-web", service: "frontend", events: [{ id: "e1", at: min(3), type: "deploy" }] }),
    ]);
    const api = await s.queryEvents({ service: "api", limit: 10 });
    expect(api.map((e) => e.eventId)).toEqual(["e3", "e2", "e1"]);
    expect(api[1]).toMatchObject({ service: "api", eventType: "crash" });
    expect(JSON.parse(api[1]?.detailsJson ?? "")).toEqual({ code: 137 });
    expect((await s.queryEvents({ eventType: "deploy", limit: 10 })).map((e) => `${e.service}/${e.eventId}`)).toEqual([
      "api/e3",
      "frontend/e1",
      "api/e1",
    ]);
    expect((await s.queryEvents({ since: min(1), until: min(6), limit: 10 })).map((e) => e.eventId)).toEqual([
      "e2",
      "e1",
    ]);
    expect(await s.queryEvents({ limit: 1 })).toHaveLength(1);
  });

  it("pickInterval follows the range", () => {
    const h = 3_600_000;
    const at = (ms: number) => new Date(T0.getTime() + ms);
    expect(pickInterval(T0, at(6 * h))).toBe("1m");
    expect(pickInterval(T0, at(6 * h + 1))).toBe("5m");
    expect(pickInterval(T0, at(48 * h))).toBe("5m");
    expect(pickInterval(T0, at(7 * 24 * h))).toBe("15m");
    expect(pickInterval(T0, at(90 * 24 * h))).toBe("1h");
    expect(pickInterval(T0, at(91 * 24 * h))).toBe("1d");
  });
});

describe("rollup", () => {
  it("computes exact 5m values from known 1m rows, only for completed windows, idempotently", async () => {
    const s = await open();
    // 10:00..10:04 → one 5m window [10:00, 10:05); 10:05 starts an incomplete one.
    const rows: MetricInit[] = [
      { at: min(0), mean: 1, max: 5, min: 0.5, p50: 1, p95: 4, p99: 5, count: 10 },
      { at: min(1), mean: 2, max: 6, min: 0.4, p50: 2, p95: 5, p99: 6, count: 10 },
      { at: min(2), mean: 3, max: 7, min: 0.3, p50: 3, p95: 6, p99: 7, count: 10 },
      { at: min(3), mean: 4, max: 8, min: 0.2, p50: 4, p95: 7, p99: 8, count: 10 },
      { at: min(4), mean: 5, max: 9, min: 0.1, p50: 5, p95: 8, p99: 9, count: 10 },
      { at: min(5), mean: 100, max: 100, min: 100, count: 10 },
    ];
    await s.ingest([batch("b", { metrics: rows })]);

    const r1 = await s.rollup(min(7));
    expect(r1["5m"]).toBe(1);
    const five = await s.queryMetrics({ service: "api", since: min(-60), until: min(60), interval: "5m" });
    expect(five).toHaveLength(1);
    expect(five[0]?.points).toEqual([
      { timestamp: min(0), mean: 3, max: 9, min: 0.1, p50: 3, p95: 6, p99: 7, count: 50 },
    ]);
    // no 15m/1h/1d window has completed yet
    expect(await count(s, "SELECT count(*) FROM metric_summaries WHERE interval IN ('15m','1h','1d')")).toBe(0);

    // re-running changes nothing and duplicates nothing
    await s.rollup(min(7));
    await s.rollup(min(7));
    expect(await count(s, "SELECT count(*) FROM metric_summaries WHERE interval = '5m'")).toBe(1);
    const again = await s.queryMetrics({ service: "api", since: min(-60), until: min(60), interval: "5m" });
    expect(again).toEqual(five);
  });

  it("count-weights unequal windows, recomputes on late data, and cascades to 15m/1h/1d", async () => {
    const s = await open();
    await s.ingest([
      batch("b1", {
        metrics: [
          { at: min(0), mean: 10, p99: 100, count: 1 },
          { at: min(1), mean: 20, p99: 200, count: 3 },
        ],
      }),
    ]);
    await s.rollup(min(6));
    let [series] = await s.queryMetrics({ service: "api", since: min(0), until: min(0), interval: "5m" });
    expect(series?.points[0]).toMatchObject({ mean: 17.5, p99: 175, count: 4 });

    // a late 1m row for the same, already rolled-up window
    await s.ingest([batch("b2", { metrics: [{ at: min(2), mean: 30, p99: 300, count: 4 }] })]);
    await s.rollup(min(6));
    [series] = await s.queryMetrics({ service: "api", since: min(0), until: min(0), interval: "5m" });
    expect(series?.points[0]).toMatchObject({ mean: 23.75, p99: 237.5, count: 8 });

    // the day completes: every level gets exactly one row with the same totals
    const nextDay = new Date("2024-05-02T00:00:00.000Z");
    const r = await s.rollup(nextDay);
    expect(r).toMatchObject({ "15m": 1, "1h": 1, "1d": 1 });
    for (const interval of ["15m", "1h", "1d"] as const) {
      const [x] = await s.queryMetrics({ service: "api", since: min(-24 * 60), until: nextDay, interval });
      expect(x?.points).toHaveLength(1);
      expect(x?.points[0]).toMatchObject({ mean: 23.75, p99: 237.5, count: 8, max: 4, min: 0.5 });
    }
    expect(await s.rollup(nextDay)).toEqual({ "5m": 0, "15m": 0, "1h": 0, "1d": 0 });
  });
});

describe("retention", () => {
  it("deletes only rows older than the policy", async () => {
    const s = await open("colony.duckdb", { events: 60 * 60_000 });
    const now = min(24 * 60 + 30); // the next day, 10:30
    await s.ingest([
      batch("b", {
        metrics: [
          { at: min(0) }, // 24.5 h old: past 1m retention (24 h)
          { at: min(60) }, // 23.5 h old: kept
          { at: min(0), interval: "5m" }, // kept (7 d)
        ],
        events: [
          { id: "old", at: min(24 * 60 - 60) }, // 90 min old: past the 60 min override
          { id: "new", at: min(24 * 60) }, // 30 min old
        ],
      }),
    ]);
    await s.appendAudit({ at: new Date(now.getTime() - 400 * 86_400_000), actor: "a", action: "x", target: "t", details: {} });
    await s.appendAudit({ at: now, actor: "a", action: "y", target: "t", details: {} });

    const deleted = await s.applyRetention(now);
    expect(deleted).toMatchObject({ metrics_1m: 1, metrics_5m: 0, events: 1, audit: 1 });
    expect(await count(s, "SELECT count(*) FROM metric_summaries WHERE interval = '1m'")).toBe(1);
    expect(await count(s, "SELECT count(*) FROM metric_summaries WHERE interval = '5m'")).toBe(1);
    expect((await s.queryEvents({ limit: 10 })).map((e) => e.eventId)).toEqual(["new"]);
    expect((await s.listAudit(10)).map((a) => a.action)).toEqual(["y"]);
    expect(s.retention.events).toBe(60 * 60_000);
    expect(s.retention.metrics_5m).toBe(7 * 86_400_000);
  });

  it("rejects a nonsensical policy", async () => {
    await expect(openStore(join(dir, "x.duckdb"), { retention: { events: -1 } })).rejects.toThrow(/positive/);
  });
});

describe("agents and actors", () => {
  it("upserts and lists agents", async () => {
    const s = await open();
    await s.upsertAgent(agent("a1", "api", 8080));
    await s.upsertAgent({ ...agent("a1", "api", 8080), health: "degraded", restartCount: 2 });
    await s.upsertAgent(agent("a2", "frontend", 3000));
    const list = await s.listAgents();
    expect(list.map((a) => [a.agentId, a.health, a.restartCount])).toEqual([
      ["a1", "degraded", 2],
      ["a2", "healthy", 0],
    ]);
    expect(await s.getAgent("nope")).toBeNull();
    expect(await count(s, "SELECT count(*) FROM services")).toBe(2);
  });

  it("versions snapshots, refuses gaps, and answers history questions", async () => {
    const s = await open();
    const snap = (version: number, state: string, at: Date) => ({
      actorId: "agent:a1",
      kind: "agent",
      version,
      state,
      snapshot: JSON.stringify({ value: state }),
      updatedAt: at,
    });
    const tr = (version: number, from: string, to: string, at: Date) => ({
      actorId: "agent:a1",
      kind: "agent",
      at,
      fromState: from,
      toState: to,
      event: `to.${to}`,
      reason: "",
      version,
    });
    await expect(s.saveActorSnapshot(snap(2, "online", min(0)))).rejects.toThrow(SnapshotVersionError);
    await s.saveActorSnapshot(snap(1, "registering", min(0)), tr(1, "", "registering", min(0)));
    await s.saveActorSnapshot(snap(2, "online", min(1)), tr(2, "registering", "online", min(1)));
    await s.saveActorSnapshot(snap(3, "degraded", min(5)), tr(3, "online", "degraded", min(5)));
    // a lost update: someone writes version 3 again
    await expect(s.saveActorSnapshot(snap(3, "offline", min(6)), tr(3, "degraded", "offline", min(6)))).rejects.toThrow(
      /expected 4/,
    );
    // a gap
    await expect(s.saveActorSnapshot(snap(5, "offline", min(6)))).rejects.toThrow(/stored version is 3/);
    // the refused writes left no transition behind
    expect(await count(s, "SELECT count(*) FROM actor_transitions")).toBe(3);

    const [loaded] = await s.loadActorSnapshots("agent");
    expect(loaded).toMatchObject({ version: 3, state: "degraded" });
    expect(await s.loadActorSnapshots("rollback")).toEqual([]);

    const all = await s.transitionsFor("agent:a1", { limit: 10 });
    expect(all.map((t) => t.toState)).toEqual(["degraded", "online", "registering"]);
    const until = await s.transitionsFor("agent:a1", { until: min(2), limit: 1 });
    expect(until.map((t) => t.toState)).toEqual(["online"]);

    expect(await s.stateAt("agent:a1", min(-1))).toBeNull();
    expect(await s.stateAt("agent:a1", min(0))).toBe("registering");
    expect(await s.stateAt("agent:a1", min(3))).toBe("online");
    expect(await s.stateAt("agent:a1", min(60))).toBe("degraded");
  });
});

describe("tokens and audit", () => {
  const hash = (c: string) => c.repeat(64);
  it("creates, finds, touches, revokes", async () => {
    const s = await open();
    await s.createToken({ name: "ci", scope: "read", tokenHash: hash("a"), createdAt: T0, lastUsedAt: null, revokedAt: null });
    await s.createToken({ name: "ops", scope: "admin", tokenHash: hash("b"), createdAt: min(1), lastUsedAt: null, revokedAt: null });
    await expect(
      s.createToken({ name: "ci", scope: "read", tokenHash: hash("c"), createdAt: T0, lastUsedAt: null, revokedAt: null }),
    ).rejects.toThrow(/already exists/);

    expect(await s.findTokenByHash(hash("a"))).toMatchObject({ name: "ci", scope: "read", revokedAt: null });
    expect(await s.findTokenByHash(hash("f"))).toBeNull();
    await s.touchToken("ci", min(5));
    expect((await s.findTokenByHash(hash("a")))?.lastUsedAt).toEqual(min(5));

    expect(await s.revokeToken("ci")).toBe(true);
    expect(await s.revokeToken("ci")).toBe(false);
    expect(await s.revokeToken("missing")).toBe(false);
    expect((await s.findTokenByHash(hash("a")))?.revokedAt).toBeInstanceOf(Date);
    expect((await s.listTokens()).map((t) => [t.name, t.revokedAt === null])).toEqual([
      ["ci", false],
      ["ops", true],
    ]);
  });

  it("lists audit rows newest first", async () => {
    const s = await open();
    await s.appendAudit({ at: min(0), actor: "cli", action: "token.create", target: "ci", details: { scope: "read" } });
    await s.appendAudit({ at: min(1), actor: "cli", action: "token.revoke", target: "ci", details: {} });
    const rows = await s.listAudit(10);
    expect(rows.map((r) => r.action)).toEqual(["token.revoke", "token.create"]);
    expect(rows[1]?.details).toEqual({ scope: "read" });
    expect(await s.listAudit(1)).toHaveLength(1);
  });
});

describe("connectionEdges", () => {
  it("maps loopback ports to services, skips inbound connections, and keeps external edges", async () => {
    const s = await open();
    await s.upsertAgent(agent("agent-web", "frontend", 3000));
    await s.upsertAgent(agent("agent-api", "api", 8080));
    await s.ingest([
      batch("w1", {
        agent: "agent-web",
        service: "frontend",
        connections: [
          { local: "127.0.0.1:51000", remote: "127.0.0.1:8080", at: min(0), count: 2 },
          { local: "127.0.0.1:51001", remote: "127.0.0.1:8080", at: min(1), count: 3 },
          // a browser talking to the frontend: inbound, not an edge
          { local: "127.0.0.1:3000", remote: "127.0.0.1:60000", at: min(1) },
        ],
      }),
      batch("a1", {
        agent: "agent-api",
        service: "api",
        connections: [
          // the other side of frontend → api: inbound for api
          { local: "127.0.0.1:8080", remote: "127.0.0.1:51000", at: min(0), count: 2 },
          { local: "10.0.0.5:40000", remote: "93.184.216.34:443", at: min(2) },
        ],
      }),
    ]);
    const edges = await s.connectionEdges();
    expect(edges).toEqual([
      {
        fromService: "api",
        toService: "93.184.216.34:443",
        protocol: "tcp",
        external: true,
        connectionCount: 1,
        openedTotal: 0,
        openedLastMinute: 0,
        firstObserved: min(2),
        lastObserved: min(2),
      },
      {
        fromService: "frontend",
        toService: "api",
        protocol: "tcp",
        external: false,
        connectionCount: 3,
        openedTotal: 0,
        openedLastMinute: 0,
        firstObserved: min(0),
        lastObserved: min(1),
      },
    ]);
  });

  it("keeps edges after the raw observations expire, and re-resolves late agents", async () => {
    const s = await open();
    await s.upsertAgent(agent("agent-web", "frontend", 3000));
    await s.ingest([
      batch("w1", {
        agent: "agent-web",
        service: "frontend",
        connections: [{ local: "127.0.0.1:51000", remote: "127.0.0.1:5432", at: min(0), count: 4 }],
      }),
    ]);
    expect((await s.connectionEdges()).map((e) => [e.toService, e.external])).toEqual([["127.0.0.1:5432", true]]);
    // retention folds the edge into service_connections and drops the raw rows
    await s.applyRetention(min(30 * 24 * 60));
    expect(await count(s, "SELECT count(*) FROM connection_observations")).toBe(0);
    expect(await count(s, "SELECT count(*) FROM service_connections")).toBe(1);
    // the database's agent registers later: the stored edge now points at it
    await s.upsertAgent(agent("agent-db", "postgres", 5432));
    expect(await s.connectionEdges()).toEqual([
      {
        fromService: "frontend",
        toService: "postgres",
        protocol: "tcp",
        external: false,
        connectionCount: 4,
        openedTotal: 0,
        openedLastMinute: 0,
        firstObserved: min(0),
        lastObserved: min(0),
      },
    ]);
  });

  it("parses addresses and loopback", () => {
    expect(parseHostPort("127.0.0.1:8080")).toEqual({ host: "127.0.0.1", port: 8080 });
    expect(parseHostPort("[::1]:8080")).toEqual({ host: "::1", port: 8080 });
    expect(parseHostPort("::1:8080")).toEqual({ host: "::1", port: 8080 });
    expect(isLoopback("127.3.2.1")).toBe(true);
    expect(isLoopback("::1")).toBe(true);
    expect(isLoopback("::ffff:127.0.0.1")).toBe(true);
    expect(isLoopback("10.0.0.1")).toBe(false);
  });
});

describe("writer queue and lifecycle", () => {
  it("runs writes in order; a failing write does not break the queue", async () => {
    const s = await open();
    const order: number[] = [];
    const p1 = s.write(async () => {
      await sleep(20);
      order.push(1);
    });
    const p2 = s.write(async () => {
      order.push(2);
      throw new Error("boom");
    });
    const p3 = s.write(async (c) => {
      order.push(3);
      return (await c.runAndReadAll("SELECT 42 AS x")).getRowObjectsJS()[0]?.x;
    });
    // a failing task that left a transaction open does not poison the next one
    const p4 = s.write(async (c) => {
      await c.run("BEGIN TRANSACTION");
      await c.run("DELETE FROM schema_migrations");
      throw new Error("half way");
    });
    await p1;
    await expect(p2).rejects.toThrow("boom");
    await expect(p4).rejects.toThrow("half way");
    expect(await s.schemaVersion()).toBe(migrations.length);
    await s.upsertAgent(agent("a1", "api", 8080));
    expect(await p3).toBe(42);
    expect(order).toEqual([1, 2, 3]);
    expect(await s.getAgent("a1")).not.toBeNull();
  });

  it("reads use their own connection: they neither wait for nor see an open write transaction", async () => {
    const s = await open();
    await s.upsertAgent(agent("a1", "api", 8080));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slowWrite = s.write(async (c) => {
      await c.run("BEGIN TRANSACTION");
      await c.run("DELETE FROM agents");
      await gate;
      await c.run("COMMIT");
    });
    await sleep(20);
    // the writer is busy inside its transaction; the reader answers from committed data
    expect((await s.listAgents()).map((a) => a.agentId)).toEqual(["a1"]);
    release();
    await slowWrite;
    expect(await s.listAgents()).toEqual([]);
  });

  it("closes idempotently, after queued work; later calls are refused", async () => {
    const s = await openStore(join(dir, "c.duckdb"));
    const pending = s.ingest([batch("b", { metrics: [{ at: min(0) }] })]);
    const c1 = s.close();
    const c2 = s.close();
    expect(await pending).toMatchObject({ stored: 1 });
    await c1;
    await c2;
    await s[Symbol.asyncDispose]();
    await expect(s.listAgents()).rejects.toThrow(StoreClosedError);
    await expect(s.ingest([batch("b2")])).rejects.toThrow(/closed/);

    const again = await openStore(join(dir, "c.duckdb"));
    stores.push(again);
    expect(await count(again, "SELECT count(*) FROM metric_summaries")).toBe(1);
  });

  it("maintenance runs rollup and retention periodically and logs instead of throwing", async () => {
    const s = await open();
    const logs: string[] = [];
    const stop = s.startMaintenance(20, (level, msg) => logs.push(`${level}:${msg}`));
    await pollUntil(() => (logs.filter((l) => l === "info:store maintenance").length >= 2 ? true : undefined), { what: "two maintenance runs", timeoutMs: 10_000, intervalMs: 20 });
    await stop();
    expect(logs.filter((l) => l === "info:store maintenance").length).toBeGreaterThanOrEqual(2);
    const n = logs.length;
    await sleep(60);
    expect(logs.length).toBe(n);

    // close() stops the loops it started
    const s2 = await openStore(join(dir, "m.duckdb"));
    s2.startMaintenance(10);
    await s2.close();
  });

  it("a failing maintenance run is logged, not thrown, and the loop goes on", async () => {
    const errors: string[] = [];
    let runs = 0;
    const loop = startLoop(
      10,
      async () => {
        runs++;
        throw new Error(`run ${runs} failed`);
      },
      (level, msg, fields) => errors.push(`${level}:${msg}:${String(fields?.err)}`),
    );
    await pollUntil(() => (runs >= 2 ? true : undefined), { what: "two failing runs", timeoutMs: 10_000, intervalMs: 20 });
    await loop.stop();
    expect(runs).toBeGreaterThanOrEqual(2);
    expect(errors[0]).toBe("error:store maintenance failed:run 1 failed");
    expect(errors).toHaveLength(runs);
  });
});
