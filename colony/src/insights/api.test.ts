// ListInsights, DismissInsight and GetStatus's count over the colony's real
// Connect API (HTTP, auth interceptor, DuckDB store), and `coral insights`
// against it.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AgentActors } from "../actors/agents.ts";
import type { ApiDeps } from "../api/deps.ts";
import { startApiServer, type ApiServer } from "../api/server.ts";
import { insightsCommand } from "../cli/insights.ts";
import { formatStatus } from "../format/index.ts";
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
  const deps: ApiDeps = {
    colonyId: "shop-dev-000001",
    appName: "shop",
    environment: "dev",
    version: "test",
    meshMode: "loopback",
    startedAt: new Date(),
    store,
    agents,
    secret: "00".repeat(32),
    heartbeatIntervalSeconds: 15,
    natsCredentials: async () => ({ url: "nats://127.0.0.1:4222", user: "", password: "" }),
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

/** Runs `coral insights …` (the command object) and returns what it printed. */
async function coral(...args: string[]): Promise<string> {
  const out: string[] = [];
  const log = vi.spyOn(console, "log").mockImplementation((...parts: unknown[]) => void out.push(parts.join(" ")));
  try {
    const cmd = insightsCommand().exitOverride();
    cmd.commands.forEach((c) => c.exitOverride());
    await cmd.parseAsync(args, { from: "user" });
  } finally {
    log.mockRestore();
  }
  return out.join("\n");
}

describe("insights over the API", () => {
  it("lists, counts in status and dismisses; unknown ids are NotFound, bad filters InvalidArgument", async () => {
    expect((await client.getStatus({})).insightCount).toBe(0);
    expect(formatStatus(await client.getStatus({}), { color: false })).not.toContain("Insights:");
    await incidentNow();
    const status = await client.getStatus({});
    expect(status.insightCount).toBe(5);
    expect(formatStatus(status, { color: false }).split("\n").slice(-2)).toEqual(["", "Insights: 5 active (view details: coral insights)"]);

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

  it("coral insights prints the cards and dismisses by id", async () => {
    const remote = ["--colony-url", server.url, "--token", localToken];
    expect(await coral(...remote)).toMatch(/^INSIGHTS \(0 active\)\n━+\n\nNo active insights\./);
    await incidentNow();

    const text = await coral(...remote);
    const lines = text.split("\n");
    expect(lines[0]).toBe("INSIGHTS (5 active)");
    expect(lines[1]).toMatch(/^━{56}$/);
    expect(lines.slice(3, 10)).toEqual([
      "⚠️  ANOMALY DETECTED                       [High Priority]",
      "─".repeat(56),
      "Created: just now",
      "Service: frontend",
      "Issue: frontend memory 3.0× its usual (100 MB → 300 MB)",
      "",
      "frontend's memory averaged 300 MB over the last 5 minutes, 3.0× its 1h baseline of 100 MB.",
    ]);
    expect(text).toContain("Evidence:\n  - memory_bytes mean 300 MB over the last 5 min (5 samples, peak 340 MB)");
    expect(text).toContain("⚠️  RESTART LOOP");
    expect(text).toContain("Issue: frontend has restarted 3× in 15 min - possible memory leak");
    expect(text).toContain("⚠️  DEGRADED AFTER DEPLOY");
    expect(text).toContain("  → Roll back frontend to 1.9.1");
    expect(text).toContain("ℹ️  CONNECTION CHANGE");
    expect(text).toContain("Service: frontend (also affects legacy)");
    const ids = [...text.matchAll(/^Dismiss: coral insights dismiss (\d+)$/gm)].map((m) => m[1]!);
    expect(ids).toHaveLength(5);

    const json = JSON.parse(await coral(...remote, "--json")) as { insights: Array<{ id: string; title: string }> };
    expect(json.insights.map((i) => i.id)).toEqual(ids);

    // Remote options before or after "dismiss".
    expect(await coral(...remote, "dismiss", ids[0]!)).toBe(
      `✓ Dismissed insight ${ids[0]}: frontend memory 3.0× its usual (100 MB → 300 MB)\n  It will not be raised again while its condition lasts.`,
    );
    expect(JSON.parse(await coral("dismiss", `insight-${ids[1]}`, ...remote, "--json"))).toMatchObject({ insight: { id: ids[1], status: "dismissed" } });
    expect((await coral(...remote)).split("\n")[0]).toBe("INSIGHTS (3 active)");
    const all = await coral(...remote, "--all");
    expect(all.split("\n")[0]).toBe("INSIGHTS (3 active, 2 dismissed)");
    expect(all).toContain("Status: dismissed");

    await expect(coral(...remote, "dismiss", "999999")).rejects.toThrow(/no insight with id 999999/);
    await expect(coral(...remote, "dismiss", "abc")).rejects.toThrow(/must be an insight id/);
  });
});
