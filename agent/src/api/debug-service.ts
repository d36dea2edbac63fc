// AgentDebugService: the colony starts, stops and reads uprobe collectors on
// this agent. Validation happens here (Connect codes with actionable
// messages); the limits themselves live in debug/program.ts.
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { UprobeSummarySchema, type AgentDebugService, type UprobeSummary } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import { DebugError, listFunctions, type DebugErrorCode, type SessionSummary } from "../debug/index.ts";
import type { UprobeCollectors } from "../debug/collectors.ts";
import { withNodeFunctions } from "../debug/node/session.ts";
import { checkLineRequest } from "../debug/node/line-session.ts";
import { isNodeProcess } from "../profile/inspector.ts";

const codes: Record<DebugErrorCode, Code> = {
  function_not_found: Code.NotFound,
  not_found: Code.NotFound,
  invalid_option: Code.InvalidArgument,
  limit_reached: Code.ResourceExhausted,
  bpftrace_missing: Code.FailedPrecondition,
  no_permission: Code.PermissionDenied,
  process_not_found: Code.FailedPrecondition,
  unsupported: Code.Unimplemented,
  bpftrace_failed: Code.Internal,
};

/** DebugError → ConnectError; the debug code travels in the x-coral-debug-error header. */
export function toConnectError(err: unknown): ConnectError {
  if (err instanceof DebugError) {
    const ce = new ConnectError(err.message, codes[err.code]);
    ce.metadata.set("x-coral-debug-error", err.code);
    if (err.suggestions.length) ce.metadata.set("x-coral-suggestions", err.suggestions.join(","));
    return ce;
  }
  return ConnectError.from(err);
}

export function summaryToProto(s: SessionSummary, stopDetail = ""): UprobeSummary {
  return create(UprobeSummarySchema, {
    functionName: s.function,
    entries: BigInt(s.entries),
    calls: BigInt(s.calls),
    avgNs: BigInt(s.avgNs),
    p50Ns: BigInt(s.p50Ns),
    p95Ns: BigInt(s.p95Ns),
    p99Ns: BigInt(s.p99Ns),
    maxNs: BigInt(s.maxNs),
    slowCalls: BigInt(s.slowCalls),
    slowThresholdNs: BigInt(Math.round(s.slowThresholdNs)),
    lostEvents: BigInt(s.lostEvents),
    stopReason: s.stopReason ?? "",
    stopDetail,
    processCount: s.processCount ?? 0,
    note: s.note ?? "",
  });
}

function checkId(id: string): string {
  if (!id) throw new ConnectError("collector_id: is required", Code.InvalidArgument);
  if (id.length > 200) throw new ConnectError("collector_id: too long", Code.InvalidArgument);
  return id;
}

const guarded =
  <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
  async (...args: A): Promise<R> => {
    try {
      return await fn(...args);
    } catch (err) {
      throw toConnectError(err);
    }
  };

