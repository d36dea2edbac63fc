// How Node line sessions end and carry on, end to end (a real colony, a real
// agent, an unmodified Node HTTP service): a logpoint refused on its first hit
// ends failed with the agent's reason, in the colony and in the CLI; a
// logpoint survives an agent restart (resumed on the same process, values of
// both runs under one session, seq without gaps), the target clean after.
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "@coral/agent";
import { loopbackListeners } from "@coral/agent/debug";
import { AgentClientPool } from "@coral/colony/testing";
import { testAgent } from "../helpers/agents.ts";
import { runCoral } from "../helpers/cli.ts";
import type { TestProject } from "../helpers/colony.ts";
import { waitFor } from "../helpers/wait.ts";
import { debugApi, nodeAppBin, startObservedTarget, type ObservedTarget } from "./helpers.ts";

describe("Node line sessions: failure and an agent restart", () => {
  let fixture: ObservedTarget | undefined;
  let project: TestProject;
  let colonyUrl: string;
  let port: number;
  let target: ChildProcess;
  let api: ReturnType<typeof debugApi>;
  let agent: RunningAgent;

  beforeAll(async () => {
    fixture = await startObservedTarget(nodeAppBin(), "users", { pattern: "add" });
    ({ port, project, api, agent, target } = fixture);
    colonyUrl = fixture.colony.url;
  }, 120_000);

  afterAll(async () => {
    await agent?.close();
    await fixture?.[Symbol.asyncDispose]();
  });

  const add = async (n: number) => (await fetch(`http://127.0.0.1:${port}/add?n=${n}`, { signal: AbortSignal.timeout(30_000) })).text();
  const onAgent = () => new AgentClientPool(project.colonyKey).get(agent.agentId, agent.apiUrl);

  it("a logpoint refused on its first hit ends failed with the reason, not stopped; the CLI says so and exits 1", async () => {
    const before = await loopbackListeners(target.pid!);
    const remote = ["--colony-url", colonyUrl, "--token", project.localToken];
    const running = runCoral(["debug", "logpoint", "users", "app.mjs:11", "--expr", "nope.x", "--duration", "30s", ...remote], { env: { CORAL_HOME: project.home }, timeoutMs: 60_000 });
    const active = await waitFor("the logpoint active", async () => (await api.listDebugSessions({ state: "active" })).sessions.find((s) => s.kind === "logpoint"));
    expect(await add(2)).toBe("201");
    const res = await running;
    expect(res.code).toBe(1);
    expect(res.stdout).toContain("✗ Session failed. 0 value(s).");
    expect(res.stderr).toMatch(/logpoint refused: the expression throws at .*app\.mjs:11: ReferenceError: nope is not defined/);
    const session = (await api.getDebugSession({ sessionId: active.sessionId })).session!;
    expect(session.state).toBe("failed");
    expect(session.reason).toMatch(/^the expression throws at .*app\.mjs:11: ReferenceError: nope is not defined$/);
    expect(session.summary?.stopReason).toBe("error");
    expect((await api.listDebugSessions({ state: "failed" })).sessions.map((s) => s.sessionId)).toContain(active.sessionId);
    expect(await add(2)).toBe("201");
    await waitFor("the inspector closed", async () => [...(await loopbackListeners(target.pid!))].every((p) => before.has(p)), { timeoutMs: 15_000 });
  }, 90_000);

  it("a logpoint resumes after an agent restart: values of both runs under one session, seq 1..n, the target clean after", async () => {
    const before = await loopbackListeners(target.pid!);
    const attached = await api.attachUprobe({ serviceName: "users", functionName: "app.mjs:11", kind: "logpoint", expression: "a * 10 + b", durationMs: 120_000, maxEvents: 1000 });
    const s = attached.session!;
    expect(await add(2)).toBe("201");
    await waitFor("the first run's values", async () => (await api.queryUprobeEvents({ sessionId: s.sessionId, limit: 100 })).events.length === 2);

    // The agent closes (its sessions stop, the collector stays due) and starts again on the same data dir.
    await agent.close();
    await waitFor("the inspector closed with the agent", async () => [...(await loopbackListeners(target.pid!))].every((p) => before.has(p)), { timeoutMs: 15_000 });
    expect(await add(2)).toBe("201");
    agent = await testAgent(project, colonyUrl, "users", port, { healthUrl: undefined });
    await waitFor("the collector resumed", async () => (await onAgent().queryUprobeEvents({ collectorId: s.collectorId, limit: 1 })).running, { timeoutMs: 60_000, intervalMs: 100 });

    expect(await add(4)).toBe(String(1 + 200 + 3 + 200));
    const page = await waitFor("the second run's values through the colony", async () => {
      const p = await api.queryUprobeEvents({ sessionId: s.sessionId, limit: 100 });
      return p.events.length >= 6 ? p : undefined;
    }, { timeoutMs: 30_000 });
    // add(i % 2 ? 200 : i, 1): line 11 runs for every call; the calls made while the agent was down are not seen.
    expect(page.events.map((e) => [Number(e.seq), e.type, e.value])).toEqual([
      [1, "log", "1"],
      [2, "log", "2001"],
      [3, "log", "1"],
      [4, "log", "2001"],
      [5, "log", "21"],
      [6, "log", "2001"],
    ]);
    expect(page.events.every((e) => e.pid === target.pid)).toBe(true);
    expect(page.session).toMatchObject({ state: "active", collectorId: s.collectorId, kind: "logpoint" });

    const detached = await api.detachUprobe({ sessionId: s.sessionId });
    expect(detached.session?.state).toBe("completed");
    expect(Number(detached.session?.summary?.entries)).toBe(6);
    await waitFor("the inspector closed", async () => [...(await loopbackListeners(target.pid!))].every((p) => before.has(p)), { timeoutMs: 15_000 });
    expect(await add(2)).toBe("201");
  }, 180_000);
});
