// Turns a rollback intent from the colony (strategy, target, what it knows)
// into the commands this agent runs, from the agent's own configuration.
// The colony's values are checked first; the names come from the config.
//
//   systemd, unit with {version}:  stop <unit@current>, start <unit@target>;
//                                  undo: stop target, start current, is-active current
//   systemd, plain unit:           set-environment CORAL_ROLLBACK_VERSION=<target>, restart;
//                                  undo: the same with current, then is-active
//   kubernetes:                    record the live revision, rollout undo [--to-revision], rollout status;
//                                  undo: rollout undo --to-revision=<recorded>, rollout status
import { Code, ConnectError } from "@connectrpc/connect";
import { RollbackStrategy } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { unitPattern, type AgentRollbackConfig } from "./rollback-config.ts";

export interface RollbackIntent {
  service: string;
  targetVersion: string;
  currentVersion: string;
  strategy: RollbackStrategy;
  timeoutSeconds: number;
  targetRevision: string;
}

export type PlannedStrategy = RollbackStrategy.SDK | RollbackStrategy.SYSTEMD | RollbackStrategy.KUBERNETES;

export interface RollbackPlan {
  strategy: PlannedStrategy;
  /** The only program the plan runs (none for sdk). */
  tool?: "systemctl" | "kubectl";
  commands: string[][];
  /** Run if a command fails; "{revision}" is the revision recordRevision printed (checked to be digits). */
  undo: string[][];
  /** kubernetes: prints the live revision before the first command. */
  recordRevision: string[];
}

export const revisionPlaceholder = "{revision}";
const versionPattern = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/;
const revisionPattern = /^[1-9][0-9]{0,9}$/;
export const defaultTimeoutSeconds = 300;
const maxTimeoutSeconds = 24 * 3600;

const invalid = (message: string) => new ConnectError(message, Code.InvalidArgument);
const unmet = (message: string) => new ConnectError(message, Code.FailedPrecondition);

export const strategyWord: Record<PlannedStrategy, string> = {
  [RollbackStrategy.SDK]: "sdk",
  [RollbackStrategy.SYSTEMD]: "systemd",
  [RollbackStrategy.KUBERNETES]: "kubernetes",
};

function checkIntent(intent: RollbackIntent, ownService: string): void {
  if (intent.service !== ownService)
    throw invalid(`service: this agent observes ${ownService}, not "${intent.service.slice(0, 64)}"`);
  for (const [name, value] of [["target_version", intent.targetVersion], ["current_version", intent.currentVersion]] as const)
    if (value && !versionPattern.test(value))
      throw invalid(`${name}: "${value.slice(0, 64)}" is not a version (1-128 letters, digits and "._+-", starting with a letter or digit)`);
  if (intent.targetRevision && !revisionPattern.test(intent.targetRevision))
    throw invalid(`target_revision: "${intent.targetRevision.slice(0, 64)}" is not a deployment revision (a positive number)`);
  if (intent.timeoutSeconds > maxTimeoutSeconds) throw invalid(`timeout_seconds: at most ${maxTimeoutSeconds}`);
}

function flagsFor(service: string, strategy: "systemd" | "kubernetes"): string {
  return strategy === "systemd"
    ? `coral connect ${service} … --rollback-systemd-unit UNIT`
    : `coral connect ${service} … --rollback-k8s-deployment NAME [--rollback-k8s-namespace NS] [--rollback-k8s-context CTX]`;
}

