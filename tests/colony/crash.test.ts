// A colony process killed with SIGKILL mid-ingestion and started again keeps
// its actors and ends with every acknowledged message stored exactly once.
import { spawn, type ChildProcess } from "node:child_process";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { afterEach, describe, expect, it } from "vitest";
import { readPidFile } from "@coral/colony";
import { coralBin } from "../helpers/cli.ts";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
});

async function startColonyProcess(dir: string, env: Record<string, string>) {
  const child = spawn(process.execPath, [coralBin, "colony", "start", "--dir", dir, "--log-level", "warn"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let output = "";
  child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
  await waitFor(
    "the colony process to start",
    async () => {
      if (child.exitCode !== null) throw new Error(`colony exited ${child.exitCode}: ${output}`);
      const pid = await readPidFile(dir);
      return pid?.pid === child.pid ? pid : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  return child;
}

describe("colony crash", () => {
  it("restores actors and stores every acknowledged batch exactly once after SIGKILL", async () => {
    await using project = await createTestProject();
    const apiPort = await freePort();
    await project.setConfig(["nats", "port"], await freePort());
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: String(apiPort) };
    const url = `http://127.0.0.1:${apiPort}`;
    let colony = await startColonyProcess(project.dir, env);

    await using agent = new SyntheticAgent({ colonyUrl: url, localToken: project.localToken, agentId: "api-1", serviceName: "api", port: 8080 });
    await agent.register();
    await agent.heartbeat();
    const batches = 60;
    const publishBatch = (i: number) =>
      agent.publish(
        {
        metrics: Array.from({ length: 10 }, (_, m) => ({
          timestamp: timestampFromDate(new Date(Math.floor(Date.now() / 60_000) * 60_000 - (m + 1) * 60_000)),
          metricName: `m${i}`,
          interval: "1m",
          p50: i,
          p95: i,
          p99: i,
          mean: i,
          max: i,
          min: i,
          count: 1n,
        })),
        events: [{ eventId: `ev-${i}`, timestamp: timestampFromDate(new Date()), eventType: "tick", detailsJson: `{"i":${i}}` }],
        },
        undefined,
        { retryForMs: 60_000 },
      );
    for (let i = 0; i < batches / 2; i++) await publishBatch(i);

    colony.kill("SIGKILL");
    await waitFor("the colony to die", () => (colony.exitCode !== null || colony.signalCode !== null ? true : undefined));
    colony = await startColonyProcess(project.dir, env);

    // The agent's NATS client reconnects to the restarted server by itself.
    for (let i = batches / 2; i < batches; i++) await publishBatch(i);
    const api = colonyApi(url, project.localToken);
    expect((await api.getStatus({})).services.map((s) => [s.agentId, s.status])).toEqual([["api-1", "online"]]);
    const events = await waitFor(
      "every event",
      async () => {
        const res = await api.queryEvents({ eventType: "tick", limit: 1000 });
        return res.events.length >= batches ? res : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    expect(events.events).toHaveLength(batches);
    expect(new Set(events.events.map((e) => e.eventId)).size).toBe(batches);
    const metrics = await api.queryMetrics({ service: "api", interval: "1m", since: timestampFromDate(new Date(Date.now() - 30 * 60_000)) });
    expect(metrics.series).toHaveLength(batches);
    expect(metrics.series.every((s) => s.points.length === 10)).toBe(true);
    colony.kill("SIGTERM");
    await waitFor("the colony to stop", () => (colony.exitCode !== null ? true : undefined), { timeoutMs: 30_000 });
  });
});
