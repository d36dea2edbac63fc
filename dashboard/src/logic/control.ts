// The flags and rollbacks view without the DOM: the checks `coral flags` and
// `coral rollback` make on what the user typed (the same limits and words),
// and how the view writes flags, rollbacks and their outcomes.
import { RollbackStrategy } from "@coral/proto/gen/coral/control/v1/rollback_pb";

interface Ts {
  seconds: bigint;
  nanos: number;
}

/** A component name, as the colony takes it (e.g. api, checkout-v2). */
export const componentPattern = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** A flag name: 1-128 letters, digits, ".", "_", "-", starting with a letter or digit. */
export const flagNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A rollout share as `coral flags … --rollout` takes it: 0 to 100, a trailing "%" allowed. */
export function parseRollout(text: string): { value: number } | { error: string } {
  const t = text.trim();
  const n = Number(t.replace(/%$/, ""));
  if (!/^\d{1,3}%?$/.test(t) || n > 100) return { error: "rollout: must be a percentage from 0 to 100, e.g. 25" };
  return { value: n };
}

export interface FlagChangeInput {
  service: string;
  name: string;
  enabled?: boolean;
  /** As typed; undefined keeps the flag's rollout. */
  rollout?: string;
}

export interface FlagChangeRequest {
  service: string;
  name: string;
  enabled?: boolean;
  rolloutPercentage?: number;
}

/** The SetFlag request for a change, or what is wrong with it (checked before anything is sent). */
export function flagChange(input: FlagChangeInput): { request: FlagChangeRequest } | { error: string } {
  if (!componentPattern.test(input.service)) return { error: `component: "${input.service.slice(0, 40)}" is not a component name, e.g. api` };
  if (!flagNamePattern.test(input.name))
    return { error: `flag: "${input.name.slice(0, 40)}" must be 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit` };
  const request: FlagChangeRequest = { service: input.service, name: input.name };
  if (input.enabled !== undefined) request.enabled = input.enabled;
  if (input.rollout !== undefined) {
    const rollout = parseRollout(input.rollout);
    if ("error" in rollout) return rollout;
    request.rolloutPercentage = rollout.value;
  }
  if (request.enabled === undefined && request.rolloutPercentage === undefined) return { error: "nothing to change: turn the flag on or off, or set its rollout" };
  return { request };
}

interface FlagLike {
  service: string;
  name: string;
  enabled: boolean;
  rolloutPercentage: number;
  userIds: string[];
}

/** The flags of one component (or every one when `service` is empty), grouped by component, both sorted. */
export function groupFlags<F extends FlagLike>(flags: F[], service = ""): { service: string; flags: F[] }[] {
  const groups = new Map<string, F[]>();
  for (const f of flags) {
    if (service && f.service !== service) continue;
    groups.set(f.service, [...(groups.get(f.service) ?? []), f]);
  }
  return [...groups.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([s, list]) => ({ service: s, flags: list.sort((a, b) => a.name.localeCompare(b.name)) }));
}

/** "on for 25% of users", "off", plus the users it is always on for, as `coral flags set` says it. */
export function flagState(f: FlagLike): string {
  const state = f.enabled ? `on for ${f.rolloutPercentage}% of users` : "off";
  const users = f.userIds.length ? `, always on for ${f.userIds.length} user${f.userIds.length === 1 ? "" : "s"}` : "";
  return state + users;
}

/** What a SetFlag answer says about delivery: agents reached, and those that were not. */
export function flagOutcome(res: { agentsNotified: number; unreachable: string[] }): string[] {
  const n = res.agentsNotified;
  const lines = [`Sent to ${n} agent${n === 1 ? "" : "s"}${n === 0 ? " (agents get it when they connect)" : ""}`];
  for (const u of res.unreachable) lines.push(`not reached now (will resync): ${u}`);
  return lines;
}

/** The strategies of `coral rollback --strategy`. */
export const rollbackStrategies = [
  { id: "auto", value: RollbackStrategy.AUTO, label: "auto: the app's SDK handler, else what the agent is configured for" },
  { id: "sdk", value: RollbackStrategy.SDK, label: "sdk: the app's rollback handler" },
  { id: "systemd", value: RollbackStrategy.SYSTEMD, label: "systemd: systemctl on the agent's machine" },
  { id: "kubernetes", value: RollbackStrategy.KUBERNETES, label: "kubernetes: kubectl rollout undo" },
] as const;

export interface RollbackForm {
  service: string;
  /** Empty: the version the component ran before. */
  target: string;
  strategy: string;
  dryRun: boolean;
}

