// One rollback, as an XState v5 machine:
//
//   pending → executing → verifying → completed
//                 │            └────→ failed (verify deadline)
//                 ├──────────────────→ failed (strategy failed and its undo too, or deadline)
//                 └──────────────────→ rolled_back (a step failed and was undone)
//
// Deadlines live in context as absolute times (the actor host re-arms them
// after a colony restart), so every rollback ends. The coordinator does the
// I/O and reports back with events; the chart only decides.
import { assign, setup } from "xstate";

export type RollbackState = "pending" | "executing" | "verifying" | "completed" | "failed" | "rolled_back";
export const terminalStates: ReadonlySet<string> = new Set(["completed", "failed", "rolled_back"]);

export interface RollbackStepRecord {
  atMs: number;
  description: string;
  /** "done", "failed" or "" while it runs. */
  outcome: string;
}

export interface RollbackContext {
  rollbackId: string;
  service: string;
  fromVersion: string;
  targetVersion: string;
  strategy: "sdk" | "systemd" | "kubernetes";
  /**
   * What the agent said it would run, one line per command (display only:
   * the agent plans and runs its own). Snapshots from before agents planned
   * hold argv lists.
   */
  plan: CommandLines;
  /** What the agent would run if a command of plan fails (absent in snapshots from before undo existed). */
  undo?: CommandLines;
  /** kubernetes: what records the live revision before plan runs, for undo's "{revision}". */
  recordRevision?: string | string[];
  /** kubernetes: the deployment revision of targetVersion, sent with the intent ("" or absent: the previous one). */
  targetRevision?: string;
  initiatedBy: string;
  startedAtMs: number;
  executeTimeoutMs: number;
  verifyTimeoutMs: number;
  deadlineMs: number | null;
  completedAtMs: number | null;
  steps: RollbackStepRecord[];
  /** What verification last saw, for the timeout's reason. */
  lastObservation: string;
  error: string;
  reason: string;
}

export type RollbackInput = Omit<RollbackContext, "deadlineMs" | "completedAtMs" | "steps" | "lastObservation" | "error" | "reason">;

export type RollbackEvent =
  | { type: "execute"; atMs: number }
  | { type: "executed"; atMs: number; message: string; steps: string[] }
  | {
      type: "executionFailed";
      atMs: number;
      error: string;
      /** What it undid put back what ran before (checked). */
      reverted: boolean;
      /** What ran, the failed step last; then what the undo ran, and why the undo failed if it did. */
      steps?: string[];
      undoSteps?: string[];
      undoError?: string;
    }
  | { type: "observed"; atMs: number; observation: string }
  | { type: "verified"; atMs: number; observation: string }
  | { type: "deadline"; atMs: number };

/** Command lines, or argv lists in snapshots from before agents planned. */
export type CommandLines = ReadonlyArray<string | readonly string[]>;

export const commandLine = (c: string | readonly string[] | undefined): string => (typeof c === "string" ? c : (c ?? []).join(" "));
export const commandLines = (list: CommandLines | undefined): string[] => (list ?? []).map(commandLine);

const step = (atMs: number, description: string, outcome = ""): RollbackStepRecord => ({ atMs, description, outcome });

/** Marks the running step (the last one without outcome) with an outcome. */
function finishLast(steps: RollbackStepRecord[], outcome: string): RollbackStepRecord[] {
  const i = steps.findLastIndex((s) => s.outcome === "");
  return i < 0 ? steps : steps.map((s, j) => (j === i ? { ...s, outcome } : s));
}

/** Step records for the agent's lines; when `failedLast`, the last one is the step that failed. */
function ranSteps(atMs: number, lines: string[], failedLast: boolean, prefix = ""): RollbackStepRecord[] {
  return lines.map((l, i) => step(atMs, `${prefix}${l}`, failedLast && i === lines.length - 1 ? "failed" : "done"));
}

/** The failure as a person can act on it: what failed, and where that left the service. */
function failureReason(context: RollbackContext, error: string, reverted: boolean, undoError: string): string {
  const before = context.fromVersion || "what it ran before";
  if (reverted) {
    const how = context.strategy === "sdk" ? "the app's rollback handler undid its changes" : "the undo was checked";
    return `undone, ${context.service} is back on ${before} (${how}): ${error}; fix that, then roll back again`;
  }
  if (undoError)
    return `${error}; the undo failed too: ${undoError}; ${context.service} may be left between ${before} and ${context.targetVersion || "the previous revision"}: check it by hand`;
  return error;
}

