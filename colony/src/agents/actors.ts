// The colony's agent actors: one persistent agentMachine per agent id.
import { ActorHost, stateName, type ActorPersistence } from "../store/actor-host.ts";
import { agentMachine, type AgentContext, type AgentEvent, type AgentState } from "./machine.ts";

export interface AgentView extends AgentContext {
  state: AgentState;
}

export interface AgentActorsOptions {
  persistence: ActorPersistence;
  offlineAfterMs: number;
  expireAfterMs: number;
  onTransition?: (agentId: string, from: string, to: string, reason: string) => void;
  onError?: (agentId: string, err: unknown) => void;
  now?: () => number;
}

export class AgentActors {
  readonly host: ActorHost<typeof agentMachine>;

  constructor(private readonly options: AgentActorsOptions) {
    this.host = new ActorHost({
      kind: "agent",
      machine: agentMachine,
      persistence: options.persistence,
      deadlineOf: (s) => (s.value === "expired" || s.value === "registering" ? null : s.context.deadlineMs),
      deadlineEvent: (atMs) => ({ type: "deadline", atMs }),
      reasonOf: (s) => s.context.reason,
      onTransition: (id, from, to, s) => options.onTransition?.(id, from, to, s.context.reason),
      onError: options.onError,
      now: options.now,
    });
  }

  restore(): Promise<number> {
    return this.host.restore();
  }

  async send(agentId: string, event: AgentEvent, serviceName?: string): Promise<AgentView> {
    const input =
      serviceName === undefined
        ? undefined
        : { agentId, serviceName, offlineAfterMs: this.options.offlineAfterMs, expireAfterMs: this.options.expireAfterMs };
    const snapshot = await this.host.send(agentId, event, input);
    return { ...snapshot.context, state: stateName(snapshot.value) as AgentState };
  }

  get(agentId: string): AgentView | undefined {
    const snapshot = this.host.snapshot(agentId);
    return snapshot && { ...snapshot.context, state: stateName(snapshot.value) as AgentState };
  }

  list(): AgentView[] {
    return this.host.ids().flatMap((id) => {
      const view = this.get(id);
      return view ? [view] : [];
    });
  }

  stop(): Promise<void> {
    return this.host.stop();
  }
}