function resolveStrategy(intent: RollbackIntent, config: AgentRollbackConfig, hasSdkHandler: boolean): PlannedStrategy {
  const s = intent.strategy;
  if (s === RollbackStrategy.AUTO || s === RollbackStrategy.UNSPECIFIED) {
    if (hasSdkHandler) return RollbackStrategy.SDK;
    if (config.systemd) return RollbackStrategy.SYSTEMD;
    if (config.kubernetes) return RollbackStrategy.KUBERNETES;
    throw unmet(
      `no rollback strategy for ${intent.service}: the app registered no SDK rollback handler (coral.init onRollback) and its agent was started without --rollback-systemd-unit or --rollback-k8s-deployment`,
    );
  }
  if (s === RollbackStrategy.SDK) {
    if (!hasSdkHandler) throw unmet(`the sdk strategy needs the app's rollback handler: ${intent.service} reports no Coral SDK with onRollback`);
    return s;
  }
  if (s === RollbackStrategy.SYSTEMD || s === RollbackStrategy.KUBERNETES) {
    const word = strategyWord[s] as "systemd" | "kubernetes";
    if (!config[word]) throw unmet(`this agent is not configured for the ${word} strategy (start it with ${flagsFor(intent.service, word)})`);
    return s;
  }
  throw invalid(`strategy: unknown value ${String(s)}`);
}

function systemdPlan(unit: string, intent: RollbackIntent): RollbackPlan {
  const { targetVersion: to, currentVersion: from } = intent;
  if (!to) throw unmet(`the systemd strategy needs the version to go back to: pass --to VERSION`);
  const base = { strategy: RollbackStrategy.SYSTEMD as const, tool: "systemctl" as const, recordRevision: [] as string[] };
  if (unit.includes("{version}")) {
    const named = (version: string) => {
      const name = unit.replaceAll("{version}", version);
      if (!unitPattern.test(name)) throw invalid(`target_version: "${version}" cannot be part of the unit name ${unit} (only letters, digits and ":-_.\\@")`);
      return name;
    };
    const target = named(to);
    if (!from) return { ...base, commands: [["systemctl", "start", target]], undo: [] };
    const current = named(from);
    return {
      ...base,
      commands: [["systemctl", "stop", current], ["systemctl", "start", target]],
      undo: [["systemctl", "stop", target], ["systemctl", "start", current], ["systemctl", "is-active", current]],
    };
  }
  const setVersion = (v: string) => ["systemctl", "set-environment", `CORAL_ROLLBACK_VERSION=${v}`];
  const commands = [setVersion(to), ["systemctl", "restart", unit]];
  if (!from) return { ...base, commands, undo: [] };
  return { ...base, commands, undo: [setVersion(from), ["systemctl", "restart", unit], ["systemctl", "is-active", unit]] };
}

function kubernetesPlan(k: NonNullable<AgentRollbackConfig["kubernetes"]>, intent: RollbackIntent): RollbackPlan {
  const target = [`deployment/${k.deployment}`, `--namespace=${k.namespace}`, ...(k.context ? [`--context=${k.context}`] : [])];
  // Forward and undo each get part of the budget, so an undo after a slow failure still fits.
  const wait = `--timeout=${Math.max(1, Math.floor((intent.timeoutSeconds || defaultTimeoutSeconds) * 0.45))}s`;
  return {
    strategy: RollbackStrategy.KUBERNETES,
    tool: "kubectl",
    recordRevision: ["kubectl", "get", ...target, "-o", "jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}"],
    commands: [
      ["kubectl", "rollout", "undo", ...target, ...(intent.targetRevision ? [`--to-revision=${intent.targetRevision}`] : [])],
      ["kubectl", "rollout", "status", ...target, wait],
    ],
    undo: [
      ["kubectl", "rollout", "undo", ...target, `--to-revision=${revisionPlaceholder}`],
      ["kubectl", "rollout", "status", ...target, wait],
    ],
  };
}

/** The plan for `intent`; throws InvalidArgument for bad values, FailedPrecondition for what this agent cannot do. */
export function planRollback(intent: RollbackIntent, context: { service: string; config: AgentRollbackConfig; hasSdkHandler: boolean }): RollbackPlan {
  checkIntent(intent, context.service);
  const strategy = resolveStrategy(intent, context.config, context.hasSdkHandler);
  if (strategy === RollbackStrategy.SYSTEMD) return systemdPlan(context.config.systemd!.unit, intent);
  if (strategy === RollbackStrategy.KUBERNETES) return kubernetesPlan(context.config.kubernetes!, intent);
  return { strategy, commands: [], undo: [], recordRevision: [] };
}
