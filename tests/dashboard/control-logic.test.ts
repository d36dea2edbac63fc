// The flags and rollbacks view's logic without a browser: the CLI's checks
// on what a form holds, and how flags, rollbacks and outcomes are written.
import { RollbackStrategy } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import {
  confirmationText,
  currentRollback,
  dryRunLines,
  flagChange,
  flagOutcome,
  flagState,
  groupFlags,
  isRollbackOver,
  parseRollout,
  rollbackRequest,
  rollbackSeconds,
  rollbackStateText,
  rollbackVersions,
  stepMark,
} from "@coral/dashboard/logic";
import { describe, expect, it } from "vitest";

const ts = (seconds: number, nanos = 0) => ({ seconds: BigInt(seconds), nanos });
const flag = (service: string, name: string, enabled = true, rolloutPercentage = 100, userIds: string[] = []) => ({ service, name, enabled, rolloutPercentage, userIds });
const rollback = (over: Partial<Parameters<typeof dryRunLines>[0]> = {}) => ({
  rollbackId: "rb-1",
  service: "api",
  state: "executing",
  fromVersion: "2.0.0",
  targetVersion: "1.9.0",
  strategy: "systemd",
  recordRevision: "",
  plan: ["systemctl stop api@2.0.0.service", "systemctl start api@1.9.0.service"],
  undoPlan: ["systemctl stop api@1.9.0.service", "systemctl start api@2.0.0.service"],
  ...over,
});

describe("flag changes", () => {
  it.each([
    ["0", 0],
    ["25", 25],
    ["25%", 25],
    [" 100 ", 100],
    ["007", 7],
  ])("takes the rollout %j as %d, like coral flags --rollout", (text, value) => {
    expect(parseRollout(text)).toEqual({ value });
  });

  it.each(["", "101", "150", "-1", "2.5", "1000", "ten", "25 %", "%"])("refuses the rollout %j", (text) => {
    expect(parseRollout(text)).toEqual({ error: "rollout: must be a percentage from 0 to 100, e.g. 25" });
  });

  it("builds the SetFlag request, leaving unset what does not change", () => {
    expect(flagChange({ service: "api", name: "new-checkout", enabled: false })).toEqual({ request: { service: "api", name: "new-checkout", enabled: false } });
    expect(flagChange({ service: "api", name: "new-checkout", rollout: "40%" })).toEqual({ request: { service: "api", name: "new-checkout", rolloutPercentage: 40 } });
    expect(flagChange({ service: "web", name: "dark.mode_v2", enabled: true, rollout: "100" })).toEqual({
      request: { service: "web", name: "dark.mode_v2", enabled: true, rolloutPercentage: 100 },
    });
  });

  it("refuses what the colony would refuse, before sending it", () => {
    expect(flagChange({ service: "api", name: "new-checkout", rollout: "150" })).toEqual({ error: "rollout: must be a percentage from 0 to 100, e.g. 25" });
    expect(flagChange({ service: "api", name: "new-checkout" })).toEqual({ error: "nothing to change: turn the flag on or off, or set its rollout" });
    expect(flagChange({ service: "API", name: "x", enabled: true })).toEqual({ error: 'component: "API" is not a component name, e.g. api' });
    expect(flagChange({ service: "", name: "x", enabled: true })).toEqual({ error: 'component: "" is not a component name, e.g. api' });
    expect(flagChange({ service: "api", name: "-x", enabled: true })).toEqual({
      error: 'flag: "-x" must be 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit',
    });
    expect(flagChange({ service: "api", name: "a".repeat(129), enabled: true })).toHaveProperty("error");
    expect(flagChange({ service: "api", name: "a".repeat(128), enabled: true })).toHaveProperty("request");
  });

  it("groups flags by component, both sorted, filtered by one component", () => {
    const flags = [flag("web", "b"), flag("api", "z"), flag("web", "a"), flag("api", "m")];
    expect(groupFlags(flags).map((g) => [g.service, g.flags.map((f) => f.name)])).toEqual([
      ["api", ["m", "z"]],
      ["web", ["a", "b"]],
    ]);
    expect(groupFlags(flags, "web").map((g) => [g.service, g.flags.map((f) => f.name)])).toEqual([["web", ["a", "b"]]]);
    expect(groupFlags(flags, "store")).toEqual([]);
  });

  it("says what a flag does and where a change went", () => {
    expect(flagState(flag("api", "x", true, 25, ["alice", "bob"]))).toBe("on for 25% of users, always on for 2 users");
    expect(flagState(flag("api", "x", false, 25, ["alice"]))).toBe("off, always on for 1 user");
    expect(flagState(flag("api", "x", true, 100))).toBe("on for 100% of users");
    expect(flagOutcome({ agentsNotified: 1, unreachable: [] })).toEqual(["Sent to 1 agent"]);
    expect(flagOutcome({ agentsNotified: 0, unreachable: [] })).toEqual(["Sent to 0 agents (agents get it when they connect)"]);
    expect(flagOutcome({ agentsNotified: 2, unreachable: ["api-3: connection refused"] })).toEqual(["Sent to 2 agents", "not reached now (will resync): api-3: connection refused"]);
  });
});

