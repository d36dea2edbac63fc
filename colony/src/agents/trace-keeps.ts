// Keep decisions across agents: an agent that keeps a trace for an error or
// slow span reports its id (MeshService.ReportKeptTraces); the colony tells
// every other online agent that serves the colony's calls
// (AgentService.KeepTraces), never the one that reported it. Each agent gets
// its own queue, merged across reporters, with one call in flight and at most
// maxKeptTraceIds ids per call; a full queue drops ids and a failed call
// drops its ids, counted, so a slow or gone agent holds up nobody.
import { maxKeptTraceIds } from "@coral/proto";
import { AgentService } from "@coral/proto/gen/coral/agent/v1/agent_pb";
import type { AgentRow } from "../store/types.ts";
import type { ApiDeps } from "../api/deps.ts";
import { agentServiceClient } from "./transport.ts";

export interface TraceKeepStats {
  /** Reports received from agents. */
  reports: number;
  /** Trace ids passed on to agents (one per agent told). */
  told: number;
  calls: number;
  /** Ids of calls that failed (not retried). */
  failed: number;
  /** Ids dropped because an agent's queue was full. */
  dropped: number;
}

interface Target {
  client: ReturnType<typeof agentServiceClient<typeof AgentService>>;
  queue: Set<string>;
}

const toldStates = new Set(["online", "degraded"]);

export class TraceKeepRelay {
  readonly #targets = new Map<string, Target>();
  readonly #stats = { reports: 0, told: 0, calls: 0, failed: 0, dropped: 0 };
  readonly #lastWarned = new Map<string, number>();
  #agents: { at: number; rows: Promise<AgentRow[]> } | undefined;

  constructor(
    private readonly deps: Pick<ApiDeps, "store" | "agents" | "identity" | "log">,
    private readonly options: { maxQueuedPerAgent?: number; callTimeoutMs?: number; now?: () => number } = {},
  ) {}

  stats(): TraceKeepStats {
    return { ...this.#stats };
  }

  /** Queues the ids for every other online agent; returns how many agents will be told. */
  async report(fromAgentId: string, traceIds: readonly string[]): Promise<number> {
    this.#stats.reports++;
    if (traceIds.length === 0) return 0;
    let told = 0;
    for (const agent of await this.#onlineAgents()) {
      if (agent.agentId === fromAgentId || !agent.agentUrl) continue;
      told++;
      this.#enqueue(agent, traceIds);
    }
    return told;
  }

  /** The registered agents (read at most once a second), those online now. */
  async #onlineAgents(): Promise<AgentRow[]> {
    const now = (this.options.now ?? Date.now)();
    if (!this.#agents || now - this.#agents.at > 1000) {
      const rows = this.deps.store.listAgents();
      const read = { at: now, rows };
      this.#agents = read;
      rows.catch(() => {
        if (this.#agents === read) this.#agents = undefined; // read again next time
      });
    }
    return (await this.#agents.rows).filter((a) => toldStates.has(this.deps.agents.get(a.agentId)?.state ?? ""));
  }

  #enqueue(agent: AgentRow, traceIds: readonly string[]): void {
    let target = this.#targets.get(agent.agentId);
    const start = !target;
    target ??= { client: agentServiceClient(AgentService, agent.agentUrl, agent.agentId, this.deps.identity), queue: new Set() };
    const max = this.options.maxQueuedPerAgent ?? 10_000;
    for (const id of traceIds) {
      if (target.queue.size >= max) this.#stats.dropped++;
      else target.queue.add(id);
    }
    if (start) {
      this.#targets.set(agent.agentId, target);
      void this.#drain(agent.agentId, target);
    }
  }

  /** Sends the agent's queue, a batch at a time, until it is empty; then forgets the agent. */
  async #drain(agentId: string, target: Target): Promise<void> {
    while (target.queue.size > 0) {
      const batch: string[] = [];
      for (const id of target.queue) {
        if (batch.length >= maxKeptTraceIds) break;
        batch.push(id);
        target.queue.delete(id);
      }
      this.#stats.calls++;
      try {
        await target.client.keepTraces({ traceIds: batch }, { timeoutMs: this.options.callTimeoutMs ?? 5000 });
        this.#stats.told += batch.length;
      } catch (err) {
        this.#stats.failed += batch.length;
        this.#warn(agentId, err);
      }
    }
    this.#targets.delete(agentId);
  }

  /** At most once a minute per agent. */
  #warn(agentId: string, err: unknown): void {
    const now = (this.options.now ?? Date.now)();
    if (now - (this.#lastWarned.get(agentId) ?? -Infinity) < 60_000) return;
    this.#lastWarned.set(agentId, now);
    if (this.#lastWarned.size > 10_000) this.#lastWarned.delete(this.#lastWarned.keys().next().value!);
    this.deps.log.warn({ agent_id: agentId, err: err instanceof Error ? err.message : String(err) }, "could not tell an agent to keep traces another agent keeps");
  }
}
