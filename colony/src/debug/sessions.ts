// The colony's live-debugging sessions: finds the agent of a service, starts
// and stops collectors on it through the client pool, keeps each session as a
// persisted actor (ActorHost: snapshot per transition, deadlines re-armed on
// restore), mirrors it into debug_sessions and audits every operation.
import { randomBytes } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { IdentityKey } from "@coral/proto";
import type { UprobeSummary } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import { ActorHost, stateName } from "../store/actor-host.ts";
import type { AgentActors } from "../agents/actors.ts";
import {
  debugSessionMachine,
  detachTimeoutMs,
  finalSessionStates,
  runtimeOf,
  type DebugSessionContext,
  type DebugSessionOptions,
  type DebugSessionState,
  type DebugSummary,
} from "./session-machine.ts";
import type { AgentRow, ColonyStore } from "../store/index.ts";
import { AgentClientPool, type AgentDebugClient } from "./agent-pool.ts";
import { getSession, listSessions, upsertSession, type SessionFilter } from "./sessions-table.ts";
import { viewOf, type DebugSessionView } from "./view.ts";

export const DEBUG_LIMITS = { maxDurationMs: 600_000, defaultDurationMs: 60_000, maxEvents: 1_000_000, maxArgs: 6, maxSampleRate: 1_000_000 } as const;
const attachTimeoutMs = 45_000;
const agentCallTimeoutMs = 20_000;
/** How soon a stop the agent could not take is asked again (within the detach deadline). */
const stopRetryMs = 2_000;
/** How long a stop owed to a returning agent is tried (it may still be resuming its collectors). */
const owedStopWindowMs = 60_000;

export interface DebugSessionsOptions {
  store: ColonyStore;
  agents: AgentActors;
  /** Signs every call to an agent. */
  identity: IdentityKey;
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
  now?: () => number;
}

export interface AttachRequest {
  serviceName: string;
  functionName: string;
  durationMs?: number;
  captureArgs?: number;
  captureReturn?: boolean;
  sampleRate?: number;
  maxEvents?: number;
  slowThresholdMs?: number;
  /** "function" (default), "logpoint" or "snapshot" (Node services; functionName is then file:line). */
  kind?: string;
  expression?: string;
  condition?: string;
  snapshotCount?: number;
}

/** Snapshots a session takes at most. */
export const MAX_SNAPSHOTS = 50;
const maxExpressionChars = 2000;

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

function intIn(name: string, v: number, min: number, max: number): number {
  if (!Number.isSafeInteger(v) || v < min) throw invalid(`${name}: must be an integer of at least ${min} (got ${v})`);
  if (v > max) throw new ConnectError(`${name}: at most ${max} (got ${v})`, Code.ResourceExhausted);
  return v;
}

