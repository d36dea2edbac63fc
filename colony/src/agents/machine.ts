// The colony's belief about one agent, as an XState v5 machine.
//
//   registering → online ⇄ degraded → offline → expired
//
// Timers are not XState `after` delays (they do not survive a snapshot);
// deadlines live in context as absolute times and the actor host arms a timer
// for the earliest one, also after a restore. A `deadline` event carries the
// time it fired at, so guards decide from stored context alone.
import { assign, setup } from "xstate";

export type AgentHealth = "healthy" | "degraded" | "unhealthy" | "unknown";

export interface AgentContext {
  agentId: string;
  serviceName: string;
  /** sha256 hex of the agent's bearer token. */
  tokenHash: string;
  offlineAfterMs: number;
  expireAfterMs: number;
  lastSeenMs: number;
  /** Heartbeat deadline while online or degraded; expiry deadline while offline. */
  deadlineMs: number | null;
  health: AgentHealth;
  /** Why the last transition happened, for the transitions table. */
  reason: string;
}

export type AgentEvent =
  | { type: "register"; atMs: number; tokenHash: string; serviceName: string }
  | { type: "heartbeat"; atMs: number; health: AgentHealth }
  | { type: "deadline"; atMs: number }
  | { type: "deregister"; atMs: number; reason: string };

export interface AgentInput {
  agentId: string;
  serviceName: string;
  offlineAfterMs: number;
  expireAfterMs: number;
}

const isHealthy = (health: AgentHealth) => health === "healthy" || health === "unknown";

// A heartbeat lands in online or degraded by the health it reports.
const heartbeatTransitions = [
  { guard: "reportsHealthy", target: "online", actions: "recordHeartbeat" },
  { target: "degraded", actions: "recordHeartbeat" },
] as const;

const connectedTransitions = {
  heartbeat: heartbeatTransitions,
  deadline: { guard: "deadlinePassed", target: "offline", actions: "markMissedHeartbeat" },
  deregister: { target: "offline", actions: "markDeregistered" },
} as const;

export const agentMachine = setup({
  types: {
    context: {} as AgentContext,
    events: {} as AgentEvent,
    input: {} as AgentInput,
  },
  actions: {
    recordRegistration: assign(({ context, event }) => {
      if (event.type !== "register") return {};
      return {
        tokenHash: event.tokenHash,
        serviceName: event.serviceName,
        lastSeenMs: event.atMs,
        deadlineMs: event.atMs + context.offlineAfterMs,
        health: "unknown" as AgentHealth,
        reason: "agent registered",
      };
    }),
    recordHeartbeat: assign(({ context, event }) => {
      if (event.type !== "heartbeat") return {};
      const changed = event.health !== context.health;
      return {
        lastSeenMs: event.atMs,
        deadlineMs: event.atMs + context.offlineAfterMs,
        health: event.health,
        reason: changed ? `heartbeat reported ${event.health}` : "heartbeat",
      };
    }),
    markMissedHeartbeat: assign(({ context, event }) => ({
      deadlineMs: event.atMs + context.expireAfterMs,
      reason: `no heartbeat for ${Math.round((event.atMs - context.lastSeenMs) / 1000)}s`,
    })),
    markDeregistered: assign(({ context, event }) => ({
      deadlineMs: event.atMs + context.expireAfterMs,
      reason: event.type === "deregister" ? `agent deregistered: ${event.reason || "stopping"}` : context.reason,
    })),
    markExpired: assign(({ context }) => ({
      deadlineMs: null,
      reason: `offline for ${Math.round(context.expireAfterMs / 1000)}s`,
    })),
  },
  guards: {
    deadlinePassed: ({ context, event }) => context.deadlineMs !== null && event.atMs >= context.deadlineMs,
    reportsHealthy: ({ event }) => event.type === "heartbeat" && isHealthy(event.health),
  },
}).createMachine({
  id: "agent",
  context: ({ input }) => ({
    agentId: input.agentId,
    serviceName: input.serviceName,
    tokenHash: "",
    offlineAfterMs: input.offlineAfterMs,
    expireAfterMs: input.expireAfterMs,
    lastSeenMs: 0,
    deadlineMs: null,
    health: "unknown",
    reason: "agent created",
  }),
  initial: "registering",
  on: {
    register: { target: ".online", actions: "recordRegistration", reenter: true },
  },
  states: {
    registering: {},
    // Online and degraded differ only in what the last heartbeat said.
    online: { on: connectedTransitions },
    degraded: { on: connectedTransitions },
    offline: {
      on: {
        heartbeat: heartbeatTransitions,
        deadline: { guard: "deadlinePassed", target: "expired", actions: "markExpired" },
      },
    },
    expired: {},
  },
});

export type AgentState = "registering" | "online" | "degraded" | "offline" | "expired";
