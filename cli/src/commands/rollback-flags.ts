// coral connect's --rollback-* flags: what the agent may run for a systemd or
// kubernetes rollback. The colony sends only intents (strategy, target); the
// commands come from these names, checked here and again by the agent.
import { rollbackConfigProblems, type AgentRollbackConfig } from "@coral/agent";
import { Option, type Command } from "commander";
import { UsageError } from "./options.ts";

export interface RollbackFlags {
  rollbackSystemdUnit?: string;
  rollbackK8sDeployment?: string;
  rollbackK8sNamespace?: string;
  rollbackK8sContext?: string;
}

export function withRollbackOptions(command: Command): Command {
  return command
    .addOption(
      new Option("--rollback-systemd-unit <unit>", 'systemd rollbacks restart this unit; "{version}" in it is the version, e.g. api@{version}.service').env("CORAL_ROLLBACK_SYSTEMD_UNIT"),
    )
    .addOption(new Option("--rollback-k8s-deployment <name>", "kubernetes rollbacks undo this deployment's rollout").env("CORAL_ROLLBACK_K8S_DEPLOYMENT"))
    .addOption(new Option("--rollback-k8s-namespace <ns>", "the deployment's namespace (default: default)").env("CORAL_ROLLBACK_K8S_NAMESPACE"))
    .addOption(new Option("--rollback-k8s-context <context>", "kubeconfig context for kubectl (default: the current one)").env("CORAL_ROLLBACK_K8S_CONTEXT"));
}

/** The agent's rollback configuration from the flags; a UsageError names the flag that is wrong. */
export function rollbackConfigFrom(flags: RollbackFlags): AgentRollbackConfig | undefined {
  const config: AgentRollbackConfig = {};
  if (flags.rollbackSystemdUnit !== undefined) config.systemd = { unit: flags.rollbackSystemdUnit };
  if (flags.rollbackK8sDeployment !== undefined)
    config.kubernetes = { deployment: flags.rollbackK8sDeployment, namespace: flags.rollbackK8sNamespace ?? "default", context: flags.rollbackK8sContext };
  else if (flags.rollbackK8sNamespace !== undefined || flags.rollbackK8sContext !== undefined)
    throw new UsageError("--rollback-k8s-namespace and --rollback-k8s-context need --rollback-k8s-deployment NAME");
  const problems = rollbackConfigProblems(config);
  if (problems.length) throw new UsageError(problems.join("\n"));
  return config.systemd || config.kubernetes ? config : undefined;
}