/** Validates an attach at the colony's edge, before any agent is asked. */
export function checkAttach(req: AttachRequest): DebugSessionOptions {
  if (!req.serviceName) throw invalid("service_name: is required (see coral status for the services)");
  if (!req.functionName) throw invalid("function_name: is required (list them with: coral debug functions <service>)");
  const kind = req.kind || "function";
  if (kind !== "function" && kind !== "logpoint" && kind !== "snapshot") throw invalid(`kind: must be function, logpoint or snapshot (got ${JSON.stringify(String(req.kind).slice(0, 40))})`);
  if (req.functionName.length > 1024 || /[\s\0]/.test(req.functionName))
    throw invalid(kind === "function" ? "function_name: must be one symbol name without spaces" : "function_name: must be one file:line without spaces");
  if (kind !== "function") {
    if (!/^.+:[1-9]\d*$/.test(req.functionName)) throw invalid(`function_name: a ${kind} takes file:line, e.g. src/server.ts:42 (got ${JSON.stringify(req.functionName.slice(0, 100))})`);
    if (kind === "logpoint" && !req.expression?.trim()) throw invalid("expression: is required for a logpoint (what to record each time the line runs)");
    if (kind === "snapshot" && req.expression) throw invalid("expression: a snapshot takes none (it captures the arguments and locals)");
    for (const [name, text] of [["expression", req.expression ?? ""], ["condition", req.condition ?? ""]] as const)
      if (text.length > maxExpressionChars) throw invalid(`${name}: at most ${maxExpressionChars} characters (got ${text.length})`);
    if (kind === "logpoint" && req.snapshotCount) throw invalid("snapshot_count: is for snapshots only");
    if (req.captureArgs || req.captureReturn || (req.sampleRate ?? 0) > 1) throw invalid(`capture_args, capture_return and sample_rate are for function sessions, not a ${kind}`);
    const snapshotCount = kind === "snapshot" ? intIn("snapshot_count", req.snapshotCount || 1, 1, MAX_SNAPSHOTS) : 0;
    return {
      durationMs: intIn("duration_ms", req.durationMs || DEBUG_LIMITS.defaultDurationMs, 1, DEBUG_LIMITS.maxDurationMs),
      captureArgs: 0,
      captureReturn: false,
      sampleRate: 1,
      maxEvents: snapshotCount || intIn("max_events", req.maxEvents || 10_000, 1, DEBUG_LIMITS.maxEvents),
      slowThresholdMs: 100,
      kind,
      expression: req.expression ?? "",
      condition: req.condition ?? "",
      snapshotCount,
    };
  }
  if (req.expression || req.condition || req.snapshotCount) throw invalid("expression, condition and snapshot_count are for logpoints and snapshots (kind)");
  return {
    durationMs: intIn("duration_ms", req.durationMs || DEBUG_LIMITS.defaultDurationMs, 1, DEBUG_LIMITS.maxDurationMs),
    captureArgs: intIn("capture_args", req.captureArgs ?? 0, 0, DEBUG_LIMITS.maxArgs),
    captureReturn: req.captureReturn ?? false,
    sampleRate: intIn("sample_rate", req.sampleRate || 1, 1, DEBUG_LIMITS.maxSampleRate),
    maxEvents: intIn("max_events", req.maxEvents || 10_000, 1, DEBUG_LIMITS.maxEvents),
    slowThresholdMs: intIn("slow_threshold_ms", req.slowThresholdMs || 100, 1, 3_600_000),
  };
}

export function summaryFromProto(s: UprobeSummary | undefined): DebugSummary | null {
  if (!s) return null;
  return {
    entries: Number(s.entries),
    calls: Number(s.calls),
    avgNs: Number(s.avgNs),
    p50Ns: Number(s.p50Ns),
    p95Ns: Number(s.p95Ns),
    p99Ns: Number(s.p99Ns),
    maxNs: Number(s.maxNs),
    slowCalls: Number(s.slowCalls),
    slowThresholdNs: Number(s.slowThresholdNs),
    lostEvents: Number(s.lostEvents),
    stopReason: s.stopReason,
    processCount: s.processCount,
    note: s.note,
  };
}

/** Why a collector ended on the agent, when the agent said more than the stop reason; a failure (stop reason "error") is its message alone. */
export function endedOnAgent(s: UprobeSummary | undefined): string | undefined {
  if (!s?.stopDetail) return undefined;
  if (s.stopReason === "error") return s.stopDetail;
  return `collector stopped on the agent (${s.stopReason || "ended"}): ${s.stopDetail}`;
}

/** An agent call's failure, said so the person knows it was the agent. */
export function agentError(err: unknown, agent: { agentId: string; agentUrl: string }): ConnectError {
  const ce = ConnectError.from(err);
  if (ce.code === Code.Unavailable || ce.code === Code.DeadlineExceeded || (ce.code === Code.Unknown && /ECONNREFUSED|fetch failed|socket/i.test(ce.message)))
    return new ConnectError(`agent ${agent.agentId} is unreachable at ${agent.agentUrl}: ${ce.rawMessage}`, Code.Unavailable, ce.metadata);
  return new ConnectError(ce.rawMessage, ce.code, ce.metadata);
}

export class DebugSessions {
  readonly host: ActorHost<typeof debugSessionMachine>;
  readonly pool: AgentClientPool;
  private readonly now: () => number;
  private readonly stopping = new Map<string, Promise<void>>();
  private readonly retries = new Set<NodeJS.Timeout>();
  private readonly owedStops = new Set<string>();
  private readonly stopped = new AbortController();