export const rollbackMachine = setup({
  types: { context: {} as RollbackContext, events: {} as RollbackEvent, input: {} as RollbackInput },
  actions: {
    startExecuting: assign(({ context, event }) => ({
      deadlineMs: event.atMs + context.executeTimeoutMs,
      steps: [
        ...context.steps,
        step(event.atMs, context.strategy === "sdk" ? "Running the app's rollback handler (sdk)" : `Running ${commandLines(context.plan).join(" && ")}`),
      ],
      reason: "rollback started",
    })),
    startVerifying: assign(({ context, event }) => {
      if (event.type !== "executed") return {};
      const detail = event.steps.map((s) => step(event.atMs, s, "done"));
      const target = context.targetVersion ? `version ${context.targetVersion} and ` : "";
      return {
        deadlineMs: event.atMs + context.verifyTimeoutMs,
        steps: [...finishLast(context.steps, "done"), ...detail, step(event.atMs, `Waiting for ${context.service} to report ${target}healthy`)],
        reason: event.message || "strategy finished",
      };
    }),
    recordFailure: assign(({ context, event }) => {
      if (event.type !== "executionFailed") return {};
      const { atMs, reverted } = event;
      const undoError = reverted ? "" : (event.undoError ?? "");
      const error = failureReason(context, event.error, reverted, undoError);
      const steps = [
        ...finishLast(context.steps, "failed"),
        ...ranSteps(atMs, event.steps ?? [], true),
        ...ranSteps(atMs, event.undoSteps ?? [], !reverted, "Undo: "),
      ];
      return { deadlineMs: null, completedAtMs: atMs, steps, error, reason: error };
    }),
    recordTimeout: assign(({ context, event }, params: { phase: "executing" | "verifying" }) => {
      const error =
        params.phase === "verifying"
          ? `timed out after ${Math.round(context.verifyTimeoutMs / 1000)}s waiting for ${context.service}: ${context.lastObservation || "no report from the service"}`
          : `timed out after ${Math.round(context.executeTimeoutMs / 1000)}s running the ${context.strategy} strategy`;
      return { deadlineMs: null, completedAtMs: event.atMs, steps: finishLast(context.steps, "failed"), error, reason: error };
    }),
    recordObservation: assign(({ event }) => (event.type === "observed" ? { lastObservation: event.observation } : {})),
    recordCompletion: assign(({ context, event }) => ({
      deadlineMs: null,
      completedAtMs: event.atMs,
      lastObservation: event.type === "verified" ? event.observation : context.lastObservation,
      steps: finishLast(context.steps, "done"),
      reason: event.type === "verified" ? `verified: ${event.observation}` : "completed",
    })),
  },
  guards: {
    deadlinePassed: ({ context, event }) => context.deadlineMs !== null && event.atMs >= context.deadlineMs,
    reverted: ({ event }) => event.type === "executionFailed" && event.reverted,
  },
}).createMachine({
  id: "rollback",
  context: ({ input }) => ({
    ...input,
    // Even pending ends: if execution never starts, the first deadline fails it.
    deadlineMs: input.startedAtMs + input.executeTimeoutMs,
    completedAtMs: null,
    steps: [],
    lastObservation: "",
    error: "",
    reason: "rollback requested",
  }),
  initial: "pending",
  states: {
    pending: {
      on: {
        execute: { target: "executing", actions: "startExecuting" },
        deadline: { guard: "deadlinePassed", target: "failed", actions: { type: "recordTimeout", params: { phase: "executing" } } },
      },
    },
    executing: {
      on: {
        executed: { target: "verifying", actions: "startVerifying" },
        executionFailed: [
          { guard: "reverted", target: "rolled_back", actions: "recordFailure" },
          { target: "failed", actions: "recordFailure" },
        ],
        deadline: { guard: "deadlinePassed", target: "failed", actions: { type: "recordTimeout", params: { phase: "executing" } } },
      },
    },
    verifying: {
      on: {
        observed: { actions: "recordObservation" },
        verified: { target: "completed", actions: "recordCompletion" },
        deadline: { guard: "deadlinePassed", target: "failed", actions: { type: "recordTimeout", params: { phase: "verifying" } } },
      },
    },
    completed: {},
    failed: {},
    rolled_back: {},
  },
});
