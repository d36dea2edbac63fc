// One live-debugging session, as the colony believes it, as an XState v5 machine.
//
//   requested → attaching → active → detaching → completed | expired | failed
//
// The calls to the agent happen outside the machine (the session host reacts
// to transitions), so a restored snapshot never resumes a half-made call.
// Deadlines are absolute times in context; the actor host arms a timer for
// them, also after a restore:
//   attaching: the attach must have answered by then (else failed);
//   active:    the session's expiry (then detaching, ending as expired);
//   detaching: the agent must have confirmed the stop by then (else the
//              session ends anyway: the agent stops the collector at its own
//              deadline).
// A collector the agent ended in error (a logpoint whose expression was
// refused on its first hit: side effects, or it throws) ends the session
// failed, with the agent's reason, however the detach began.
import { and, assign, setup } from "xstate";

export type DebugSessionState = "requested" | "attaching" | "active" | "detaching" | "completed" | "expired" | "failed";
export const finalSessionStates: readonly DebugSessionState[] = ["completed", "expired", "failed"];

export interface DebugSessionOptions {
  durationMs: number;
  captureArgs: number;
  captureReturn: boolean;
  sampleRate: number;
  maxEvents: number;
  slowThresholdMs: number;
  /** "function" when absent (snapshots from before logpoints); logpoint and snapshot: functionName is file:line. */
  kind?: DebugSessionKind;
  /** Logpoints: the expression recorded. */
  expression?: string;
  /** Only the hits where this holds. */
  condition?: string;
  /** Snapshots: how many. */
  snapshotCount?: number;
}

export type DebugSessionKind = "function" | "logpoint" | "snapshot";

export interface DebugSummary {
  entries: number;
  calls: number;
  avgNs: number;
  p50Ns: number;
  p95Ns: number;
  p99Ns: number;
  maxNs: number;
  slowCalls: number;
  slowThresholdNs: number;
  lostEvents: number;
  stopReason: string;
  /** Processes the agent probed (absent in snapshots from before issue 18). */
  processCount?: number;
  /** Where calls may be happening when none were seen. */
  note?: string;
}

export type DebugRuntime = "node" | "go" | "native";

/** The runtime of a collector, from how the agent sees its calls end (StartUprobeCollectorResponse.return_probe). */
export function runtimeOf(returnProbe: string, isGo: boolean): DebugRuntime {
  return returnProbe.startsWith("v8-") ? "node" : isGo ? "go" : "native";
}

export interface DebugSessionContext {
  sessionId: string;
  serviceName: string;
  functionName: string;
  agentId: string;
  agentUrl: string;
  requestedBy: string;
  options: DebugSessionOptions;
  createdAtMs: number;
  collectorId: string;
  pid: number;
  isGo: boolean;
  /**
   * What runs the traced code, as the agent said when it attached: "node"
   * (a Node process's JavaScript), "go", or "native" (C, C++, Rust). Absent
   * before that, and in snapshots from before this field.
   */
  runtime?: DebugRuntime;
  startedAtMs: number | null;
  expiresAtMs: number | null;
  endedAtMs: number | null;
  deadlineMs: number | null;
  /** How a session in detaching ends. */
  endAs: "completed" | "expired";
  summary: DebugSummary | null;
  reason: string;
  /**
   * The session ended at its detach deadline without the agent confirming the
   * stop (it was away): the colony stops the collector when the agent is back.
   * Absent in snapshots from before this field.
   */
  stopUnconfirmed?: boolean;
}

export type DebugSessionEvent =
  | { type: "attach"; atMs: number; timeoutMs: number }
  | { type: "attached"; atMs: number; collectorId: string; pid: number; isGo: boolean; runtime?: DebugRuntime; expiresAtMs: number }
  | { type: "attach_failed"; atMs: number; reason: string }
  | { type: "detach"; atMs: number; reason: string; timeoutMs: number }
  | { type: "detached"; atMs: number; summary: DebugSummary | null; reason?: string }
  | { type: "deadline"; atMs: number }
  /** A stop owed since the detach deadline reached the agent after all. */
  | { type: "stop_confirmed"; atMs: number; summary: DebugSummary | null };

const unconfirmedStop = "the agent did not confirm the stop (it stops the collector at its own deadline)";

export type DebugSessionInput = Pick<
  DebugSessionContext,
  "sessionId" | "serviceName" | "functionName" | "agentId" | "agentUrl" | "requestedBy" | "options" | "createdAtMs"