  constructor(private readonly options: DebugSessionsOptions) {
    this.now = options.now ?? Date.now;
    this.pool = new AgentClientPool(options.identity);
    this.host = new ActorHost({
      kind: "debug_session",
      machine: debugSessionMachine,
      // The debug_sessions row is written with every snapshot, before the caller hears back.
      persistence: {
        loadActorSnapshots: (kind) => options.store.loadActorSnapshots(kind),
        saveActorSnapshot: async (row, transition) => {
          await options.store.saveActorSnapshot(row, transition);
          const snap = JSON.parse(row.snapshot) as { context: DebugSessionContext };
          await options.store.write((c) => upsertSession(c, viewOf(snap.context, row.state as DebugSessionState), row.updatedAt));
        },
      },
      deadlineOf: (s) => (finalSessionStates.includes(stateName(s.value) as DebugSessionState) ? null : s.context.deadlineMs),
      deadlineEvent: (atMs) => ({ type: "deadline", atMs }),
      reasonOf: (s) => s.context.reason,
      onTransition: (id, from, to, s) => {
        const view = viewOf(s.context, to as DebugSessionState);
        options.log.info({ session_id: id, from, to, reason: s.context.reason }, "Debug session state changed");
        if (to === "detaching") setImmediate(() => void this.stopOnAgent(id));
        if (to === "expired" || to === "failed")
          void this.audit("colony", `debug.${to}`, view, { reason: s.context.reason }).catch(() => undefined);
      },
      onError: (id, err) => options.log.warn({ session_id: id, err: String(err) }, "debug session actor error"),
      now: options.now,
    });
  }

  /** Restores persisted sessions and finishes what a restart interrupted. */
  async restore(): Promise<number> {
    const n = await this.host.restore();
    for (const id of this.host.ids()) {
      const state = this.state(id);
      if (state === "requested" || state === "attaching")
        await this.host.send(id, {
          type: "attach_failed",
          atMs: this.now(),
          reason: "the colony restarted while attaching (the agent stops any collector at its own deadline)",
        });
      else if (state === "detaching") void this.stopOnAgent(id);
    }
    return n;
  }

  /**
   * An agent (re)registered: stop the collectors of sessions that ended at
   * their detach deadline while it was away, if their own deadline has not
   * stopped them yet (a restarted agent resumes its collectors).
   */
  agentRegistered(agentId: string): void {
    for (const id of this.host.ids()) {
      const c = this.host.snapshot(id)?.context;
      if (c?.agentId === agentId && c.stopUnconfirmed && (c.expiresAtMs ?? 0) > this.now()) void this.stopOwed(id);
    }
  }

  private async stopOwed(sessionId: string): Promise<void> {
    if (this.owedStops.has(sessionId)) return;
    this.owedStops.add(sessionId);
    const until = this.now() + owedStopWindowMs;
    try {
      for (;;) {
        const s = this.host.snapshot(sessionId);
        if (!s?.context.stopUnconfirmed) return;
        const agent = await this.currentAgent(s.context.agentId, s.context.agentUrl);
        try {
          const res = await this.client(agent).stopUprobeCollector({ collectorId: s.context.collectorId }, { timeoutMs: agentCallTimeoutMs });
          await this.host.send(sessionId, { type: "stop_confirmed", atMs: this.now(), summary: summaryFromProto(res.summary) });
          this.options.log.info({ session_id: sessionId, agent_id: agent.agentId }, "Stopped a collector the agent resumed after its session ended");
          return;
        } catch (err) {
          // not_found: the agent has not resumed its collectors yet (or lost them); ask again for a while.
          if (this.now() > until) {
            this.options.log.warn(
              { session_id: sessionId, err: agentError(err, agent).rawMessage },
              "could not stop a collector owed since its session ended; it stops at its own deadline",
            );
            return;
          }
        }
        await delay(stopRetryMs, undefined, { signal: this.stopped.signal });
      }
    } catch (err) {
      if (!this.stopped.signal.aborted) this.options.log.warn({ session_id: sessionId, err: String(err) }, "owed collector stop failed");
    } finally {
      this.owedStops.delete(sessionId);
    }
  }

  stop(): Promise<void> {
    this.stopped.abort();
    for (const t of this.retries) clearTimeout(t);
    this.retries.clear();
    return this.host.stop();
  }

  private state(id: string): DebugSessionState | undefined {
    const s = this.host.snapshot(id);
    return s ? (stateName(s.value) as DebugSessionState) : undefined;
  }

  view(id: string): DebugSessionView | undefined {
    const s = this.host.snapshot(id);
    return s ? viewOf(s.context, stateName(s.value) as DebugSessionState) : undefined;
  }

