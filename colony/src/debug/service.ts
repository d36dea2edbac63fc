// DebugService: live debugging sessions. Handlers validate and translate;
// the work is in debug/sessions.ts. Attach and detach need an admin token
// (auth.ts); every call is audited under the caller's token name.
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { sleep } from "@coral/common/async";
import { UprobeSummarySchema } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import { DebugSessionSchema, type DebugService, type DebugSession } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { debugSessionOutcome } from "@coral/proto";
import { finalSessionStates, type DebugSessionState } from "./session-machine.ts";
import { agentError, type DebugSessions } from "./sessions.ts";
import type { DebugSessionView } from "./view.ts";
import { callerKey } from "../auth/index.ts";

const states: readonly string[] = ["requested", "attaching", "active", "detaching", "completed", "expired", "failed"];
const stateAliases: Readonly<Record<string, string>> = { finished: "expired", stopped: "completed" };
const pollMs = 200;

export function sessionToProto(v: DebugSessionView): DebugSession {
  const t = (ms: number | null) => (ms === null ? undefined : timestampFromMs(ms));
  return create(DebugSessionSchema, {
    sessionId: v.sessionId,
    serviceName: v.serviceName,
    functionName: v.functionName,
    agentId: v.agentId,
    collectorId: v.collectorId,
    state: v.state,
    requestedBy: v.requestedBy,
    createdAt: t(v.createdAtMs),
    startedAt: t(v.startedAtMs),
    expiresAt: t(v.expiresAtMs),
    endedAt: t(v.endedAtMs),
    durationMs: v.options.durationMs,
    captureArgs: v.options.captureArgs,
    captureReturn: v.options.captureReturn,
    sampleRate: v.options.sampleRate,
    maxEvents: v.options.maxEvents,
    slowThresholdMs: v.options.slowThresholdMs,
    reason: v.reason,
    pid: v.pid,
    isGo: v.isGo,
    runtime: v.runtime ?? "",
    outcome: debugSessionOutcome(v),
    kind: v.options.kind ?? "function",
    expression: v.options.expression ?? "",
    condition: v.options.condition ?? "",
    snapshotCount: v.options.snapshotCount ?? 0,
    summary: v.summary
      ? create(UprobeSummarySchema, {
          functionName: v.functionName,
          entries: BigInt(v.summary.entries),
          calls: BigInt(v.summary.calls),
          avgNs: BigInt(v.summary.avgNs),
          p50Ns: BigInt(v.summary.p50Ns),
          p95Ns: BigInt(v.summary.p95Ns),
          p99Ns: BigInt(v.summary.p99Ns),
          maxNs: BigInt(v.summary.maxNs),
          slowCalls: BigInt(v.summary.slowCalls),
          slowThresholdNs: BigInt(v.summary.slowThresholdNs),
          lostEvents: BigInt(v.summary.lostEvents),
          stopReason: v.summary.stopReason,
          processCount: v.summary.processCount ?? 0,
          note: v.summary.note ?? "",
        })
      : undefined,
  });
}

const who = (ctx: HandlerContext) => ctx.values.get(callerKey)?.name ?? "unknown";
const isFinal = (v: DebugSessionView) => finalSessionStates.includes(v.state as DebugSessionState);

function limitOf(limit: number, def: number, max: number): number {
  if (limit > max) throw new ConnectError(`limit: must be at most ${max} (got ${limit})`, Code.InvalidArgument);
  return limit || def;
}

export function debugService(debug: DebugSessions): ServiceImpl<typeof DebugService> {
  return {
    async attachUprobe(req, ctx) {
      const v = await debug.attach(
        {
          serviceName: req.serviceName,
          functionName: req.functionName,
          durationMs: req.durationMs,
          captureArgs: req.captureArgs,
          captureReturn: req.captureReturn,
          sampleRate: req.sampleRate,
          maxEvents: req.maxEvents,
          slowThresholdMs: req.slowThresholdMs,
          kind: req.kind,
          expression: req.expression,
          condition: req.condition,
          snapshotCount: req.snapshotCount,
        },
        who(ctx),
      );
      return { session: sessionToProto(v) };
    },

    async detachUprobe(req, ctx) {
      return { session: sessionToProto(await debug.detach(req.sessionId, who(ctx))) };
    },

    async queryUprobeEvents(req, ctx) {
      const v = debug.requireView(req.sessionId);
      const since = req.since ? timestampDate(req.since) : undefined;
      const until = req.until ? timestampDate(req.until) : undefined;
      if (since && until && since > until) throw new ConnectError("since: must be before until", Code.InvalidArgument);
      await debug.auditRead(who(ctx), "debug.events", v);
      const res = await debug.events(req.sessionId, { afterSeq: req.afterSeq, since, until, limit: limitOf(req.limit, 1000, 10_000) });
      return { events: res.events, hasMore: res.hasMore, nextAfterSeq: res.nextAfterSeq, session: sessionToProto(debug.view(req.sessionId)!) };
    },

    async listDebugSessions(req) {
      // The words people read (outcome) name the stored states too: finished = expired, stopped = completed.
      const state = stateAliases[req.state] ?? req.state;
      if (state && !states.includes(state)) throw new ConnectError(`state: must be one of ${[...states, ...Object.keys(stateAliases)].join(", ")}`, Code.InvalidArgument);
      const rows = await debug.list({ state: state || undefined, serviceName: req.serviceName || undefined, limit: limitOf(req.limit, 50, 1000) });
      // The actor is the truth; the table can lag one write behind it.
      return { sessions: rows.map((r) => sessionToProto(debug.view(r.sessionId) ?? r)) };
    },

    async getDebugSession(req) {
      const v = debug.view(req.sessionId) ?? (req.sessionId ? await debug.stored(req.sessionId) : null) ?? debug.requireView(req.sessionId);
      return { session: sessionToProto(v) };
    },

    async *streamUprobeEvents(req, ctx) {
      debug.requireView(req.sessionId);
      let after = req.afterSeq;
      for (;;) {
        if (ctx.signal.aborted) return;
        const res = await debug.events(req.sessionId, { afterSeq: after, limit: 1000 });
        after = res.nextAfterSeq;
        const v = debug.view(req.sessionId)!;
        const done = isFinal(v) && !res.hasMore;
        if (res.events.length > 0 || done) yield { events: res.events, session: sessionToProto(v), done };
        if (done) return;
        if (!res.hasMore) await sleep(pollMs, ctx.signal);
      }
    },

    async listFunctions(req, ctx) {
      if (!req.serviceName) throw new ConnectError("service_name: is required", Code.InvalidArgument);
      const agent = await debug.agentFor(req.serviceName);
      await debug.auditRead(who(ctx), "debug.functions", { sessionId: "", serviceName: req.serviceName, functionName: req.pattern, agentId: agent.agentId });
      try {
        const res = await debug.client(agent).listFunctions({ pattern: req.pattern, limit: limitOf(req.limit, 200, 10_000), all: req.all }, { timeoutMs: 20_000 });
        return { functions: res.functions, agentId: agent.agentId, pid: res.pid, isGo: res.isGo, total: res.total, runtime: res.runtime };
      } catch (err) {
        throw agentError(err, agent);
      }
    },
  };
}
