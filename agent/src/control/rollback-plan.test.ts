import { Code, ConnectError } from "@connectrpc/connect";
import { RollbackStrategy } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { describe, expect, it } from "vitest";
import { rollbackConfigProblems, type AgentRollbackConfig } from "./rollback-config.ts";
import { planRollback, type RollbackIntent } from "./rollback-plan.ts";

const intent: RollbackIntent = { service: "api", targetVersion: "1.9.0", currentVersion: "2.0.0", strategy: RollbackStrategy.AUTO, timeoutSeconds: 300, targetRevision: "" };
const both: AgentRollbackConfig = { systemd: { unit: "api@{version}.service" }, kubernetes: { deployment: "api", namespace: "shop", context: "kind-dev" } };
const plan = (change: Partial<RollbackIntent>, config: AgentRollbackConfig = both, hasSdkHandler = false) =>
  planRollback({ ...intent, ...change }, { service: "api", config, hasSdkHandler });

function refusal(fn: () => unknown): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    const ce = ConnectError.from(err);
    return { code: Code[ce.code], message: ce.rawMessage };
  }
  throw new Error("expected a refusal");
}

describe("planRollback builds the commands from the agent's configuration only", () => {
  it("systemd with a {version} unit: stop the current, start the target; undo the reverse and check it", () => {
    expect(plan({ strategy: RollbackStrategy.SYSTEMD })).toEqual({
      strategy: RollbackStrategy.SYSTEMD,
      tool: "systemctl",
      recordRevision: [],
      commands: [["systemctl", "stop", "api@2.0.0.service"], ["systemctl", "start", "api@1.9.0.service"]],
      undo: [["systemctl", "stop", "api@1.9.0.service"], ["systemctl", "start", "api@2.0.0.service"], ["systemctl", "is-active", "api@2.0.0.service"]],
    });
  });

  it("systemd with a plain unit sets CORAL_ROLLBACK_VERSION and restarts", () => {
    expect(plan({ strategy: RollbackStrategy.SYSTEMD, currentVersion: "" }, { systemd: { unit: "api.service" } }).commands).toEqual([
      ["systemctl", "set-environment", "CORAL_ROLLBACK_VERSION=1.9.0"],
      ["systemctl", "restart", "api.service"],
    ]);
  });

  it("kubernetes: records the revision, undoes to the colony's revision, waits 45% of the budget; the context is the agent's", () => {
    const p = plan({ strategy: RollbackStrategy.KUBERNETES, targetRevision: "7" });
    const target = ["deployment/api", "--namespace=shop", "--context=kind-dev"];
    expect(p.recordRevision).toEqual(["kubectl", "get", ...target, "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"]);
    expect(p.commands).toEqual([
      ["kubectl", "rollout", "undo", ...target, "--to-revision=7"],
      ["kubectl", "rollout", "status", ...target, "--timeout=135s"],
    ]);
    expect(p.undo[0]).toEqual(["kubectl", "rollout", "undo", ...target, "--to-revision={revision}"]);
  });

  it.each([
    ["the app's handler", true, both, RollbackStrategy.SDK],
    ["systemd before kubernetes", false, both, RollbackStrategy.SYSTEMD],
    ["kubernetes when that is all", false, { kubernetes: both.kubernetes }, RollbackStrategy.KUBERNETES],
  ])("auto picks %s", (_, handler, config, strategy) => {
    expect(plan({}, config, handler).strategy).toBe(strategy);
  });

  it.each([
    ["another service", { service: "payments" }, "InvalidArgument", "this agent observes api, not \"payments\""],
    ["an option as version", { targetVersion: "--host=evil" }, "InvalidArgument", "target_version: \"--host=evil\" is not a version"],
    ["a version with a space", { currentVersion: "2.0 --now" }, "InvalidArgument", "current_version"],
    ["a revision that is not a number", { strategy: RollbackStrategy.KUBERNETES, targetRevision: "7 --server=x" }, "InvalidArgument", "target_revision"],
    ["a version a unit name cannot hold", { strategy: RollbackStrategy.SYSTEMD, targetVersion: "1.9+build" }, "InvalidArgument", "cannot be part of the unit name"],
    ["systemd without a target", { strategy: RollbackStrategy.SYSTEMD, targetVersion: "" }, "FailedPrecondition", "pass --to VERSION"],
    ["sdk without a handler", { strategy: RollbackStrategy.SDK }, "FailedPrecondition", "reports no Coral SDK with onRollback"],
    ["an unknown strategy", { strategy: 99 as RollbackStrategy }, "InvalidArgument", "strategy: unknown value 99"],
  ])("refuses %s", (_, change, code, message) => {
    expect(refusal(() => plan(change))).toEqual({ code, message: expect.stringContaining(message) });
  });

  it("a strategy the agent was not started for is refused, saying how to start it", () => {
    expect(refusal(() => plan({ strategy: RollbackStrategy.KUBERNETES }, { systemd: { unit: "api.service" } }))).toEqual({
      code: "FailedPrecondition",
      message: "this agent is not configured for the kubernetes strategy (start it with coral connect api … --rollback-k8s-deployment NAME [--rollback-k8s-namespace NS] [--rollback-k8s-context CTX])",
    });
    expect(refusal(() => plan({}, {}))).toMatchObject({ code: "FailedPrecondition", message: expect.stringContaining("no rollback strategy for api") });
  });
});

describe("rollbackConfigProblems", () => {
  it.each<[AgentRollbackConfig, string]>([
    [{ systemd: { unit: "--root=/tmp" } }, "--rollback-systemd-unit"],
    [{ systemd: { unit: "api service" } }, "--rollback-systemd-unit"],
    [{ systemd: { unit: "api@{version}{version}.service" } }, "--rollback-systemd-unit"],
    [{ kubernetes: { deployment: "API", namespace: "shop" } }, "--rollback-k8s-deployment"],
    [{ kubernetes: { deployment: "api", namespace: "a.b" } }, "--rollback-k8s-namespace"],
    [{ kubernetes: { deployment: "api", namespace: "shop", context: "-x" } }, "--rollback-k8s-context"],
  ])("refuses %j", (config, flag) => {
    expect(rollbackConfigProblems(config)).toEqual([expect.stringContaining(flag)]);
  });

  it("accepts real names", () => {
    expect(rollbackConfigProblems({ systemd: { unit: "api@{version}.service" }, kubernetes: { deployment: "api.v2", namespace: "shop", context: "arn:aws:eks:eu-west-1:1:cluster/prod" } })).toEqual([]);
  });
});