  private audit(actor: string, action: string, v: Pick<DebugSessionView, "sessionId" | "serviceName" | "functionName" | "agentId">, details: Record<string, unknown> = {}) {
    return this.options.store.appendAudit({
      at: new Date(this.now()),
      actor,
      action,
      target: v.sessionId,
      details: { service: v.serviceName, function: v.functionName, agent_id: v.agentId, ...details },
    });
  }

  /** The agent that serves a service now: online or degraded, most recently seen. */
  async agentFor(serviceName: string): Promise<AgentRow> {
    const rows = await this.options.store.listAgents();
    const ofService = rows.filter((a) => a.serviceName === serviceName);
    if (ofService.length === 0) {
      const known = [...new Set(rows.map((a) => a.serviceName))].sort();
      throw new ConnectError(
        `unknown service "${serviceName.slice(0, 100)}"` + (known.length ? ` (known: ${known.join(", ")})` : " (no agents have registered yet)"),
        Code.NotFound,
      );
    }
    const live = ofService
      .filter((a) => ["online", "degraded"].includes(this.options.agents.get(a.agentId)?.state ?? ""))
      .sort((a, b) => b.lastSeen.getTime() - a.lastSeen.getTime());
    const agent = live[0];
    if (!agent) throw new ConnectError(`the agent of ${serviceName} is offline; start it with: coral connect ${serviceName} --port <port>`, Code.Unavailable);
    if (!agent.agentUrl) throw new ConnectError(`the agent of ${serviceName} (${agent.agentId}) serves no debug sessions (too old?)`, Code.FailedPrecondition);
    return agent;
  }

  client(agent: { agentId: string; agentUrl: string }): AgentDebugClient {
    return this.pool.get(agent.agentId, agent.agentUrl);
  }

  /**
   * Where a session's agent answers now: a restarted agent registers again,
   * maybe on another port, and resumes its collectors itself (its DuckDB is
   * their one source of truth), so the colony never re-sends an attach; it
   * only follows the agent to its current address.
   */
  private async currentAgent(agentId: string, attachedUrl: string): Promise<{ agentId: string; agentUrl: string }> {
    const row = await this.options.store.getAgent(agentId).catch(() => null);
    return { agentId, agentUrl: row?.agentUrl || attachedUrl };
  }

  async attach(req: AttachRequest, by: string): Promise<DebugSessionView> {
    const options = checkAttach(req);
    const agent = await this.agentFor(req.serviceName);
    const sessionId = `dbg-${randomBytes(5).toString("hex")}`;
    const input = {
      sessionId,
      serviceName: req.serviceName,
      functionName: req.functionName,
      agentId: agent.agentId,
      agentUrl: agent.agentUrl,
      requestedBy: by,
      options,
      createdAtMs: this.now(),
    };
    await this.audit(by, "debug.attach", input, { options });
    await this.host.send(sessionId, { type: "attach", atMs: this.now(), timeoutMs: attachTimeoutMs }, input);
    try {
      const res = await this.client(agent).startUprobeCollector(
        {
          functionName: req.functionName,
          ...options,
          kind: options.kind ?? "function",
          expression: options.expression ?? "",
          condition: options.condition ?? "",
          snapshotCount: options.snapshotCount ?? 0,
          label: sessionId,
        },
        { timeoutMs: agentCallTimeoutMs },
      );
      const expiresAtMs = res.expiresAt ? timestampMs(res.expiresAt) : this.now() + options.durationMs;
      await this.host.send(sessionId, { type: "attached", atMs: this.now(), collectorId: res.collectorId, pid: res.pid, isGo: res.isGo, runtime: runtimeOf(res.returnProbe, res.isGo), expiresAtMs });
    } catch (err) {
      const ce = agentError(err, agent);
      await this.host.send(sessionId, { type: "attach_failed", atMs: this.now(), reason: ce.rawMessage });
      throw ce;
    }
    return this.view(sessionId)!;
  }

  async detach(sessionId: string, by: string): Promise<DebugSessionView> {
    const before = this.requireView(sessionId);
    await this.audit(by, "debug.detach", before, { state: before.state });
    if (before.state === "active") await this.host.send(sessionId, { type: "detach", atMs: this.now(), reason: `detached by ${by}`, timeoutMs: detachTimeoutMs });
    if (this.state(sessionId) === "detaching") await this.stopOnAgent(sessionId);
    return this.view(sessionId)!;
  }

