import { createActor } from "xstate";
import { describe, expect, it } from "vitest";
import { rollbackMachine, type RollbackInput } from "./rollback-machine.ts";

const input: RollbackInput = {
  rollbackId: "rb-1",
  service: "api",
  fromVersion: "2.0.0",
  targetVersion: "1.9.0",
  strategy: "sdk",
  plan: [],
  initiatedBy: "local",
  startedAtMs: 1000,
  executeTimeoutMs: 10_000,
  verifyTimeoutMs: 5_000,
};

function started() {
  const actor = createActor(rollbackMachine, { input }).start();
  actor.send({ type: "execute", atMs: 1000 });
  return actor;
}

describe("rollback machine", () => {
  it("completes only after verification, with every step marked done", () => {
    const actor = started();
    actor.send({ type: "executed", atMs: 2000, message: "ok", steps: ["ran the app's rollback handler"] });
    expect(actor.getSnapshot().value).toBe("verifying");
    expect(actor.getSnapshot().context.deadlineMs).toBe(7000);
    actor.send({ type: "observed", atMs: 2500, observation: "api reports version 2.0.0, healthy" });
    expect(actor.getSnapshot().value).toBe("verifying");
    actor.send({ type: "verified", atMs: 3000, observation: "api reports version 1.9.0, healthy" });
    const s = actor.getSnapshot();
    expect(s.value).toBe("completed");
    expect(s.context.steps.map((x) => x.outcome)).toEqual(["done", "done", "done"]);
    expect(s.context.deadlineMs).toBeNull();
  });

  it.each([
    { phase: "executing", events: [], at: 11_000, error: "timed out after 10s running the sdk strategy" },
    {
      phase: "verifying",
      events: [
        { type: "executed", atMs: 2000, message: "", steps: [] },
        { type: "observed", atMs: 2100, observation: "api reports version 2.0.0, healthy" },
      ] as const,
      at: 7000,
      error: "timed out after 5s waiting for api: api reports version 2.0.0, healthy",
    },
  ])("a deadline in $phase ends it failed with the reason", ({ events, at, error }) => {
    const actor = started();
    for (const e of events) actor.send({ ...e, steps: "steps" in e ? [...e.steps] : [] } as never);
    actor.send({ type: "deadline", atMs: at - 1 });
    expect(actor.getSnapshot().value).not.toBe("failed");
    actor.send({ type: "deadline", atMs: at });
    expect(actor.getSnapshot().value).toBe("failed");
    expect(actor.getSnapshot().context.error).toBe(error);
  });

  it("a failed strategy with nothing undone ends failed with its message", () => {
    const a = started();
    a.send({ type: "executionFailed", atMs: 1500, error: "handler threw", reverted: false });
    expect([a.getSnapshot().value, a.getSnapshot().context.error]).toEqual(["failed", "handler threw"]);
  });

  it("a failed step that was undone ends rolled_back, saying where the service is, with the steps and the undo's steps", () => {
    const actor = createActor(rollbackMachine, { input: { ...input, strategy: "systemd", plan: ["systemctl stop api@2.0.0", "systemctl start api@1.9.0"] } }).start();
    actor.send({ type: "execute", atMs: 1000 });
    actor.send({
      type: "executionFailed",
      atMs: 1500,
      error: "systemctl start api@1.9.0 failed (exit 1): no such unit",
      reverted: true,
      steps: ["systemctl stop api@2.0.0 → ok", "systemctl start api@1.9.0 → exit 1"],
      undoSteps: ["systemctl stop api@1.9.0 → ok", "systemctl start api@2.0.0 → ok", "systemctl is-active api@2.0.0 → ok"],
    });
    const s = actor.getSnapshot();
    expect(s.value).toBe("rolled_back");
    expect(s.context.error).toBe("undone, api is back on 2.0.0 (the undo was checked): systemctl start api@1.9.0 failed (exit 1): no such unit; fix that, then roll back again");
    expect(s.context.reason).toBe(s.context.error);
    expect(s.context.steps.map((x) => [x.description, x.outcome])).toEqual([
      ["Running systemctl stop api@2.0.0 && systemctl start api@1.9.0", "failed"],
      ["systemctl stop api@2.0.0 → ok", "done"],
      ["systemctl start api@1.9.0 → exit 1", "failed"],
      ["Undo: systemctl stop api@1.9.0 → ok", "done"],
      ["Undo: systemctl start api@2.0.0 → ok", "done"],
      ["Undo: systemctl is-active api@2.0.0 → ok", "done"],
    ]);
    expect(s.context.deadlineMs).toBeNull();
  });

  it("an app handler that undid itself ends rolled_back, crediting the handler", () => {
    const a = started();
    a.send({ type: "executionFailed", atMs: 1500, error: "migration failed", reverted: true, undoSteps: ["restored schema 42"] });
    expect(a.getSnapshot().value).toBe("rolled_back");
    expect(a.getSnapshot().context.error).toBe("undone, api is back on 2.0.0 (the app's rollback handler undid its changes): migration failed; fix that, then roll back again");
  });

  it("an undo that fails too ends failed with both errors", () => {
    const a = started();
    a.send({
      type: "executionFailed",
      atMs: 1500,
      error: "step failed",
      reverted: false,
      steps: ["a → exit 1"],
      undoSteps: ["b → exit 2"],
      undoError: "b failed (exit 2)",
    });
    const s = a.getSnapshot();
    expect(s.value).toBe("failed");
    expect(s.context.error).toBe("step failed; the undo failed too: b failed (exit 2); api may be left between 2.0.0 and 1.9.0: check it by hand");
    expect(s.context.steps.slice(1).map((x) => [x.description, x.outcome])).toEqual([
      ["a → exit 1", "failed"],
      ["Undo: b → exit 2", "failed"],
    ]);
  });

  it("resumes from a persisted snapshot with its deadline", () => {
    const a = started();
    a.send({ type: "executed", atMs: 2000, message: "", steps: [] });
    const restored = createActor(rollbackMachine, { snapshot: a.getPersistedSnapshot() } as never).start();
    expect(restored.getSnapshot().value).toBe("verifying");
    restored.send({ type: "deadline", atMs: 7000 });
    expect(restored.getSnapshot().value).toBe("failed");
  });
});
