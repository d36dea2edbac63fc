// The agent's uprobe collectors: one session each (bpftrace for C, C++ and
// Rust; RET-instruction uprobes for Go; V8 inspector breakpoints for the
// JavaScript functions of a Node process, see node/session.ts), against the process set the agent
// observes (the listener and its descendants, never a pid from the caller), with events flushed to the local
// store in small batches. Each session stops at its own deadline (the
// session's timer and the tracer's own), whether or not anyone calls stop();
// ended collectors stay queryable for a while.
//
// The agent's local store is the one source of truth for its collectors: each
// request is stored when it starts and its end when it ends, so a restarted
// agent resumes every collector whose deadline has not passed (same id, seq
// continuing after the last stored event) or says why it could not. Closing
// the agent stops the sessions without ending the collectors.
import { randomBytes } from "node:crypto";
import { hasRegisterAbi } from "./go-buildinfo.ts";
import { processSet } from "../observe/process-tree.ts";
import type { AgentStore, CollectorKind, UprobeCollectorRecord, UprobeEventRow, UprobeHistory } from "../storage/index.ts";
import { listFunctions, type FunctionList } from "./elf.ts";
import { GoRetSession } from "./go-ret.ts";
import { NodeFunctionSession } from "./node/session.ts";
import { NodeLineSession } from "./node/line-session.ts";
import { isNodeProcess, type InProcessInspector } from "../profile/inspector.ts";
import type { SessionRequest } from "./probe-session.ts";
import { DebugError, generateProgram, LIMITS } from "./program.ts";
import { hasBpfPermission, SessionLimiter, summarizeCalls, UprobeSession, type SessionSummary, type StopReason, type UprobeEvent } from "./session.ts";

/** What a collector needs of a session: bpftrace (C, C++, Rust), RET-instruction uprobes (Go) or V8 breakpoints (Node functions, logpoints, snapshots). */
type CollectorSession = UprobeSession | GoRetSession | NodeFunctionSession | NodeLineSession;

/** Why a session ended, in words, when it says (a logpoint whose expression was refused). */
const stopDetailOf = (s: CollectorSession | undefined) => (s instanceof NodeLineSession ? s.stopDetail : undefined);

/** The binary stored for a Node collector: the function's script, marked. */
const v8Binary = (script: string) => `v8:${script}`;

export interface CollectorRequest extends SessionRequest {
  label?: string;
  /** "function" (default); "logpoint" and "snapshot" (Node processes only): functionName is then file:line. */
  kind?: CollectorKind;
  /** Logpoints: the expression recorded each time the line runs. */
  expression?: string;
  /** Logpoints and snapshots: only the hits where this holds. */
  condition?: string;
  /** Snapshots: how many (1..50, default 1). */
  snapshotCount?: number;
}

export interface CollectorInfo {
  id: string;
  label: string;
  functionName: string;
  kind: CollectorKind;
  expression: string;
  condition: string;
  snapshotCount: number;
  pid: number;
  startedAt: Date;
  expiresAt: Date;
  isGo: boolean;
  /** v8-rewrite / v8-breakpoints: a Node process's JavaScript function, rewritten in place or seen by breakpoints (node/session.ts). */
  returnProbe: "uretprobe" | "ret-instructions" | "v8-rewrite" | "v8-breakpoints" | "none";
  running: boolean;
  /** Over every run of the collector (before and after an agent restart). */
  summary: SessionSummary;
  /** Why it ended, in words, when the stop reason alone does not say it. */
  stopDetail: string;
}

type CollectorStore = Pick<
  AgentStore,
  "recordUprobeEvents" | "queryUprobeEvents" | "saveUprobeCollector" | "endUprobeCollector" | "listUprobeCollectors" | "uprobeHistory"
>;

export interface UprobeCollectorsOptions {
  store: CollectorStore;
  /** The pid of the process this agent observes, or null while there is none. */
  observedPid: () => number | null;
  maxSessions?: number;
  bpftracePath?: string;
  /** How long an ended collector stays listed (default 1 h). */
  keepEndedMs?: number;
  /** The app's Coral SDK (the agent's SdkLink): Node sessions open the inspector through it, without SIGUSR1, when the process runs it. */
  inProcess?: InProcessInspector;
  onError?: (collectorId: string, err: unknown) => void;
}

/** What resume() did with the collectors a previous run of the agent left. */
export interface ResumeReport {
  resumed: string[];
  /** Not resumed, with the reason stored for each. */
  ended: { id: string; stopReason: StopReason; detail: string }[];
}

const flushDelayMs = 100;