  /** Stops the collector on the agent (once per session at a time) and records the summary. */
  private stopOnAgent(sessionId: string): Promise<void> {
    let p = this.stopping.get(sessionId);
    if (p) return p;
    p = (async () => {
      const s = this.host.snapshot(sessionId);
      if (!s || stateName(s.value) !== "detaching") return;
      const agent = await this.currentAgent(s.context.agentId, s.context.agentUrl);
      const { collectorId } = s.context;
      try {
        const res = await this.client(agent).stopUprobeCollector({ collectorId }, { timeoutMs: agentCallTimeoutMs });
        const detail = endedOnAgent(res.summary);
        await this.host.send(sessionId, { type: "detached", atMs: this.now(), summary: summaryFromProto(res.summary), ...(detail ? { reason: detail } : {}) });
      } catch (err) {
        const ce = agentError(err, agent);
        this.options.log.warn({ session_id: sessionId, err: ce.rawMessage }, "could not stop the collector; the session ends at its detach deadline");
        // The agent does not know the collector (its database was lost, or it
        // was pruned after it ended): nothing left to stop. A restarted agent
        // keeps its collectors and resumes or ends them itself.
        if (ce.code === Code.NotFound)
          await this.host.send(sessionId, { type: "detached", atMs: this.now(), summary: null, reason: `the agent no longer had the collector: ${ce.rawMessage}` });
        // The agent is away (restarting?): ask again until the detach deadline.
        else if (ce.code === Code.Unavailable) this.retryStop(sessionId);
      }
    })().finally(() => this.stopping.delete(sessionId));
    this.stopping.set(sessionId, p);
    return p;
  }

  private retryStop(sessionId: string): void {
    const timer = setTimeout(() => {
      this.retries.delete(timer);
      void this.stopOnAgent(sessionId);
    }, stopRetryMs);
    this.retries.add(timer);
  }

  requireView(sessionId: string): DebugSessionView {
    const v = sessionId ? this.view(sessionId) : undefined;
    if (!v) throw new ConnectError(`no debug session "${sessionId.slice(0, 80)}"; list them with: coral debug sessions`, Code.NotFound);
    return v;
  }

  async list(filter: SessionFilter): Promise<DebugSessionView[]> {
    return this.options.store.read((c) => listSessions(c, filter));
  }

  async stored(sessionId: string): Promise<DebugSessionView | null> {
    return this.options.store.read((c) => getSession(c, sessionId));
  }

  /** A page of a session's events from its agent. */
  async events(sessionId: string, q: { afterSeq: bigint; since?: Date; until?: Date; limit: number }) {
    const v = this.requireView(sessionId);
    if (!v.collectorId) throw new ConnectError(`session ${sessionId} has no collector (${v.state}: ${v.reason})`, Code.FailedPrecondition);
    const s = this.host.snapshot(sessionId)!;
    const agent = await this.currentAgent(v.agentId, s.context.agentUrl);
    try {
      const res = await this.client(agent).queryUprobeEvents(
        {
          collectorId: v.collectorId,
          afterSeq: q.afterSeq,
          since: q.since ? { seconds: BigInt(Math.floor(q.since.getTime() / 1000)), nanos: (q.since.getTime() % 1000) * 1e6 } : undefined,
          until: q.until ? { seconds: BigInt(Math.floor(q.until.getTime() / 1000)), nanos: (q.until.getTime() % 1000) * 1e6 } : undefined,
          limit: q.limit,
        },
        { timeoutMs: agentCallTimeoutMs },
      );
      // The collector ended on the agent (max events, bpftrace exit, not
      // resumed after a restart): end the session too, before answering, so
      // the answer already says why.
      if (!res.running && this.state(sessionId) === "active")
        await this.host
          .send(sessionId, {
            type: "detach",
            atMs: this.now(),
            reason: endedOnAgent(res.summary) ?? `collector stopped on the agent (${res.summary?.stopReason || "ended"})`,
            timeoutMs: detachTimeoutMs,
          })
          .catch(() => undefined);
      return res;
    } catch (err) {
      throw agentError(err, agent);
    }
  }

  auditRead(by: string, action: string, v: Pick<DebugSessionView, "sessionId" | "serviceName" | "functionName" | "agentId">, details?: Record<string, unknown>) {
    return this.audit(by, action, v, details);
  }
}
