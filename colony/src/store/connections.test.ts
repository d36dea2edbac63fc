// Topology from stored observations: opened counts (short-lived connections)
// and which agent an endpoint resolves to when several have claimed it.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ConnectionObservationSchema, TelemetryBatchSchema, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { validateTelemetryBatch } from "../nats/validate.ts";
import { openStore, type AgentRow, type ColonyStore } from "./index.ts";

let dir: string;
let store: ColonyStore | undefined;

beforeEach(async () => {
  versions.clear();
  dir = await mkdtemp(join(tmpdir(), "colony-conn-"));
});

afterEach(async () => {
  await store?.close();
  store = undefined;
  await rm(dir, { recursive: true, force: true });
});

async function open(): Promise<ColonyStore> {
  store = await openStore(join(dir, ".coral", "colony.duckdb"), {});
  return store;
}

const now = Date.now();
const ago = (minutes: number): Date => new Date(now - minutes * 60_000);

function agent(id: string, service: string, port: number, registeredAt: Date, lastSeen: Date): AgentRow {
  return {
    agentId: id,
    serviceName: service,
    port,
    address: "127.0.0.1",
    version: "0.1.0",
    hostname: "host",
    tags: {},
    agentUrl: `http://127.0.0.1:1${port}`,
    registeredAt,
    lastSeen,
    health: "healthy",
    pid: 1,
    processStartedAt: null,
    restartCount: 0,
    cpuPercent: 0,
    memoryBytes: 0,
  };
}

type Obs = { remote: string; at: Date; count: number; opened: number; source?: string; state?: string };

function batch(id: string, agentId: string, service: string, obs: Obs[]): TelemetryBatch {
  return create(TelemetryBatchSchema, {
    batchId: id,
    agentId,
    serviceName: service,
    createdAt: timestampFromDate(new Date(now)),
    connections: obs.map((o, i) =>
      create(ConnectionObservationSchema, {
        localAddr: `127.0.0.1:${40000 + i}`,
        remoteAddr: o.remote,
        state: o.state ?? (o.count > 0 ? "ESTABLISHED" : "OPENED"),
        observedAt: timestampFromDate(o.at),
        count: o.count,
        opened: o.opened,
        source: o.source ?? "ebpf",
      }),
    ),
  });
}

const versions = new Map<string, number>();
async function online(s: ColonyStore, agentId: string, state: string): Promise<void> {
  const version = (versions.get(agentId) ?? 0) + 1;
  versions.set(agentId, version);
  await s.saveActorSnapshot({ actorId: agentId, kind: "agent", version, state, snapshot: "{}", updatedAt: new Date(now) });
}

describe("connection edges from short-lived connections", () => {
  it("shows an edge whose connections were all opened and closed between snapshots, with its opened counts", async () => {
    const s = await open();
    await s.upsertAgent(agent("web-1", "web", 3000, ago(30), ago(0)));
    await s.upsertAgent(agent("api-1", "api", 8080, ago(30), ago(0)));
    await s.ingest([
      batch("b1", "web-1", "web", [
        { remote: "127.0.0.1:8080", at: ago(5), count: 0, opened: 120 },
        { remote: "127.0.0.1:8080", at: ago(0.5), count: 0, opened: 118 },
        { remote: "127.0.0.1:8080", at: ago(0.2), count: 1, opened: 2 },
      ]),
    ]);
    const edges = await s.connectionEdges();
    expect(edges).toHaveLength(1);
    expect(edges[0]).toMatchObject({ fromService: "web", toService: "api", external: false, connectionCount: 1, openedTotal: 240, openedLastMinute: 120 });
    const stored = await s.read(async (c) => (await c.runAndReadAll("SELECT count, opened, source, state FROM connection_observations ORDER BY observed_at")).getRows());
    expect(stored).toEqual([
      [0, 120, "ebpf", "OPENED"],
      [0, 118, "ebpf", "OPENED"],
      [1, 2, "ebpf", "ESTABLISHED"],
    ]);
  });

  it("stores an older agent's count 0 as 1, and its opened and source as 0 and NULL", async () => {
    const s = await open();
    await s.upsertAgent(agent("web-1", "web", 3000, ago(30), ago(0)));
    await s.ingest([batch("b1", "web-1", "web", [{ remote: "10.1.1.1:5432", at: ago(1), count: 0, opened: 0, source: "", state: "ESTABLISHED" }])]);
    const stored = await s.read(async (c) => (await c.runAndReadAll("SELECT count, opened, source FROM connection_observations")).getRows());
    expect(stored).toEqual([[1, 0, null]]);
  });

  it("keeps the opened total when raw observations are folded into stored edges", async () => {
    const s = await open();
    await s.upsertAgent(agent("web-1", "web", 3000, ago(30), ago(0)));
    await s.ingest([batch("b1", "web-1", "web", [{ remote: "127.0.0.1:9999", at: ago(10), count: 0, opened: 7 }])]);
    await s.applyRetention(new Date(now + 30 * 24 * 3600_000));
    const edges = await s.connectionEdges();
    expect(edges.map((e) => [e.toService, e.openedTotal, e.openedLastMinute])).toEqual([["127.0.0.1:9999", 7, 0]]);
  });
});

