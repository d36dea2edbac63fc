// ListInsights, DismissInsight and GetStatus's count over the colony's real
// Connect API (HTTP, auth interceptor, DuckDB store). `coral insights` against
// a running colony is in tests/colony/insights-cli.test.ts.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateIdentityKey } from "@coral/proto";
import { AgentActors } from "../agents/actors.ts";
import { AgentIdentities } from "../identity/identities.ts";
import type { ApiDeps } from "../api/deps.ts";
import { startApiServer, type ApiServer } from "../api/server.ts";
import { openStore, type ColonyStore } from "../store/index.ts";
import { runInsights } from "./index.ts";
import { leakingFrontend, timeline } from "./testing.ts";

const localToken = "insights-test-local-token";
let dir: string;
let store: ColonyStore;
let agents: AgentActors;
let server: ApiServer;
let client: Client<typeof ColonyService>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "colony-insights-api-"));
  store = await openStore(join(dir, ".coral", "colony.duckdb"));
  agents = new AgentActors({ persistence: store, offlineAfterMs: 60_000, expireAfterMs: 600_000 });
  const identity = await generateIdentityKey();
  const deps: ApiDeps = {
    colonyId: "shop-dev-000001",
    appName: "shop",
    environment: "dev",
    version: "test",
    meshMode: "loopback",
    startedAt: new Date(),
    store,
    agents,
    identity,
    identities: new AgentIdentities(store, identity.publicKey, (id) => agents.get(id)?.state),
    heartbeatIntervalSeconds: 15,
    natsCredentials: async () => ({ url: "nats://127.0.0.1:4222", user: "", password: "" }),
    removeNatsUser: async () => false,
    joinToken: async () => "",
    streamName: "CORAL_TEST",
    natsStatus: () => "connected",
    discoveryStatus: () => "disabled",
    log: { info: () => undefined, warn: () => undefined },
  };
  server = await startApiServer(deps, { host: "127.0.0.1", port: 0, localToken });
  client = createClient(
    ColonyService,
    createConnectTransport({
      baseUrl: server.url,
      httpVersion: "1.1",
      interceptors: [(next) => (req) => (req.header.set("authorization", `Bearer ${localToken}`), next(req))],
    }),
  );
});

afterEach(async () => {
  await server.close();
  await agents.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

/** The scripted incident, ending now (the API judges expiry by the real clock). */
async function incidentNow(): Promise<void> {
  const at = timeline(new Date(Date.now() - 126 * 60_000));
  await leakingFrontend(store, at);
  await runInsights(store, at(126));
}

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected a rejection");
}

describe("insights over the API", () => {
  it("lists, counts in status and dismisses; unknown ids are NotFound, bad filters InvalidArgument", async () => {
    expect((await client.getStatus({})).insightCount).toBe(0);
    await incidentNow();
    const status = await client.getStatus({});
    expect(status.insightCount).toBe(5);

    const { insights } = await client.listInsights({});
    expect(insights).toHaveLength(5);
    const memory = insights.find((i) => i.detector === "metric_shift")!;
    expect(memory).toMatchObject({ type: "anomaly", priority: "high", status: "active", service: "frontend", occurrences: 1, affectedServices: ["frontend"] });
    expect(JSON.parse(memory.evidenceJson)).toMatchObject({ metric: "memory_bytes", ratio: 3, baseline_window: "1h" });
    expect(memory.evidenceLines[0]).toMatch(/^memory_bytes mean 300 MB over the last 5 min/);
    expect((await client.listInsights({ service: "legacy" })).insights.map((i) => i.title)).toEqual(["Connection gone after deploy: frontend → legacy"]);

    expect((await rejection(client.listInsights({ status: "open" }))).code).toBe(Code.InvalidArgument);
    expect((await rejection(client.listInsights({ limit: 5000 }))).code).toBe(Code.InvalidArgument);
    const unknown = await rejection(client.dismissInsight({ id: 999_999n }));
    expect(unknown.code).toBe(Code.NotFound);
    expect(unknown.rawMessage).toMatch(/no insight with id 999999/);
    expect((await rejection(client.dismissInsight({ id: 0n }))).code).toBe(Code.InvalidArgument);

    const res = await client.dismissInsight({ id: memory.id });
    expect(res.insight).toMatchObject({ id: memory.id, status: "dismissed" });
    expect((await client.getStatus({})).insightCount).toBe(4);
    expect((await client.listInsights({})).insights.map((i) => i.id)).not.toContain(memory.id);
    expect((await client.listInsights({ status: "dismissed" })).insights.map((i) => i.id)).toEqual([memory.id]);
    expect((await client.listInsights({ status: "all" })).insights).toHaveLength(5);
    const [audit] = await store.listAudit(1);
    expect(audit).toMatchObject({ actor: "local", action: "insight.dismiss", target: String(memory.id) });
  });
});
