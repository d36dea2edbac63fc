// Agents on real processes (the sample app), a real colony, real NATS.
import { spawn } from "node:child_process";
import http from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { sampleComponentScript, startSampleApp, type SampleApp } from "@coral/cli/sample-app";
import { testAgent } from "../helpers/agents.ts";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { startExternalNats } from "../helpers/nats.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

const apps: SampleApp[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.stop();
});

async function sampleApp() {
  const app = startSampleApp({ frontend: await freePort(), api: await freePort(), store: await freePort() });
  apps.push(app);
  return app;
}

describe("agents on a real app", () => {
  it("discovers the topology, reports health and metrics, and answers raw queries through the colony", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const app = await sampleApp();
    const agents: Awaited<ReturnType<typeof testAgent>>[] = [];
    for (const [service, port] of Object.entries(app.ports))
      agents.push(await testAgent(project, colony.url, service, port, { metricsUrl: `http://127.0.0.1:${port}/metrics` }));
    try {
      const api = colonyApi(colony.url, project.localToken);
      const topology = await waitFor("frontend → api → store", async () => {
        const t = await api.getTopology({});
        const edges = t.edges.filter((e) => !e.external).map((e) => `${e.fromService}→${e.toService}`).sort();
        return edges.length === 2 ? edges : undefined;
      });
      expect(topology).toEqual(["api→store", "frontend→api"]);

      const status = await waitFor("three healthy components", async () => {
        const s = await api.getStatus({});
        return s.services.length === 3 && s.services.every((x) => x.status === "online" && x.pid > 0) ? s : undefined;
      });
      expect(status.services.map((s) => s.name)).toEqual(["api", "frontend", "store"]);
      expect(status.services.every((s) => Number(s.memoryBytes) > 1_000_000)).toBe(true);

      const summaries = await waitFor("api summaries", async () => {
        const m = await api.queryMetrics({ service: "api", interval: "1m" });
        const names = m.series.map((s) => s.metricName);
        return names.includes("cpu_percent") && names.includes("sample_requests_total") ? m : undefined;
      });
      const memory = summaries.series.find((s) => s.metricName === "memory_bytes")!;
      expect(memory.points.at(-1)!.max).toBeGreaterThan(1_000_000);

      const raw = await api.queryMetrics({ service: "api", metricName: "health_up", raw: true, limit: 5 });
      expect(raw.unavailable).toEqual([]);
      expect(raw.rawPoints).toHaveLength(5);
      expect(raw.rawPoints.every((p) => p.value === 1 && p.agentId === agents[1]!.agentId)).toBe(true);
    } finally {
      for (const a of agents) await a.close();
    }
  });

  it("reports a restart of the observed process", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const port = await freePort();
    let proc = spawn(process.execPath, [sampleComponentScript, "store", String(port)], { stdio: "ignore" });
    await using _agent = await testAgent(project, colony.url, "store", port);
    const api = colonyApi(colony.url, project.localToken);
    await waitFor("the process to be observed", async () => ((await api.getStatus({})).services[0]?.pid === proc.pid ? true : undefined));
    const oldPid = proc.pid;
    const exited = new Promise((r) => proc.once("exit", r));
    proc.kill("SIGKILL");
    await exited;
    proc = spawn(process.execPath, [sampleComponentScript, "store", String(port)], { stdio: "ignore" });
    try {
      const events = await waitFor("restart events", async () => {
        const res = await api.queryEvents({ service: "store" });
        const types = res.events.map((e) => e.eventType);
        return types.includes("restart") && types.includes("process_exited") ? res : undefined;
      });
      const restart = events.events.find((e) => e.eventType === "restart")!;
      expect(JSON.parse(restart.detailsJson)).toMatchObject({ pid: proc.pid, previous_pid: oldPid });
      await waitFor("restart count in status", async () => {
        const s = (await api.getStatus({})).services[0];
        return s?.restartCount === 1 && s.pid === proc.pid ? true : undefined;
      });
    } finally {
      proc.kill("SIGKILL");
    }
  });

  it("probes a healthy service's health every 5 sample intervals, an unhealthy one's every interval", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const probes: number[] = [];
    let failing = false;
    const server = http.createServer((req, res) => {
      if (req.url === "/health") {
        probes.push(Date.now());
        res.statusCode = failing ? 503 : 200;
      }
      res.end("ok");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    const medianGap = (times: number[]) => {
      const gaps = times.slice(1).map((t, i) => t - times[i]!).sort((a, b) => a - b);
      return gaps[Math.floor(gaps.length / 2)]!;
    };
    try {
      await using _agent = await testAgent(project, colony.url, "web", port, { sampleIntervalMs: 200 });
      await waitFor("6 probes of the healthy service", () => (probes.length >= 6 ? true : undefined), { timeoutMs: 60_000 });
      // Every 1 s (5 × 200 ms), not every beat; the first probe is the one at start.
      expect(medianGap(probes.slice(1, 6))).toBeGreaterThanOrEqual(800);
      failing = true;
      const from = probes.length;
      await waitFor("8 more probes once it fails", () => (probes.length >= from + 8 ? true : undefined), { timeoutMs: 60_000 });
      // The first failing answer comes at the healthy pace; from then on every beat.
      expect(medianGap(probes.slice(from + 1, from + 8))).toBeLessThan(600);
    } finally {
      server.close();
    }
  });

  it("reports bad Prometheus text and an unreachable health endpoint without stopping", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const garbage = http.createServer((_req, res) => res.end("this is {not prometheus\n"));
    await new Promise<void>((r) => garbage.listen(0, "127.0.0.1", r));
    const port = (garbage.address() as { port: number }).port;
    const closed = await freePort();
    try {
      await using agent = await testAgent(project, colony.url, "web", port, {
        metricsUrl: `http://127.0.0.1:${port}/metrics`,
        healthUrl: `http://127.0.0.1:${closed}/health`,
        scrapeIntervalMs: 300,
      });
      const api = colonyApi(colony.url, project.localToken);
      const events = await waitFor("both problems reported", async () => {
        const res = await api.queryEvents({ service: "web" });
        const types = res.events.map((e) => e.eventType);
        return types.includes("metrics_scrape_failed") && types.includes("health_changed") ? res : undefined;
      });
      const health = JSON.parse(events.events.find((e) => e.eventType === "health_changed")!.detailsJson);
      expect(health.healthy).toBe(false);
      const status = await waitFor("web degraded", async () => {
        const s = (await api.getStatus({})).services[0];
        return s?.status === "degraded" ? s : undefined;
      });
      expect(status.health).toBe("unhealthy");
      expect((await agent.stats()).registered).toBe(true);
    } finally {
      garbage.close();
    }
  });
});