describe("rollbacks", () => {
  it("builds the StartRollback request: empty target is the previous version, a dry run unless unchecked", () => {
    expect(rollbackRequest({ service: "api", target: "", strategy: "auto", dryRun: true })).toEqual({
      request: { service: "api", targetVersion: "", strategy: RollbackStrategy.AUTO, dryRun: true },
    });
    expect(rollbackRequest({ service: "api", target: " 1.9.0 ", strategy: "systemd", dryRun: false })).toEqual({
      request: { service: "api", targetVersion: "1.9.0", strategy: RollbackStrategy.SYSTEMD, dryRun: false },
    });
    expect(rollbackRequest({ service: "api", target: "v1", strategy: "kubernetes", dryRun: true })).toMatchObject({ request: { strategy: RollbackStrategy.KUBERNETES } });
    expect(rollbackRequest({ service: "api", target: "v1", strategy: "sdk", dryRun: true })).toMatchObject({ request: { strategy: RollbackStrategy.SDK } });
  });

  it.each([
    [{ service: "", target: "", strategy: "auto" }, "component: choose the component to roll back"],
    [{ service: "Api", target: "", strategy: "auto" }, 'component: "Api" is not a component name, e.g. api'],
    [{ service: "api", target: "1.9 .0", strategy: "auto" }, "target version: must be a version like 1.4.0 (no spaces or slashes), or empty for the previous one"],
    [{ service: "api", target: "release/1.9", strategy: "auto" }, "target version: must be a version like 1.4.0 (no spaces or slashes), or empty for the previous one"],
    [{ service: "api", target: "1".repeat(129), strategy: "auto" }, "target version: must be a version like 1.4.0 (no spaces or slashes), or empty for the previous one"],
    [{ service: "api", target: "", strategy: "helm" }, "strategy: must be one of auto, sdk, systemd, kubernetes"],
  ])("refuses %j", (form, error) => {
    expect(rollbackRequest({ ...form, dryRun: true })).toEqual({ error });
  });

  it("asks before a real rollback in words that name what changes", () => {
    expect(confirmationText({ service: "api", targetVersion: "1.9.0", strategy: RollbackStrategy.SYSTEMD, dryRun: false }, "2.0.0")).toBe(
      "Roll api back from 2.0.0 to 1.9.0 with the systemd strategy? This changes the running app.",
    );
    expect(confirmationText({ service: "api", targetVersion: "", strategy: RollbackStrategy.AUTO, dryRun: false }, "")).toBe(
      "Roll api back from its current version to the version it ran before with the auto strategy? This changes the running app.",
    );
  });

  it("writes versions, states, steps and durations as the CLI does", () => {
    expect(rollbackVersions({ fromVersion: "2.0.0", targetVersion: "1.9.0" })).toBe("2.0.0 → 1.9.0");
    expect(rollbackVersions({ fromVersion: "", targetVersion: "" })).toBe("? → previous");
    expect(rollbackStateText("completed")).toEqual({ text: "✓ completed", tone: "good" });
    expect(rollbackStateText("failed")).toEqual({ text: "✗ failed", tone: "bad" });
    expect(rollbackStateText("rolled_back")).toEqual({ text: "↺ rolled back", tone: "warn" });
    expect(rollbackStateText("verifying")).toEqual({ text: "verifying", tone: "warn" });
    expect(rollbackStateText("planned")).toEqual({ text: "planned (dry run)", tone: "idle" });
    expect([stepMark("done"), stepMark("failed"), stepMark("")]).toEqual(["✓", "✗", "…"]);
    expect(["pending", "executing", "verifying", "completed", "failed", "rolled_back"].map(isRollbackOver)).toEqual([false, false, false, true, true, true]);
    expect(rollbackSeconds({ startedAt: ts(1000), completedAt: ts(1004, 600_000_000) })).toBe(5);
    expect(rollbackSeconds({ startedAt: ts(1000) }, 1_090_000)).toBe(90);
    expect(rollbackSeconds({}, 1_090_000)).toBeUndefined();
  });

  it("lays out a dry run like coral rollback --dry-run", () => {
    expect(dryRunLines(rollback({ state: "planned" }))).toEqual({
      headline: "Dry run: roll api back from 2.0.0 to 1.9.0 with the systemd strategy",
      first: undefined,
      plan: ["systemctl stop api@2.0.0.service", "systemctl start api@1.9.0.service"],
      undo: ["systemctl stop api@1.9.0.service", "systemctl start api@2.0.0.service"],
      then: "then: wait until api reports version 1.9.0 and healthy",
    });
    const k8s = dryRunLines(rollback({ strategy: "kubernetes", targetVersion: "", recordRevision: "kubectl get deployment/api", plan: ["kubectl rollout undo deployment/api"], undoPlan: [] }));
    expect(k8s).toMatchObject({
      headline: "Dry run: roll api back from 2.0.0 to the previous revision with the kubernetes strategy",
      first: "kubectl get deployment/api (records the live revision for an undo)",
      then: "then: wait until api reports healthy",
    });
    expect(dryRunLines(rollback({ strategy: "sdk", plan: [], undoPlan: [] })).plan).toEqual(["the app's rollback handler runs (coral.init onRollback)"]);
  });

  it("shows the watch stream's view while a rollback runs, the history's once it ended", () => {
    const listed = { state: "executing", n: 1 };
    const watched = { state: "verifying", n: 2 };
    expect(currentRollback(listed, watched)).toBe(watched);
    expect(currentRollback(listed, undefined)).toBe(listed);
    const ended = { state: "failed", n: 3 };
    expect(currentRollback(ended, watched)).toBe(ended);
  });
});