describe("validation of the new fields", () => {
  it("takes ebpf, procfs or no source, and refuses anything else", () => {
    for (const source of ["", "ebpf", "procfs"])
      expect(validateTelemetryBatch(batch("v", "web-1", "web", [{ remote: "127.0.0.1:1", at: ago(0), count: 0, opened: 4_000_000_000, source }]))).toBeNull();
    expect(validateTelemetryBatch(batch("v", "web-1", "web", [{ remote: "127.0.0.1:1", at: ago(0), count: 0, opened: 1, source: "guess" }]))).toBe(
      'connection #0 has source "guess" (expected "ebpf", "procfs" or none)',
    );
  });
});

describe("an endpoint claimed by several agents", () => {
  // "billing-v1" sorts before "db": the old rule (first agent id) picked it even offline.
  it("resolves to the online agent that observes the port now, and keeps past observations with the agent of their time", async () => {
    const s = await open();
    await s.upsertAgent(agent("web-1", "web", 3000, ago(60), ago(0)));
    // billing-v1 observed port 5432 from 60 to 20 minutes ago, then stopped.
    await s.upsertAgent(agent("billing-v1-aaaaaa", "billing-v1", 5432, ago(60), ago(20)));
    await online(s, "billing-v1-aaaaaa", "offline");
    // db observes it since 10 minutes ago.
    await s.upsertAgent(agent("db-bbbbbb", "db", 5432, ago(10), ago(0)));
    await online(s, "db-bbbbbb", "online");
    await online(s, "web-1", "online");
    await s.ingest([
      batch("b1", "web-1", "web", [
        { remote: "127.0.0.1:5432", at: ago(40), count: 2, opened: 3 },
        { remote: "127.0.0.1:5432", at: ago(30), count: 1, opened: 4 },
        { remote: "127.0.0.1:5432", at: ago(5), count: 1, opened: 5 },
        { remote: "127.0.0.1:5432", at: ago(0.5), count: 1, opened: 6 },
      ]),
    ]);
    const edges = await s.connectionEdges();
    expect(edges.map((e) => ({ to: e.toService, peak: e.connectionCount, opened: e.openedTotal, last: e.lastObserved.getTime() }))).toEqual([
      { to: "billing-v1", peak: 2, opened: 7, last: ago(30).getTime() },
      { to: "db", peak: 1, opened: 11, last: ago(0.5).getTime() },
    ]);

    // Folded into service_connections, each edge keeps its target.
    await s.applyRetention(new Date(now + 30 * 24 * 3600_000));
    const stored = await s.read(async (c) =>
      (await c.runAndReadAll("SELECT from_service, to_service, opened_total FROM service_connections ORDER BY to_service")).getRows(),
    );
    expect(stored).toEqual([
      ["web", "billing-v1", 7n],
      ["web", "db", 11n],
    ]);
  });

  it("prefers the online agent, then the one seen last, for a new observation", async () => {
    const s = await open();
    await s.upsertAgent(agent("web-1", "web", 3000, ago(60), ago(0)));
    // Both claim the port and were both seen recently; only "zeta" is online.
    await s.upsertAgent(agent("alpha-1", "alpha", 6000, ago(60), ago(0.1)));
    await s.upsertAgent(agent("zeta-1", "zeta", 6000, ago(60), ago(0.2)));
    await online(s, "alpha-1", "offline");
    await online(s, "zeta-1", "online");
    await s.ingest([batch("b1", "web-1", "web", [{ remote: "127.0.0.1:6000", at: ago(0.1), count: 1, opened: 1 }])]);
    expect((await s.connectionEdges()).map((e) => e.toService)).toEqual(["zeta"]);
    // Neither online: the one seen last.
    await online(s, "zeta-1", "offline");
    expect((await s.connectionEdges()).map((e) => e.toService)).toEqual(["alpha"]);
  });
});
