// A service is a set of processes: a real agent on our own worker-pool
// server (a parent holding the socket, N workers serving), a real colony.
// Status carries the set's process count, and CPU and memory summed over it.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "@coral/agent";
import type { RunningColony } from "@coral/colony";
import { testAgent } from "../helpers/agents.ts";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { compileWorkers, onPath, request, startTarget, targetListening } from "../debug/helpers.ts";
import type { ChildProcess } from "node:child_process";

const skip = onPath("gcc") ? undefined : "gcc not installed";
if (skip) console.log(`process-set.test (agent): SKIPPING: ${skip}`);

const workers = 3;
const workerMb = 24;

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) * 1024;
}

function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
}

describe.skipIf(skip !== undefined)("an agent on a worker-pool server", () => {
  const children: ChildProcess[] = [];
  let project: TestProject;
  let colony: RunningColony;
  let agent: RunningAgent | undefined;
  let port: number;
  let pid: number;

  beforeAll(async () => {
    port = await freePort();
    pid = startTarget(compileWorkers(), port, ["pool", String(workers), String(workerMb)], children).pid!;
    await targetListening(port);
    project = await createTestProject();
    colony = await project.start();
    agent = await testAgent(project, colony.url, "pool", port, { healthUrl: undefined });
  }, 120_000);

  afterAll(async () => {
    await agent?.close();
    await project?.[Symbol.asyncDispose]();
    for (const c of children) c.kill("SIGKILL"); // the workers die with their parent
  });

  it("reports 1+N processes, and CPU and memory summed over them", async () => {
    const api = colonyApi(colony.url, project.localToken);
    const status = async () => (await api.getStatus({})).services.find((s) => s.name === "pool");
    const first = await waitFor("the set in status", async () => {
      const s = await status();
      return s?.processCount === 1 + workers && Number(s.memoryBytes) > workers * workerMb * 1024 * 1024 ? s : undefined;
    });
    expect(first.pid).toBe(pid);
    const set = [pid, ...childrenOf(pid)];
    expect(set).toHaveLength(1 + workers);
    // Memory: the sum of the members' VmRSS (steady: the workers touched theirs at start).
    const sum = set.reduce((a, p) => a + rssBytes(p), 0);
    expect(Math.abs(Number(first.memoryBytes) - sum)).toBeLessThan(sum * 0.1);
    expect(rssBytes(pid)).toBeLessThan(sum / 4);

    // CPU: a worker spins for 4 s while the parent only waits; the service shows it.
    const burning = request(port, "burn 4000", 30_000);
    const busy = await waitFor("the worker's CPU in status", async () => {
      const s = await status();
      return s && s.cpuPercent >= 15 ? s : undefined;
    });
    expect(busy.processCount).toBe(1 + workers);
    expect(await burning).toMatch(/^ok 0 \d+$/);
    const burner = Number(/^ok 0 (\d+)$/.exec(await burning)![1]);
    expect(set.slice(1)).toContain(burner);
  }, 120_000);
});
