// An agent restart while debug sessions are active, with real bpftrace, a
// real compiled C program, a real colony and real agents on one data dir:
// the restarted agent resumes a collector whose deadline has not passed
// (same id, seq continuing, events of both runs through the colony), does
// not resume an expired one, says why when it cannot resume one, and is
// stopped by the colony when its session was detached while it was down.
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "@coral/agent";
import { AgentClientPool } from "@coral/colony/testing";
import { testAgent } from "../helpers/agents.ts";
import { type TestProject } from "../helpers/colony.ts";
import { waitFor } from "../helpers/wait.ts";
import { bpfSkipReason, compilePayments, debugApi, request, startObservedTarget, startTarget, targetListening, type ObservedTarget } from "./helpers.ts";

const skip = bpfSkipReason();
if (skip) console.log(`agent-restart.test: SKIPPING real bpftrace tests: ${skip}`);

describe.skipIf(skip !== undefined)("debug collectors across an agent restart", () => {
  let fixture: ObservedTarget | undefined;
  let project: TestProject;
  let colonyUrl: string;
  let port: number;
  let target: ChildProcess;
  let api: ReturnType<typeof debugApi>;
  let agent: RunningAgent;
  const bin = skip ? "" : compilePayments();
  const extra: ChildProcess[] = [];

  beforeAll(async () => {
    fixture = await startObservedTarget(bin, "payments", { pattern: "validate" });
    ({ port, project, api, agent, target } = fixture);
    colonyUrl = fixture.colony.url;
  }, 120_000);

  afterAll(async () => {
    await agent?.close();
    await fixture?.[Symbol.asyncDispose]();
    for (const c of extra) c.kill("SIGKILL");
  });

  /** Stops the agent and starts it again on the same data dir (testAgent derives it from the service). */
  async function restartAgent(beforeStart?: () => Promise<unknown>): Promise<void> {
    await agent.close();
    await beforeStart?.();
    agent = await testAgent(project, colonyUrl, "payments", port, { healthUrl: undefined });
  }

  const onAgent = () => new AgentClientPool(project.colonyKey).get(agent.agentId, agent.apiUrl);

  it("resumes an active collector: events of both runs through the colony, one id, seq 1..n without gaps", async () => {
    const attached = await api.attachUprobe({ serviceName: "payments", functionName: "validate_card", durationMs: 120_000, captureArgs: 1, captureReturn: true });
    const s = attached.session!;
    expect(await request(port, "3 10")).toBe("ok 60");
    const first = await waitFor("the first run's events", async () => {
      const page = await api.queryUprobeEvents({ sessionId: s.sessionId, limit: 100 });
      return page.events.length === 6 ? page : undefined;
    });
    expect(first.session?.state).toBe("active");

    const firstUrl = agent.apiUrl;
    await restartAgent();
    expect(agent.apiUrl).not.toBe(firstUrl);
    // Calls are traced again once the agent has re-attached the collector.
    const resumed = await waitFor("the collector resumed", async () => {
      const page = await onAgent().queryUprobeEvents({ collectorId: s.collectorId, limit: 1 });
      return page.running ? page : undefined;
    }, { timeoutMs: 60_000, intervalMs: 100 });
    expect(Number(resumed.summary?.calls)).toBe(3);

    expect(await request(port, "4 20")).toBe("ok 160");
    const page = await waitFor("the second run's events through the colony", async () => {
      const p = await api.queryUprobeEvents({ sessionId: s.sessionId, limit: 100 });
      return p.events.length >= 14 ? p : undefined;
    }, { timeoutMs: 30_000 });
    expect(page.events).toHaveLength(14);
    expect(page.events.map((e) => Number(e.seq))).toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
    expect(page.events.map((e) => `${e.type}:${e.type === "entry" ? e.args.join(",") : e.returnValue}`)).toEqual([
      ...Array(3).fill(["entry:10", "return:20"]).flat(),
      ...Array(4).fill(["entry:20", "return:40"]).flat(),
    ]);
    expect(page.events.every((e) => e.pid === target.pid)).toBe(true);
    expect(page.session?.state).toBe("active");
    expect(page.session?.collectorId).toBe(s.collectorId);

    const detached = await api.detachUprobe({ sessionId: s.sessionId });
    expect(detached.session?.state).toBe("completed");
    expect(Number(detached.session?.summary?.calls)).toBe(7);
    expect(Number(detached.session?.summary?.entries)).toBe(7);
  }, 180_000);

  it("does not resume a collector whose deadline passed while the agent was down", async () => {
    const attached = await api.attachUprobe({ serviceName: "payments", functionName: "validate_card", durationMs: 4000, captureArgs: 1 });
    const s = attached.session!;
    expect(await request(port, "2 10")).toBe("ok 40");
    await waitFor("the events", async () => (await api.queryUprobeEvents({ sessionId: s.sessionId, limit: 100 })).events.length === 4);
    const expiresAtMs = Number(s.expiresAt!.seconds) * 1000 + s.expiresAt!.nanos / 1e6;
    await restartAgent(() => waitFor("the collector's deadline", () => Date.now() > expiresAtMs + 200, { timeoutMs: 30_000 }));

    const ended = await waitFor("the agent ends the collector", async () => {
      const p = await onAgent().queryUprobeEvents({ collectorId: s.collectorId, limit: 100 });
      return p.summary?.stopReason ? p : undefined;
    }, { timeoutMs: 60_000, intervalMs: 100 });
    expect(ended.running).toBe(false);
    expect(ended.summary?.stopReason).toBe("duration");
    expect(ended.summary?.stopDetail).toMatch(/deadline .* passed while the agent was down/);
    expect(ended.events).toHaveLength(4);

    // Nothing traces the function any more.
    expect(await request(port, "3 10")).toBe("ok 60");
    const session = await waitFor("the colony expires the session", async () => {
      const v = (await api.getDebugSession({ sessionId: s.sessionId })).session!;
      return v.state === "expired" ? v : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    expect(session.reason).toMatch(/passed while the agent was down/);
    expect((await api.queryUprobeEvents({ sessionId: s.sessionId, limit: 100 })).events).toHaveLength(4);
  }, 120_000);

  it("stops a collector detached while the agent was down once the agent is back", async () => {
    const attached = await api.attachUprobe({ serviceName: "payments", functionName: "validate_card", durationMs: 180_000, captureArgs: 1 });
    const s = attached.session!;
    expect(await request(port, "1 10")).toBe("ok 20");
    await waitFor("the event", async () => (await api.queryUprobeEvents({ sessionId: s.sessionId, limit: 100 })).events.length === 2);

    await restartAgent(async () => {
      // The agent is down: the detach cannot reach it, and the session ends at its detach deadline (30 s).
      expect((await api.detachUprobe({ sessionId: s.sessionId })).session?.state).toBe("detaching");
      const ended = await waitFor("the detach deadline", async () => {
        const v = (await api.getDebugSession({ sessionId: s.sessionId })).session!;
        return v.state === "completed" ? v : undefined;
      }, { timeoutMs: 60_000, intervalMs: 250 });
      expect(ended.reason).toMatch(/did not confirm the stop/);
    });

    // Back, the agent resumes the collector; the colony stops it as soon as it can.
    const session = await waitFor("the owed stop", async () => {
      const v = (await api.getDebugSession({ sessionId: s.sessionId })).session!;
      return /stopped on the agent when it came back/.test(v.reason) ? v : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    expect(session.state).toBe("completed");
    expect(session.reason).toBe("detached by local; stopped on the agent when it came back");
    const onAgentNow = await onAgent().queryUprobeEvents({ collectorId: s.collectorId, limit: 100 });
    expect(onAgentNow.running).toBe(false);
    expect(onAgentNow.summary?.stopReason).toBe("stopped");
    expect(await request(port, "2 10")).toBe("ok 40");
    expect((await onAgent().queryUprobeEvents({ collectorId: s.collectorId, limit: 100 })).events).toHaveLength(2);
  }, 180_000);

  it("ends a collector it cannot resume (no observed process) with the reason the colony shows", async () => {
    const attached = await api.attachUprobe({ serviceName: "payments", functionName: "validate_card", durationMs: 120_000 });
    const s = attached.session!;
    expect(await request(port, "1 10")).toBe("ok 20");
    await waitFor("the event", async () => (await api.queryUprobeEvents({ sessionId: s.sessionId, limit: 100 })).events.length === 2);
    // The agent comes back while nothing listens on the port.
    await restartAgent(async () => {
      target.kill("SIGKILL");
      await waitFor("the target to exit", () => target.exitCode !== null || target.signalCode !== null);
    });

    const page = await waitFor("the colony learns why", async () => {
      const p = await api.queryUprobeEvents({ sessionId: s.sessionId, limit: 100 });
      return p.session?.state !== "active" ? p : undefined;
    }, { timeoutMs: 60_000, intervalMs: 250 });
    expect(page.events).toHaveLength(2);
    const ended = await waitFor("the session to complete", async () => {
      const v = (await api.getDebugSession({ sessionId: s.sessionId })).session!;
      return v.state === "completed" ? v : undefined;
    }, { timeoutMs: 40_000, intervalMs: 250 });
    expect(ended.reason).toMatch(/^collector stopped on the agent \(resume_failed\): could not resume after the agent restarted: this agent observes no process/);
    expect(ended.summary?.stopReason).toBe("resume_failed");
    const listed = (await api.listDebugSessions({})).sessions.find((x) => x.sessionId === s.sessionId);
    expect(listed?.reason).toBe(ended.reason);

    // The program is back for whatever runs after this.
    target = startTarget(bin, port, [], extra);
    await targetListening(port);
  }, 120_000);
});