export function agentDebugService(collectors: UprobeCollectors): ServiceImpl<typeof AgentDebugService> {
  return {
    startUprobeCollector: guarded(async (req) => {
      if (!req.functionName) throw new ConnectError("function_name: is required", Code.InvalidArgument);
      if (req.functionName.length > 1024) throw new ConnectError("function_name: too long", Code.InvalidArgument);
      if (req.slowThresholdMs > 3_600_000) throw new ConnectError(`slow_threshold_ms: at most 3600000 (1 h), got ${req.slowThresholdMs}`, Code.InvalidArgument);
      const kind = req.kind || "function";
      if (kind !== "function" && kind !== "logpoint" && kind !== "snapshot") throw new ConnectError(`kind: must be function, logpoint or snapshot, got ${JSON.stringify(req.kind.slice(0, 40))}`, Code.InvalidArgument);
      // Before the process is touched: the kind's own fields, and that the expressions parse.
      if (kind !== "function") checkLineRequest({ kind, location: req.functionName, expression: req.expression, condition: req.condition, snapshotCount: req.snapshotCount });
      else if (req.expression || req.condition || req.snapshotCount) throw new ConnectError("expression, condition and snapshot_count are for logpoints and snapshots", Code.InvalidArgument);
      const c = await collectors.start({
        kind,
        expression: req.expression,
        condition: req.condition,
        snapshotCount: req.snapshotCount,
        functionName: req.functionName,
        durationMs: req.durationMs,
        captureArgs: req.captureArgs,
        captureReturn: req.captureReturn,
        sampleRate: req.sampleRate,
        maxEvents: req.maxEvents,
        slowThresholdMs: req.slowThresholdMs,
        label: req.label.slice(0, 200),
      });
      return {
        collectorId: c.id,
        pid: c.pid,
        startedAt: timestampFromDate(c.startedAt),
        expiresAt: timestampFromDate(c.expiresAt),
        isGo: c.isGo,
        returnProbe: c.returnProbe,
      };
    }),
    stopUprobeCollector: guarded(async (req) => {
      const c = await collectors.stop(checkId(req.collectorId));
      return { summary: summaryToProto(c.summary, c.stopDetail) };
    }),
    queryUprobeEvents: guarded(async (req) => {
      if (req.limit > 10_000) throw new ConnectError("limit: must be at most 10000", Code.InvalidArgument);
      const since = req.since ? timestampDate(req.since) : undefined;
      const until = req.until ? timestampDate(req.until) : undefined;
      if (since && until && since > until) throw new ConnectError("since: must be before until", Code.InvalidArgument);
      const page = await collectors.query({
        collectorId: checkId(req.collectorId),
        afterSeq: Number(req.afterSeq),
        since,
        until,
        limit: req.limit || 1000,
      });
      const last = page.rows[page.rows.length - 1];
      return {
        events: page.rows.map((e) => ({
          seq: BigInt(e.seq),
          timestamp: timestampFromDate(e.timestamp),
          type: e.type,
          pid: e.pid,
          tid: e.tid,
          durationNs: BigInt(e.durationNs ?? 0),
          args: e.args ?? [],
          returnValue: e.returnValue ?? "",
          goroutine: e.goroutine ?? "",
          value: e.value ?? "",
        })),
        hasMore: page.hasMore,
        nextAfterSeq: last ? BigInt(last.seq) : req.afterSeq,
        running: page.collector.running,
        summary: summaryToProto(page.collector.summary, page.collector.stopDetail),
      };
    }),
    listFunctions: guarded(async (req) => {
      if (req.limit > 10_000) throw new ConnectError("limit: must be at most 10000", Code.InvalidArgument);
      const pid = collectors.observedPid();
      const limit = req.limit || 200;
      if (isNodeProcess(pid)) {
        // JavaScript functions of the app's scripts, through the V8 inspector (opened and closed again).
        const needle = req.pattern.toLowerCase();
        const all = await withNodeFunctions(pid, { includeDependencies: req.all, inProcess: collectors.inProcess }, (fns) => fns.filter((f) => !needle || f.label.toLowerCase().includes(needle)));
        return {
          functions: all.slice(0, limit).map((f) => ({ name: f.name, address: 0n, size: 0n, demangled: "", file: f.file, line: f.line, isAsync: f.async })),
          binary: `/proc/${pid}/exe`,
          pid,
          isGo: false,
          total: all.length,
          runtime: "node",
        };
      }
      const list = await listFunctions(pid, { pattern: req.pattern || undefined, demangle: true }).catch((err: unknown) => {
        throw new DebugError("process_not_found", `cannot read the symbols of process ${pid}: ${(err as Error).message}`);
      });
      return {
        functions: list.functions.slice(0, limit).map((f) => ({ name: f.name, address: f.address, size: BigInt(f.size), demangled: f.demangled ?? "" })),
        binary: list.binary,
        pid,
        isGo: list.isGo,
        total: list.functions.length,
      };
    }),
  };
}
