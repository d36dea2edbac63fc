// The colony with its real parts: DuckDB file, the nats-server it starts,
// its Connect API; synthetic agents speak the real wire format.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import { HealthStatus } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { describe, expect, it } from "vitest";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { rejection } from "../helpers/errors.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";

const minute = (offset: number) => timestampFromDate(new Date(Math.floor(Date.now() / 60_000) * 60_000 - offset * 60_000));

describe("colony", () => {
  it("registers agents, ingests their telemetry and answers status, topology, events and metrics", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const api = colonyApi(colony.url, project.localToken);
    await using frontend = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "frontend-1", serviceName: "frontend", port: 3000 });
    await using backend = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "api-1", serviceName: "api", port: 8080, version: "2.1.0" });
    const reg = await frontend.register();
    expect(reg.colonyId).toBe(project.colonyId);
    expect(reg.heartbeatIntervalSeconds).toBe(30);
    expect(reg.nats?.subjectPrefix).toBe(`coral.${project.colonyId}.agent.frontend-1`);
    await backend.register();
    expect((await backend.heartbeat(HealthStatus.HEALTHY, { restartCount: 2 })).state).toBe("online");
    expect((await frontend.heartbeat(HealthStatus.DEGRADED)).state).toBe("degraded");

    await frontend.publish({
      metrics: [0, 1, 2].map((i) => ({ timestamp: minute(i + 1), metricName: "cpu_percent", interval: "1m", p50: 10 + i, p95: 20, p99: 30, mean: 11, max: 40, min: 1, count: 60n })),
      events: [{ eventId: "e1", timestamp: timestampFromDate(new Date()), eventType: "restart", detailsJson: '{"pid":42}' }],
      connections: [{ localAddr: "127.0.0.1:51000", remoteAddr: "127.0.0.1:8080", state: "ESTABLISHED", observedAt: timestampFromDate(new Date()), count: 3 }],
    });

    const metrics = await waitFor("the metrics to be ingested", async () => {
      const res = await api.queryMetrics({ service: "frontend", metricName: "cpu_percent", interval: "1m" });
      return res.series[0]?.points.length === 3 ? res : undefined;
    });
    expect(metrics.series[0]!.points.map((p) => p.p50)).toEqual([12, 11, 10]);
    expect(metrics.series[0]!.points[0]!.count).toBe(60n);

    const events = await api.queryEvents({ service: "frontend", eventType: "restart" });
    expect(events.events).toHaveLength(1);
    expect(JSON.parse(events.events[0]!.detailsJson)).toEqual({ pid: 42 });

    const status = await api.getStatus({});
    expect(status.colonyId).toBe(project.colonyId);
    expect(status.appName).toBe("shop");
    expect(status.natsStatus).toBe("connected");
    const byName = Object.fromEntries(status.services.map((s) => [s.name, s]));
    expect(byName.api).toMatchObject({ status: "online", health: "healthy", version: "2.1.0", port: 8080, restartCount: 2 });
    expect(byName.frontend).toMatchObject({ status: "degraded", health: "degraded" });
    expect(Number(byName.api!.uptimeSeconds)).toBeGreaterThanOrEqual(3599);

    const topology = await api.getTopology({});
    expect(topology.edges.map((e) => `${e.fromService}→${e.toService}`)).toEqual(["frontend→api"]);
    expect(topology.edges[0]!.external).toBe(false);
  });

  it("moves an agent to offline when its heartbeat deadline passes, also across a restart", async () => {
    await using project = await createTestProject();
    await project.setConfig(["colony", "heartbeat_interval"], "1s");
    await project.setConfig(["colony", "agent_offline_after"], "2s");
    let colony = await project.start();
    const agent = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "worker-1", serviceName: "worker", port: 0 });
    await agent.register();
    const api = () => colonyApi(colony.url, project.localToken);
    await waitFor("worker to go offline", async () => ((await api().getStatus({})).services[0]?.status === "offline" ? true : undefined));
    // The transition is stored just after the actor moves: poll for it rather than race it.
    const history = await waitFor("the offline transition in the history", async () => {
      const h = await api().getHistory({ service: "worker" });
      return h.transitions[0]?.toState === "offline" ? h : undefined;
    });
    expect(history.stateAt).toBe("offline");
    expect(history.transitions.map((t) => t.toState)).toEqual(["offline", "online", "registering"]);
    expect(history.transitions[0]!.reason).toMatch(/no heartbeat for \d+s/);
    const before = history.transitions[1]!.at!;
    const past = await api().getHistory({ service: "worker", at: before });
    expect(past.stateAt).toBe("online");

    // Back online, then the colony stops; the deadline passes while it is down.
    await agent.heartbeat();
    await colony.close();
    const stoppedAt = Date.now();
    await waitFor("the deadline to pass", () => Date.now() > stoppedAt + 2500 || undefined);
    colony = await project.start();
    expect(colony.agents.get("worker-1")).toBeDefined();
    await waitFor("the restored actor to go offline", () => (colony.agents.get("worker-1")?.state === "offline" ? true : undefined));
    const events = await waitFor("both offline events", async () => {
      const res = await colonyApi(colony.url, project.localToken).queryEvents({ service: "worker", eventType: "agent_offline" });
      return res.events.length >= 2 ? res : undefined;
    });
    expect(JSON.parse(events.events[0]!.detailsJson)).toMatchObject({ from: "online", to: "offline" });
  });

  it("authenticates agents and CLI tokens, and refuses bad requests clearly", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const local = colonyApi(colony.url, project.localToken);

    const noToken = await rejection(colonyApi(colony.url).getStatus({}));
    expect(noToken.code).toBe(Code.Unauthenticated);
    expect(noToken.rawMessage).toMatch(/needs a token for remote calls/);

    const created = await local.createToken({ name: "laptop", scope: 1 });
    expect(created.token).toMatch(/^coral_/);
    const reader = colonyApi(colony.url, created.token);
    expect((await reader.getStatus({})).colonyId).toBe(project.colonyId);
    const denied = await rejection(reader.createToken({ name: "other", scope: 2 }));
    expect(denied.code).toBe(Code.PermissionDenied);
    const duplicate = await rejection(local.createToken({ name: "laptop", scope: 1 }));
    expect(duplicate.code).toBe(Code.AlreadyExists);
    await local.revokeToken({ name: "laptop" });
    const revoked = await rejection(reader.getStatus({}));
    expect(revoked.code).toBe(Code.Unauthenticated);
    expect(revoked.rawMessage).toMatch(/"laptop" was revoked/);
    const tokens = await local.listTokens({});
    expect(tokens.tokens.map((t) => [t.name, t.revoked])).toEqual([["laptop", true]]);

    // Agents: an invitation the colony never made, a bad id, and no agent token.
    const wrongInvitation = new SyntheticAgent({ colonyUrl: colony.url, invitation: { invitationId: "nosuch", invitationSecret: "ab".repeat(32) }, agentId: "evil", serviceName: "api", port: 1 });
    expect((await rejection(wrongInvitation.register())).code).toBe(Code.Unauthenticated);
    const badId = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "bad/id", serviceName: "api", port: 1 });
    const badIdErr = await rejection(badId.register());
    expect(badIdErr.code).toBe(Code.InvalidArgument);
    expect(badIdErr.rawMessage).toMatch(/agent_id/);
    const unregistered = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "ghost", serviceName: "api", port: 1 });
    expect((await rejection(unregistered.heartbeat())).code).toBe(Code.Unauthenticated);

    expect((await rejection(local.queryEvents({ limit: 20_000 }))).code).toBe(Code.InvalidArgument);
    const badInterval = await rejection(local.queryMetrics({ service: "api", interval: "2m" }));
    expect(badInterval.rawMessage).toMatch(/interval: must be one of 1m, 5m, 15m, 1h, 1d/);
    expect((await rejection(local.queryMetrics({ service: "", raw: true }))).rawMessage).toMatch(/service: is required with raw/);
    const badJson = await fetch(`${colony.url}/coral.colony.v1.ColonyService/QueryEvents`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${project.localToken}` },
      body: '{"limit": "many"}',
    });
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { code: string }).code).toBe("invalid_argument");
  });

  it("lets an agent publish only under its own subjects", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    await using a = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "a-1", serviceName: "a", port: 1 });
    await using b = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "b-1", serviceName: "b", port: 2 });
    await a.register();
    await b.register();
    await a.publish({ events: [{ eventId: "ok", timestamp: timestampFromDate(new Date()), eventType: "deploy", detailsJson: "{}" }] });
    await expect(a.publish({ events: [{ eventId: "forged", timestamp: timestampFromDate(new Date()), eventType: "crash", detailsJson: "{}" }] }, "b-1")).rejects.toThrow();
    const api = colonyApi(colony.url, project.localToken);
    await waitFor("a's event", async () => ((await api.queryEvents({ eventType: "deploy" })).events.length === 1 ? true : undefined));
    expect((await api.queryEvents({ service: "b", eventType: "crash" })).events).toHaveLength(0);
  });
});