class Collector {
  private seq: number;
  private pending: UprobeEventRow[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  endedAt: number | undefined;

  /**
   * `before`: what earlier runs stored (a resumed or ended collector), so
   * sequence numbers continue and the summary covers every run. `end`: how
   * a collector without a session ended.
   */
  constructor(
    readonly record: UprobeCollectorRecord,
    readonly session: CollectorSession | undefined,
    private readonly before: UprobeHistory,
    private readonly options: UprobeCollectorsOptions,
    private readonly end?: { stopReason: StopReason; detail: string; at: number },
  ) {
    this.seq = before.lastSeq;
    if (!session) {
      this.endedAt = end?.at ?? Date.now();
      return;
    }
    session.on("event", (ev: UprobeEvent) => this.add(ev));
    session.on("end", () => {
      this.endedAt = Date.now();
      void this.flush();
    });
    // Events printed before the listener was attached (between ready and now).
    for (const ev of session.events) this.add(ev);
  }

  private add(ev: UprobeEvent): void {
    this.pending.push({
      seq: ++this.seq,
      timestamp: new Date(ev.timeMs),
      type: ev.type,
      pid: ev.pid,
      tid: ev.tid,
      durationNs: ev.durationNs,
      args: ev.args,
      returnValue: ev.ret,
      goroutine: ev.goroutine,
      value: ev.value,
    });
    this.timer ??= setTimeout(() => void this.flush(), flushDelayMs);
  }

  /** Writes what is pending; resolves once everything added so far is stored. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const rows = this.pending;
    this.pending = [];
    if (rows.length > 0)
      this.flushing = this.flushing.then(() =>
        this.options.store.recordUprobeEvents(this.record.collectorId, rows).then(
          () => undefined,
          (err: unknown) => this.options.onError?.(this.record.collectorId, err),
        ),
      );
    return this.flushing;
  }

  get stopReason(): StopReason | undefined {
    return this.end?.stopReason ?? this.session?.stopReason;
  }

  view(): CollectorInfo {
    const r = this.record;
    const current = this.session?.summary();
    const now = this.session?.events ?? [];
    const durations = [...this.before.durationsNs, ...now.flatMap((e) => (e.type === "return" && e.durationNs !== undefined ? [e.durationNs] : []))];
    // Entries, or a logpoint's or snapshot's records.
    const entries = this.before.entries + now.filter((e) => e.type !== "return").length;
    const summary = summarizeCalls(entries, durations, {
      function: current?.function ?? r.functionName,
      slowThresholdNs: current?.slowThresholdNs ?? r.slowThresholdMs * 1e6,
      lostEvents: current?.lostEvents ?? 0,
      stopReason: this.stopReason,
    });
    if (current?.processCount !== undefined) summary.processCount = current.processCount;
    if (current?.note && summary.entries === 0) summary.note = current.note;
    return {
      id: r.collectorId,
      label: r.label,
      functionName: r.functionName,
      kind: r.kind ?? "function",
      expression: r.expression ?? "",
      condition: r.condition ?? "",
      snapshotCount: r.snapshotCount ?? 0,
      pid: r.pid,
      startedAt: r.startedAt,
      expiresAt: r.expiresAt,
      isGo: r.isGo,
      returnProbe: r.binary.startsWith("v8:") ? (this.session instanceof NodeFunctionSession && this.session.method === "instrumented" ? "v8-rewrite" : "v8-breakpoints") : r.isGo ? "ret-instructions" : "uretprobe",
      running: this.session?.running ?? false,
      summary,
      stopDetail: this.end?.detail ?? stopDetailOf(this.session) ?? r.stopDetail ?? "",
    };
  }
}

export class UprobeCollectors {
  private readonly collectors = new Map<string, Collector>();
  readonly limiter: SessionLimiter;
  private closed = false;

  constructor(private readonly options: UprobeCollectorsOptions) {
    this.limiter = new SessionLimiter(options.maxSessions ?? LIMITS.defaultMaxSessions);
  }

  /** How Node processes are reached in-process (the app's Coral SDK), for listing their functions too. */
  get inProcess(): InProcessInspector | undefined {
    return this.options.inProcess;
  }

  /** The pid under observation, or a clear error. */
  observedPid(): number {
    const pid = this.options.observedPid();
    if (!pid) throw new DebugError("process_not_found", "this agent observes no process yet (nothing listens on its port)");
    return pid;
  }

  async start(req: CollectorRequest): Promise<CollectorInfo> {
    if (this.closed) throw new DebugError("process_not_found", "the agent is stopping");
    this.prune();
    const pid = this.observedPid();
    const id = `uprobe-${randomBytes(8).toString("hex")}`;
    const { session, binary } = await this.startSession(pid, req, id);
    const startedAt = new Date();
    const record: UprobeCollectorRecord = {
      collectorId: id,
      label: req.label ?? "",
      functionName: req.functionName,
      durationMs: session.program.durationMs,
      captureArgs: session.program.argCount,
      captureReturn: req.captureReturn ?? false,
      sampleRate: session.program.sampleRate,
      maxEvents: session.program.maxEvents,
      slowThresholdMs: req.slowThresholdMs || 100,
      startedAt,
      expiresAt: new Date(startedAt.getTime() + session.program.durationMs),
      binary,
      isGo: session.program.isGo,
      pid,
      endedAt: null,
      stopReason: null,
      stopDetail: null,
      kind: req.kind ?? "function",
      expression: req.expression ?? "",
      condition: req.condition ?? "",
      snapshotCount: session instanceof NodeLineSession ? session.snapshotCount : 0,
    };
    try {
      await this.options.store.saveUprobeCollector(record);
    } catch (err) {
      await session.stop();
      throw new DebugError("bpftrace_failed", `cannot store the collector in the agent's database: ${(err as Error).message}`);
    }
    return this.track(record, session, { lastSeq: 0, count: 0, entries: 0, durationsNs: [] }).view();
  }

  /**
   * Picks up the collectors a previous run of this agent left: each one whose
   * deadline has not passed is re-attached to the process observed now, with
   * its id, the time and events it has left, and its seq continuing; the
   * others are ended with the reason. Ended ones stay listed (keepEndedMs).
   */
  async resume(now = new Date()): Promise<ResumeReport> {
    const report: ResumeReport = { resumed: [], ended: [] };
    const rows = await this.options.store.listUprobeCollectors(new Date(now.getTime() - (this.options.keepEndedMs ?? 3_600_000)));
    for (const row of rows) {
      if (this.closed) break;
      if (this.collectors.has(row.collectorId)) continue;
      const before = await this.options.store.uprobeHistory(row.collectorId);
      if (row.endedAt) {
        const end = { stopReason: (row.stopReason ?? "stopped") as StopReason, detail: row.stopDetail ?? "", at: row.endedAt.getTime() };
        this.collectors.set(row.collectorId, new Collector(row, undefined, before, this.options, end));
        continue;
      }
      const leftMs = row.expiresAt.getTime() - now.getTime();
      const leftEvents = row.maxEvents - before.count;
      try {
        if (leftMs <= 0) throw new NotResumed("duration", `the deadline (${row.expiresAt.toISOString()}) passed while the agent was down`);
        if (leftEvents <= 0) throw new NotResumed("max_events", `all ${row.maxEvents} events were recorded before the agent restarted`);
        const pid = this.observedPid();
        const request = { ...row, durationMs: Math.ceil(leftMs), maxEvents: leftEvents };
        const { session, binary } = await this.startSession(pid, request, row.collectorId, row.isGo);
        const record = { ...row, pid, binary };
        await this.options.store.saveUprobeCollector(record);
        this.track(record, session, before);
        // The agent began closing meanwhile: stop it again, still due for the next start.
        if (this.closed) await session.stop();
        report.resumed.push(row.collectorId);
      } catch (err) {
        const end =
          err instanceof NotResumed
            ? { stopReason: err.stopReason, detail: err.message }
            : { stopReason: "resume_failed" as const, detail: `could not resume after the agent restarted: ${(err as Error).message}` };
        await this.options.store.endUprobeCollector(row.collectorId, { at: now, ...end });
        this.collectors.set(row.collectorId, new Collector(row, undefined, before, this.options, { ...end, at: now.getTime() }));
        report.ended.push({ id: row.collectorId, ...end });
      }
    }
    return report;
  }

  /** Keeps a running collector and stores its end when its session ends (not when the agent closes). */
  private track(record: UprobeCollectorRecord, session: CollectorSession, before: UprobeHistory): Collector {
    const collector = new Collector(record, session, before, this.options);
    this.collectors.set(record.collectorId, collector);
    session.on("end", (reason: StopReason | undefined) => {
      if (this.closed) return;
      this.options.store
        .endUprobeCollector(record.collectorId, { at: new Date(), stopReason: reason ?? "stopped", detail: stopDetailOf(session) ?? null })
        .catch((err: unknown) => this.options.onError?.(record.collectorId, err));
    });
    return collector;
  }

  private async startSession(pid: number, req: CollectorRequest, id: string, expectGo?: boolean): Promise<{ session: CollectorSession; binary: string }> {
    // Workers forked later are followed by the session itself.
    const pids = await processSet(pid);
    const common = {
      pid,
      pids: pids.length ? pids : [pid],
      symbol: req.functionName,
      durationMs: req.durationMs || undefined,
      captureArgs: req.captureArgs ?? 0,
      sampleRate: req.sampleRate || undefined,
      maxEvents: req.maxEvents || undefined,
    };
    const slowThresholdMs = req.slowThresholdMs || 100;
    const kind = req.kind || "function";
    if (kind !== "function") {
      if (!isNodeProcess(pid))
        throw new DebugError("unsupported", `${kind}s work on Node processes only (through the V8 inspector); the observed process (pid ${pid}) is not Node: trace its functions with coral debug attach`);
      const session = await NodeLineSession.start({
        id,
        pid,
        kind,
        location: req.functionName,
        expression: req.expression,
        condition: req.condition || undefined,
        // A resumed snapshot takes the ones it has left.
        snapshotCount: kind === "snapshot" ? Math.min(req.snapshotCount || 1, req.maxEvents || 50) : undefined,
        durationMs: req.durationMs || undefined,
        maxEvents: req.maxEvents || undefined,
        limiter: this.limiter,
        inProcess: this.options.inProcess,
      });
      return { session, binary: v8Binary(session.line?.script ?? "") };
    }
    if (isNodeProcess(pid)) {
      if (expectGo) throw new DebugError("unsupported", `the observed process (pid ${pid}) is a Node process; the collector was started on a Go one`);
      const session = await NodeFunctionSession.start({
        ...common,
        functionName: req.functionName,
        id,
        slowThresholdMs,
        captureReturn: req.captureReturn ?? false,
        limiter: this.limiter,
        inProcess: this.options.inProcess,
      });
      return { session, binary: v8Binary(session.fn?.script ?? "") };
    }
    let functions: FunctionList;
    try {
      functions = await listFunctions(pid);
    } catch (err) {
      throw new DebugError("process_not_found", `cannot read process ${pid}: ${(err as Error).message}`);
    }
    if (expectGo !== undefined && functions.isGo !== expectGo)
      throw new DebugError(
        "unsupported",
        `the observed process (pid ${pid}, ${functions.binary}) is ${functions.isGo ? "a Go" : "not a Go"} program; the collector was started on ${expectGo ? "a Go" : "a non-Go"} one`,
      );
    if (!functions.isGo) {
      const session = await UprobeSession.start({ ...common, id, slowThresholdMs, captureReturn: req.captureReturn ?? false, bpftracePath: this.options.bpftracePath, limiter: this.limiter });
      return { session, binary: functions.binary };
    }
    // Go sessions pair calls by the g pointer in r14 and read arguments from registers: Go 1.17+ only.
    if (!hasRegisterAbi(functions.goVersion))
      throw new DebugError("unsupported", `${functions.binary} was built with ${functions.goVersion}; debugging Go functions needs a program built with Go 1.17 or later (register ABI)`);
    // Go: never a uretprobe; returns come from uprobes on the RET instructions.
    const program = { ...generateProgram({ ...common, functions, captureReturn: false }), captureReturn: req.captureReturn ?? false };
    if (!hasBpfPermission()) throw new DebugError("no_permission", "uprobes need root or CAP_SYS_ADMIN");
    const session = await GoRetSession.start({ id, slowThresholdMs, pid, pids: common.pids, program, binary: `/proc/${pid}/exe`, limiter: this.limiter });
    return { session, binary: functions.binary };
  }

  /** Stops a collector (idempotent) once its events are stored. */
  async stop(id: string): Promise<CollectorInfo> {
    const c = this.require(id);
    await c.session?.stop();
    await c.flush();
    return c.view();
  }

  get(id: string): CollectorInfo | undefined {
    return this.collectors.get(id)?.view();
  }

  list(): CollectorInfo[] {
    return [...this.collectors.values()].map((c) => c.view());
  }

  async query(q: { collectorId: string; afterSeq?: number; since?: Date; until?: Date; limit: number }) {
    const c = this.require(q.collectorId);
    // Read what the session printed so far, not only what the timer flushed.
    await c.flush();
    const page = await this.options.store.queryUprobeEvents(q);
    return { ...page, collector: c.view() };
  }

  /** Stops every session for the agent's shutdown; the collectors stay due, to be resumed by the next start. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(
      [...this.collectors.values()].map(async (c) => {
        await c.session?.stop();
        await c.flush();
      }),
    );
  }

  private require(id: string): Collector {
    const c = this.collectors.get(id);
    if (!c) throw new DebugError("not_found", `no uprobe collector ${JSON.stringify(id.slice(0, 80))} on this agent`);
    return c;
  }

  private prune(): void {
    const keep = this.options.keepEndedMs ?? 3_600_000;
    for (const [id, c] of this.collectors) if (c.endedAt !== undefined && c.endedAt < Date.now() - keep) this.collectors.delete(id);
  }
}

/** A collector that is not resumed for a reason of its own (not a failure to attach). */
class NotResumed extends Error {
  constructor(
    readonly stopReason: StopReason,
    message: string,
  ) {
    super(message);
    this.name = "NotResumed";
  }
}
