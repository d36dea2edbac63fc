// Debug sessions through the colony (DebugService) with real bpftrace, a real
// agent and a real compiled C program: attach, events, detach, expiry (also
// across a colony restart), limits, clear errors, tokens and the audit log.
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningColony } from "@coral/colony";
import { AgentClientPool } from "@coral/colony/testing";
import { testAgent } from "../helpers/agents.ts";
import { colonyApi, type TestProject } from "../helpers/colony.ts";
import { rejection } from "../helpers/errors.ts";
import { waitFor } from "../helpers/wait.ts";
import { bpfSkipReason, compilePayments, debugApi, request, startObservedTarget, type ObservedTarget } from "./helpers.ts";

const skip = bpfSkipReason();
if (skip) console.log(`colony-sessions.test: SKIPPING real bpftrace tests: ${skip}`);

describe.skipIf(skip !== undefined)("debug sessions through the colony", () => {
  let fixture: ObservedTarget | undefined;
  let project: TestProject;
  let colony: RunningColony;
  let agent: Awaited<ReturnType<typeof testAgent>>;
  let port: number;
  let pid: number;
  let api: ReturnType<typeof debugApi>;

  beforeAll(async () => {
    fixture = await startObservedTarget(compilePayments(), "payments", { pattern: "validate", agent: { maxDebugSessions: 2 } });
    ({ port, project, colony, agent, api } = fixture);
    pid = fixture.target.pid!;
  }, 120_000);

  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
  });

  it("attach, N calls, detach: N pairs through the colony, a completed session with a summary, audit rows", async () => {
    const attached = await api.attachUprobe({ serviceName: "payments", functionName: "validate_card", durationMs: 60_000, captureArgs: 1, captureReturn: true });
    const s = attached.session!;
    expect(s.state).toBe("active");
    expect(s.pid).toBe(pid);
    expect(s.requestedBy).toBe("local");
    await request(port, "12 20");
    const detached = await api.detachUprobe({ sessionId: s.sessionId });
    expect(detached.session?.state).toBe("completed");
    expect(Number(detached.session?.summary?.calls)).toBe(12);
    expect(Number(detached.session?.summary?.p95Ns)).toBeGreaterThanOrEqual(2_000_000);

    const page = await api.queryUprobeEvents({ sessionId: s.sessionId, limit: 100 });
    expect(page.events.filter((e) => e.type === "entry")).toHaveLength(12);
    const returns = page.events.filter((e) => e.type === "return");
    expect(returns).toHaveLength(12);
    for (const r of returns) {
      expect(r.returnValue).toBe("40");
      expect(Number(r.durationNs)).toBeGreaterThanOrEqual(2_000_000);
      expect(Number(r.durationNs)).toBeLessThan(250_000_000);
    }

    const listed = await api.listDebugSessions({});
    expect(listed.sessions.find((x) => x.sessionId === s.sessionId)?.state).toBe("completed");
    const rows = await colony.store.read(async (c) =>
      (await c.runAndReadAll("SELECT state, function_name, requested_by FROM debug_sessions WHERE session_id = $1", [s.sessionId])).getRowObjectsJS(),
    );
    expect(rows).toEqual([{ state: "completed", function_name: "validate_card", requested_by: "local" }]);
    const audit = (await colony.store.listAudit(100)).filter((a) => a.target === s.sessionId);
    expect(audit.map((a) => a.action).sort()).toEqual(["debug.attach", "debug.detach", "debug.events"]);
    expect(audit.every((a) => a.actor === "local" && a.details.service === "payments" && a.details.function === "validate_card")).toBe(true);
    const transitions = await colony.store.read(async (c) =>
      (await c.runAndReadAll("SELECT to_state FROM actor_transitions WHERE actor_id = $1 ORDER BY version", [s.sessionId])).getRowObjectsJS(),
    );
    expect(transitions.map((t) => t.to_state)).toEqual(["requested", "attaching", "active", "detaching", "completed"]);
  });

  it("streams live events and ends the stream when the session expires; the collector is stopped", async () => {
    const attached = await api.attachUprobe({ serviceName: "payments", functionName: "validate_card", durationMs: 2500 });
    const id = attached.session!.sessionId;
    const driving = request(port, "30 10");
    let entries = 0;
    let last;
    for await (const msg of api.streamUprobeEvents({ sessionId: id })) {
      entries += msg.events.filter((e) => e.type === "entry").length;
      last = msg;
    }
    await driving;
    expect(last?.done).toBe(true);
    expect(last?.session?.state).toBe("expired");
    expect(entries).toBe(30);
    const onAgent = await new AgentClientPool(project.colonyKey)
      .get(agent.agentId, agent.apiUrl)
      .queryUprobeEvents({ collectorId: last!.session!.collectorId, limit: 1 });
    expect(onAgent.running).toBe(false);
    // The colony audits the expiry right after the transition is stored, not before the stream ends.
    const audit = await waitFor("the expiry in the audit log", async () => {
      const actions = (await colony.store.listAudit(100)).filter((a) => a.target === id).map((a) => `${a.actor}:${a.action}`);
      return actions.includes("colony:debug.expired") ? actions : undefined;
    });
    expect(audit).toContain("local:debug.attach");
  });

  it("answers with clear errors: unknown service, unknown function, limits, tokens", async () => {
    const unknown = await rejection(api.attachUprobe({ serviceName: "billing", functionName: "x" }));
    expect(unknown.code).toBe(Code.NotFound);
    expect(unknown.rawMessage).toMatch(/unknown service "billing" \(known: payments\)/);
    const fn = await rejection(api.attachUprobe({ serviceName: "payments", functionName: "validate_crd" }));
    expect(fn.code).toBe(Code.NotFound);
    expect(fn.rawMessage).toMatch(/close matches: validate_card/);
    const failed = (await api.listDebugSessions({ state: "failed" })).sessions;
    expect(failed.some((f) => f.functionName === "validate_crd" && /not found/.test(f.reason))).toBe(true);
    expect((await rejection(api.attachUprobe({ serviceName: "payments", functionName: "validate_card", durationMs: 600_001 }))).code).toBe(Code.ResourceExhausted);
    expect((await rejection(api.attachUprobe({ serviceName: "payments", functionName: "validate card" }))).code).toBe(Code.InvalidArgument);
    // Logpoints and snapshots are for Node processes; this one is C (the eBPF path is unchanged).
    const logpoint = await rejection(api.attachUprobe({ serviceName: "payments", functionName: "payments.c:12", kind: "logpoint", expression: "amount" }));
    expect(logpoint.code).toBe(Code.Unimplemented);
    expect(logpoint.rawMessage).toMatch(/^logpoints work on Node processes only \(through the V8 inspector\); the observed process \(pid \d+\) is not Node/);

    // The agent allows two collectors at once here.
    const a = await api.attachUprobe({ serviceName: "payments", functionName: "validate_card" });
    const b = await api.attachUprobe({ serviceName: "payments", functionName: "never_called" });
    const third = await rejection(api.attachUprobe({ serviceName: "payments", functionName: "validate_card" }));
    expect(third.code).toBe(Code.ResourceExhausted);
    expect(third.rawMessage).toMatch(/at most 2 debug sessions/);
    await api.detachUprobe({ sessionId: a.session!.sessionId });
    await api.detachUprobe({ sessionId: b.session!.sessionId });

    const created = await colonyApi(colony.url, project.localToken).createToken({ name: "reader", scope: 1 });
    const reader = debugApi(colony.url, created.token);
    const denied = await rejection(reader.attachUprobe({ serviceName: "payments", functionName: "validate_card" }));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect((await reader.listDebugSessions({})).sessions.length).toBeGreaterThan(0);
    expect((await rejection(debugApi(colony.url).listDebugSessions({}))).code).toBe(Code.Unauthenticated);
    expect((await rejection(api.detachUprobe({ sessionId: "dbg-nope" }))).code).toBe(Code.NotFound);
  });

  it("keeps a session across a colony restart and still expires it", async () => {
    const attached = await api.attachUprobe({ serviceName: "payments", functionName: "validate_card", durationMs: 6000 });
    const id = attached.session!.sessionId;
    await colony.close();
    colony = await project.start();
    api = debugApi(colony.url, project.localToken);
    const restored = await api.getDebugSession({ sessionId: id });
    expect(["active", "detaching", "expired"]).toContain(restored.session?.state);
    const ended = await waitFor("session expires after the restart", async () => {
      const s = (await api.getDebugSession({ sessionId: id })).session!;
      return s.state === "expired" ? s : undefined;
    }, { timeoutMs: 45_000, intervalMs: 250 });
    expect(ended.endedAt).toBeDefined();
    const onAgent = await new AgentClientPool(project.colonyKey).get(agent.agentId, agent.apiUrl).queryUprobeEvents({ collectorId: ended.collectorId, limit: 1 });
    expect(onAgent.running).toBe(false);
  }, 90_000);
});