>;

/** Time the agent has to confirm a stop before the colony ends the session anyway. */
export const detachTimeoutMs = 30_000;

export const debugSessionMachine = setup({
  types: {
    context: {} as DebugSessionContext,
    events: {} as DebugSessionEvent,
    input: {} as DebugSessionInput,
  },
  actions: {
    startAttach: assign(({ event }) =>
      event.type === "attach" ? { deadlineMs: event.atMs + event.timeoutMs, reason: "starting the collector on the agent" } : {},
    ),
    recordAttached: assign(({ event }) =>
      event.type === "attached"
        ? {
            collectorId: event.collectorId,
            pid: event.pid,
            isGo: event.isGo,
            ...(event.runtime ? { runtime: event.runtime } : {}),
            startedAtMs: event.atMs,
            expiresAtMs: event.expiresAtMs,
            deadlineMs: event.expiresAtMs,
            reason: `collector ${event.collectorId} running on pid ${event.pid}`,
          }
        : {},
    ),
    recordFailure: assign(({ event }) => ({
      deadlineMs: null,
      endedAtMs: event.atMs,
      reason: event.type === "attach_failed" ? event.reason : "the agent did not answer the attach in time",
    })),
    startDetach: assign(({ event }) =>
      event.type === "detach"
        ? { deadlineMs: event.atMs + event.timeoutMs, endAs: "completed" as const, reason: event.reason }
        : { deadlineMs: event.atMs + detachTimeoutMs, endAs: "expired" as const, reason: "session expired" },
    ),
    recordDetached: assign(({ context, event }) => ({
      deadlineMs: null,
      endedAtMs: event.atMs,
      summary: event.type === "detached" ? event.summary : context.summary,
      reason: event.type === "detached" ? (event.reason ?? context.reason) : `${context.reason}; ${unconfirmedStop}`,
      stopUnconfirmed: event.type !== "detached",
    })),
    recordLateStop: assign(({ context, event }) => ({
      stopUnconfirmed: false,
      summary: (event.type === "stop_confirmed" ? event.summary : null) ?? context.summary,
      reason: `${context.reason.replace(`; ${unconfirmedStop}`, "")}; stopped on the agent when it came back`,
    })),
  },
  guards: {
    deadlinePassed: ({ context, event }) => context.deadlineMs !== null && event.atMs >= context.deadlineMs,
    endsExpired: ({ context }) => context.endAs === "expired",
    stopOwed: ({ context }) => context.stopUnconfirmed === true,
    failedOnAgent: ({ event }) => event.type === "detached" && event.summary?.stopReason === "error",
  },
}).createMachine({
  id: "debugSession",
  context: ({ input }) => ({
    ...input,
    collectorId: "",
    pid: 0,
    isGo: false,
    startedAtMs: null,
    expiresAtMs: null,
    endedAtMs: null,
    deadlineMs: null,
    endAs: "completed",
    summary: null,
    reason: "session requested",
  }),
  initial: "requested",
  states: {
    requested: {
      on: {
        attach: { target: "attaching", actions: "startAttach" },
        attach_failed: { target: "failed", actions: "recordFailure" },
      },
    },
    attaching: {
      on: {
        attached: { target: "active", actions: "recordAttached" },
        attach_failed: { target: "failed", actions: "recordFailure" },
        deadline: { guard: "deadlinePassed", target: "failed", actions: "recordFailure" },
      },
    },
    active: {
      on: {
        detach: { target: "detaching", actions: "startDetach" },
        deadline: { guard: "deadlinePassed", target: "detaching", actions: "startDetach" },
      },
    },
    detaching: {
      on: {
        detached: [
          { guard: "failedOnAgent", target: "failed", actions: "recordDetached" },
          { guard: "endsExpired", target: "expired", actions: "recordDetached" },
          { target: "completed", actions: "recordDetached" },
        ],
        deadline: [
          { guard: and(["deadlinePassed", "endsExpired"]), target: "expired", actions: "recordDetached" },
          { guard: "deadlinePassed", target: "completed", actions: "recordDetached" },
        ],
      },
    },
    completed: { on: { stop_confirmed: { guard: "stopOwed", actions: "recordLateStop" } } },
    expired: { on: { stop_confirmed: { guard: "stopOwed", actions: "recordLateStop" } } },
    failed: {},
  },
});
