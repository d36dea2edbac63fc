import { createActor } from "xstate";
import { describe, expect, it } from "vitest";
import { debugSessionMachine, type DebugSessionInput } from "./session-machine.ts";

const input: DebugSessionInput = {
  sessionId: "dbg-1",
  serviceName: "payments",
  functionName: "validate_card",
  agentId: "payments-abc",
  agentUrl: "http://127.0.0.1:1",
  requestedBy: "local",
  options: { durationMs: 60_000, captureArgs: 0, captureReturn: false, sampleRate: 1, maxEvents: 10_000, slowThresholdMs: 100 },
  createdAtMs: 1_000,
};

function started() {
  const a = createActor(debugSessionMachine, { input });
  a.start();
  a.send({ type: "attach", atMs: 1_000, timeoutMs: 45_000 });
  return a;
}

describe("debug session chart", () => {
  it("attaches, expires at its deadline and ends as expired when the agent confirms", () => {
    const a = started();
    expect(a.getSnapshot().value).toBe("attaching");
    a.send({ type: "attached", atMs: 2_000, collectorId: "c1", pid: 7, isGo: false, expiresAtMs: 62_000 });
    expect(a.getSnapshot().context.deadlineMs).toBe(62_000);
    a.send({ type: "deadline", atMs: 61_999 });
    expect(a.getSnapshot().value).toBe("active");
    a.send({ type: "deadline", atMs: 62_000 });
    expect(a.getSnapshot().value).toBe("detaching");
    a.send({ type: "detached", atMs: 62_100, summary: null });
    expect(a.getSnapshot().value).toBe("expired");
    expect(a.getSnapshot().context.endedAtMs).toBe(62_100);
  });

  it("completes on detach, and ends anyway when the agent never confirms", () => {
    const a = started();
    a.send({ type: "attached", atMs: 2_000, collectorId: "c1", pid: 7, isGo: false, expiresAtMs: 62_000 });
    a.send({ type: "detach", atMs: 3_000, reason: "detached by local", timeoutMs: 30_000 });
    expect(a.getSnapshot().value).toBe("detaching");
    a.send({ type: "deadline", atMs: 33_000 });
    expect(a.getSnapshot().value).toBe("completed");
    expect(a.getSnapshot().context.reason).toMatch(/did not confirm/);
    expect(a.getSnapshot().context.stopUnconfirmed).toBe(true);

    // The agent came back and took the stop after all.
    const summary = { entries: 3, calls: 3, avgNs: 1, p50Ns: 1, p95Ns: 1, p99Ns: 1, maxNs: 1, slowCalls: 0, slowThresholdNs: 100, lostEvents: 0, stopReason: "stopped" };
    a.send({ type: "stop_confirmed", atMs: 40_000, summary });
    expect(a.getSnapshot().value).toBe("completed");
    expect(a.getSnapshot().context.stopUnconfirmed).toBe(false);
    expect(a.getSnapshot().context.reason).toBe("detached by local; stopped on the agent when it came back");
    expect(a.getSnapshot().context.summary?.calls).toBe(3);
  });

  it("takes a late stop only when one is owed", () => {
    const a = started();
    a.send({ type: "attached", atMs: 2_000, collectorId: "c1", pid: 7, isGo: false, expiresAtMs: 62_000 });
    a.send({ type: "detach", atMs: 3_000, reason: "detached by local", timeoutMs: 30_000 });
    a.send({ type: "detached", atMs: 3_100, summary: null });
    expect(a.getSnapshot().context.stopUnconfirmed).toBe(false);
    a.send({ type: "stop_confirmed", atMs: 4_000, summary: null });
    expect(a.getSnapshot().context.reason).toBe("detached by local");
  });

  it("ends failed, with the agent's reason, when the agent ended the collector in error (a refused logpoint)", () => {
    const summary = { entries: 0, calls: 0, avgNs: 0, p50Ns: 0, p95Ns: 0, p99Ns: 0, maxNs: 0, slowCalls: 0, slowThresholdNs: 0, lostEvents: 0, stopReason: "error" };
    const reason = "the expression has side effects: seen.push(1) (EvalError: Possible side-effect in debug-evaluate); logpoints evaluate only side-effect-free expressions";
    for (const detach of [reason, "detached by local"]) {
      const a = started();
      a.send({ type: "attached", atMs: 2_000, collectorId: "c1", pid: 7, isGo: false, expiresAtMs: 62_000 });
      a.send({ type: "detach", atMs: 3_000, reason: detach, timeoutMs: 30_000 });
      a.send({ type: "detached", atMs: 3_100, summary, reason });
      expect(a.getSnapshot().value).toBe("failed");
      expect(a.getSnapshot().context).toMatchObject({ reason, endedAtMs: 3_100, summary: { stopReason: "error" } });
    }
    // Any other stop reason completes as before.
    const b = started();
    b.send({ type: "attached", atMs: 2_000, collectorId: "c1", pid: 7, isGo: false, expiresAtMs: 62_000 });
    b.send({ type: "detach", atMs: 3_000, reason: "detached by local", timeoutMs: 30_000 });
    b.send({ type: "detached", atMs: 3_100, summary: { ...summary, stopReason: "stopped" } });
    expect(b.getSnapshot().value).toBe("completed");
  });

  it("fails when the attach fails or never answers", () => {
    const a = started();
    a.send({ type: "attach_failed", atMs: 1_500, reason: "function not found" });
    expect(a.getSnapshot().value).toBe("failed");
    const b = started();
    b.send({ type: "deadline", atMs: 46_000 });
    expect(b.getSnapshot().value).toBe("failed");
    expect(b.getSnapshot().context.reason).toMatch(/did not answer/);
  });

  it("survives a snapshot round trip with its deadline", () => {
    const a = started();
    a.send({ type: "attached", atMs: 2_000, collectorId: "c1", pid: 7, isGo: false, expiresAtMs: 62_000 });
    const restored = createActor(debugSessionMachine, { snapshot: JSON.parse(JSON.stringify(a.getPersistedSnapshot())) } as never);
    restored.start();
    expect(restored.getSnapshot().value).toBe("active");
    restored.send({ type: "deadline", atMs: 70_000 });
    expect(restored.getSnapshot().value).toBe("detaching");
    expect(restored.getSnapshot().context.endAs).toBe("expired");
  });
});