describe("delivery through outages", () => {
  it("loses nothing when NATS is down for 30 s, nor when the agent restarts during the outage", async () => {
    await using project = await createTestProject();
    const natsPort = await freePort();
    await using nats = await startExternalNats(natsPort, `${project.dir}/external-nats`);
    await project.setConfig(["nats", "url"], nats.url);
    const colony = await project.start();
    const app = await sampleApp();
    let agent = await testAgent(project, colony.url, "api", app.ports.api);
    const api = colonyApi(colony.url, project.localToken);
    await waitFor("first summaries", async () => ((await api.queryMetrics({ service: "api", interval: "1m" })).series.length > 0 ? true : undefined));

    await nats.stop();
    const downSince = Date.now();
    // Events and summaries pile up in the outbox while NATS is away...
    await waitFor("queued batches", async () => ((await agent.stats()).pending >= 5 ? true : undefined), { timeoutMs: 30_000 });
    const before = await agent.stats();
    // ...and the agent restarts in the middle of the outage.
    await agent.close("restart during outage");
    const firstRun = agent.enqueued();
    agent = await testAgent(project, colony.url, "api", app.ports.api);
    expect((await agent.stats()).pending).toBeGreaterThanOrEqual(before.pending);
    await waitFor("30 s of outage", () => Date.now() - downSince >= 30_000 || undefined, { timeoutMs: 40_000, intervalMs: 500 });
    await nats.start();

    try {
      await waitFor("the outbox to drain", async () => ((await agent.stats()).pending === 0 ? true : undefined), { timeoutMs: 90_000, intervalMs: 500 });
    } finally {
      await agent.close();
    }
    // Every batch the agent ever queued (both runs) is stored exactly once.
    const queued = firstRun + agent.enqueued();
    const countStored = async () => {
      const rows = await colony.store.read((conn) =>
        conn.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM ingested_batches WHERE batch_id LIKE '${agent.agentId}-%'`),
      );
      return Number(rows.getRowObjects()[0]!.n);
    };
    const stored = await waitFor("the colony to store every batch", async () => ((await countStored()) >= queued ? countStored() : undefined), {
      timeoutMs: 60_000,
      intervalMs: 500,
    });
    expect(stored).toBe(queued);
  }, 240_000);
});
