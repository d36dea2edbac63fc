// The standing invitation for orchestrated sidecars (compose, Kubernetes):
// CORAL_ENROLL_SECRET, shared with the agents through the orchestrator's
// secret store, lets any number of agents enroll, each with its own key.
// CORAL_COLONY_SECRET is read as its old name. A weak value is refused.
import { weakSecretProblem } from "./weak-secret.ts";

export class WeakSecretError extends Error {
  override name = "WeakSecretError";
}

export function standingEnrollSecret(log: { warn(obj: object, msg?: string): void }, env: NodeJS.ProcessEnv = process.env): string | null {
  const current = env.CORAL_ENROLL_SECRET?.trim();
  const legacy = env.CORAL_COLONY_SECRET?.trim();
  const name = current ? "CORAL_ENROLL_SECRET" : "CORAL_COLONY_SECRET";
  const value = current || legacy;
  if (!value) return null;
  if (!current) log.warn({}, "CORAL_COLONY_SECRET is the old name of CORAL_ENROLL_SECRET; rename it (it now only lets agents enroll, each with its own key)");
  const problem = weakSecretProblem(value.toLowerCase());
  if (problem) throw new WeakSecretError(`${name} ${problem}`);
  return value.toLowerCase();
}
