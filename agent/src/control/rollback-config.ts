// What an agent may run for a rollback: its own configuration (coral connect
// --rollback-* flags), never the colony's words. Every name that ends up in a
// command line is checked against a strict pattern here, and every value the
// colony sends (versions, revisions) in rollback-plan.ts, so no argument can
// start with "-" or carry anything but the characters its place allows.

export interface AgentRollbackConfig {
  /** The unit `systemctl` restarts; "{version}" in it is replaced by a version (api@{version}.service). */
  systemd?: { unit: string };
  /** The deployment `kubectl rollout undo` rolls back. */
  kubernetes?: { namespace: string; deployment: string; context?: string };
}

// systemd unit names: letters, digits and ":-_.\@", not starting with "-".
const unitChars = String.raw`[A-Za-z0-9:_.@\\-]`;
export const unitPattern = new RegExp(String.raw`^[A-Za-z0-9_]${unitChars}{0,250}$`);
const unitTemplatePattern = new RegExp(String.raw`^[A-Za-z0-9_]${unitChars}{0,240}(?:\{version\}${unitChars}{0,240})?$`);
/** DNS-1123 label (namespaces). */
export const dnsLabelPattern = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** DNS-1123 subdomain (deployment names). */
export const dnsSubdomainPattern = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
/** kubeconfig context names (e.g. kind-dev, user@cluster, arn:aws:eks:…:cluster/name). */
export const kubeContextPattern = /^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,252}$/;

/** What is wrong with a rollback configuration, one line each (empty: nothing). */
export function rollbackConfigProblems(config: AgentRollbackConfig): string[] {
  const problems: string[] = [];
  if (config.systemd && !unitTemplatePattern.test(config.systemd.unit))
    problems.push(`--rollback-systemd-unit: "${config.systemd.unit.slice(0, 80)}" is not a systemd unit name (letters, digits, ":-_.\\@", optionally one "{version}"), e.g. api.service or api@{version}.service`);
  const k = config.kubernetes;
  if (k) {
    if (!dnsSubdomainPattern.test(k.deployment))
      problems.push(`--rollback-k8s-deployment: "${k.deployment.slice(0, 80)}" is not a Kubernetes name (lowercase letters, digits, "-" and "."), e.g. api`);
    if (!dnsLabelPattern.test(k.namespace))
      problems.push(`--rollback-k8s-namespace: "${k.namespace.slice(0, 80)}" is not a Kubernetes namespace (lowercase letters, digits and "-"), e.g. shop`);
    if (k.context !== undefined && !kubeContextPattern.test(k.context))
      problems.push(`--rollback-k8s-context: "${k.context.slice(0, 80)}" is not a kubeconfig context name (letters, digits and "._@:/-", not starting with "-")`);
  }
  return problems;
}