export interface RollbackRequest {
  service: string;
  targetVersion: string;
  strategy: RollbackStrategy;
  dryRun: boolean;
}

/** The StartRollback request for the form, or what is wrong with it. */
export function rollbackRequest(form: RollbackForm): { request: RollbackRequest } | { error: string } {
  if (!form.service) return { error: "component: choose the component to roll back" };
  if (!componentPattern.test(form.service)) return { error: `component: "${form.service.slice(0, 40)}" is not a component name, e.g. api` };
  const target = form.target.trim();
  if (target && !/^[^\s/]{1,128}$/.test(target)) return { error: "target version: must be a version like 1.4.0 (no spaces or slashes), or empty for the previous one" };
  const strategy = rollbackStrategies.find((s) => s.id === form.strategy);
  if (!strategy) return { error: `strategy: must be one of ${rollbackStrategies.map((s) => s.id).join(", ")}` };
  return { request: { service: form.service, targetVersion: target, strategy: strategy.value, dryRun: form.dryRun } };
}

/** What the confirmation step asks before a real rollback. */
export function confirmationText(req: RollbackRequest, currentVersion: string): string {
  const strategy = rollbackStrategies.find((s) => s.value === req.strategy)?.id ?? "auto";
  return `Roll ${req.service} back from ${currentVersion || "its current version"} to ${req.targetVersion || "the version it ran before"} with the ${strategy} strategy? This changes the running app.`;
}

interface RollbackLike {
  rollbackId: string;
  service: string;
  state: string;
  fromVersion: string;
  targetVersion: string;
  strategy: string;
  startedAt?: Ts;
  completedAt?: Ts;
  recordRevision: string;
  plan: string[];
  undoPlan: string[];
}

const terminal = new Set(["completed", "failed", "rolled_back"]);

export function isRollbackOver(state: string): boolean {
  return terminal.has(state);
}

/** "2.0.0 → 1.9.0", with "?" and "previous" for what is not known. */
export function rollbackVersions(r: Pick<RollbackLike, "fromVersion" | "targetVersion">): string {
  return `${r.fromVersion || "?"} → ${r.targetVersion || "previous"}`;
}

/** The state as `coral rollback status` writes it, and its colour. */
export function rollbackStateText(state: string): { text: string; tone: "good" | "warn" | "bad" | "idle" } {
  if (state === "completed") return { text: "✓ completed", tone: "good" };
  if (state === "failed") return { text: "✗ failed", tone: "bad" };
  if (state === "rolled_back") return { text: "↺ rolled back", tone: "warn" };
  if (state === "planned") return { text: "planned (dry run)", tone: "idle" };
  return { text: state, tone: "warn" };
}

/** ✓ done, ✗ failed, … in progress. */
export function stepMark(outcome: string): string {
  return outcome === "done" ? "✓" : outcome === "failed" ? "✗" : "…";
}

const ms = (t: Ts) => Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);

/** Seconds from start to end (to `now` while it runs); undefined without a start. */
export function rollbackSeconds(r: Pick<RollbackLike, "startedAt" | "completedAt">, now: number = Date.now()): number | undefined {
  if (!r.startedAt) return undefined;
  return Math.max(0, Math.round(((r.completedAt ? ms(r.completedAt) : now) - ms(r.startedAt)) / 1000));
}

/** A dry run's answer as lines, like `coral rollback --dry-run` prints them. */
export function dryRunLines(r: RollbackLike): { headline: string; first?: string; plan: string[]; undo: string[]; then: string } {
  return {
    headline: `Dry run: roll ${r.service} back from ${r.fromVersion || "?"} to ${r.targetVersion || "the previous revision"} with the ${r.strategy} strategy`,
    first: r.recordRevision ? `${r.recordRevision} (records the live revision for an undo)` : undefined,
    plan: r.strategy === "sdk" && r.plan.length === 0 ? ["the app's rollback handler runs (coral.init onRollback)"] : r.plan,
    undo: r.undoPlan,
    then: `then: wait until ${r.service} reports ${r.targetVersion ? `version ${r.targetVersion} and ` : ""}healthy`,
  };
}

/**
 * Which of two views of one rollback to show: the history's once it ended,
 * else the latest the watch stream sent (it is ahead of the list while it runs).
 */
export function currentRollback<R extends Pick<RollbackLike, "state">>(listed: R, watched: R | undefined): R {
  if (isRollbackOver(listed.state) || !watched) return listed;
  return watched;
}
