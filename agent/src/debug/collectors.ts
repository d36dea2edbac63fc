// The agent's uprobe collectors: one UprobeSession each, against the process
// the agent observes (never a pid from the caller), with events flushed to the
// local DuckDB in small batches. Each session stops at its own deadline (the
// session's timer and bpftrace's interval probe), whether or not anyone calls
// stop(); ended collectors stay queryable for a while.
import type { AgentStore, UprobeEventRow } from "../storage/index.ts";
import { listFunctions } from "./elf.ts";
import { GoRetSession } from "./go-ret.ts";
import { DebugError, generateProgram, LIMITS } from "./program.ts";
import { hasBpfPermission, SessionLimiter, UprobeSession, type SessionSummary, type UprobeEvent } from "./session.ts";

/** What a collector needs of a session: bpftrace (C, C++, Rust) or RET-instruction uprobes (Go). */
type CollectorSession = UprobeSession | GoRetSession;

export interface CollectorRequest {
  functionName: string;
  durationMs?: number;
  captureArgs?: number;
  captureReturn?: boolean;
  sampleRate?: number;
  maxEvents?: number;
  label?: string;
}

export interface CollectorInfo {
  id: string;
  label: string;
  functionName: string;
  pid: number;
  startedAt: Date;
  expiresAt: Date;
  isGo: boolean;
  returnProbe: "uretprobe" | "ret-instructions" | "none";
  running: boolean;
  summary: SessionSummary;
}

export interface UprobeCollectorsOptions {
  store: Pick<AgentStore, "recordUprobeEvents" | "queryUprobeEvents">;
  /** The pid of the process this agent observes, or null while there is none. */
  observedPid: () => number | null;
  maxSessions?: number;
  bpftracePath?: string;
  /** How long an ended collector stays listed (default 1 h). */
  keepEndedMs?: number;
  onError?: (collectorId: string, err: unknown) => void;
}

const flushDelayMs = 100;

class Collector {
  private seq = 0;
  private pending: UprobeEventRow[] = [];
  private flushing: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  endedAt: number | undefined;

  constructor(
    readonly info: Omit<CollectorInfo, "running" | "summary">,
    readonly session: CollectorSession,
    private readonly options: UprobeCollectorsOptions,
  ) {
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
        this.options.store.recordUprobeEvents(this.info.id, rows).then(
          () => undefined,
          (err: unknown) => this.options.onError?.(this.info.id, err),
        ),
      );
    return this.flushing;
  }

  view(): CollectorInfo {
    return { ...this.info, running: this.session.running, summary: this.session.summary() };
  }
}

export class UprobeCollectors {
  private readonly collectors = new Map<string, Collector>();
  readonly limiter: SessionLimiter;
  private closed = false;

  constructor(private readonly options: UprobeCollectorsOptions) {
    this.limiter = new SessionLimiter(options.maxSessions ?? LIMITS.defaultMaxSessions);
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
    const session = await this.startSession(pid, req);
    const startedAt = new Date();
    const collector = new Collector(
      {
        id: session.id,
        label: req.label ?? "",
        functionName: req.functionName,
        pid,
        startedAt,
        expiresAt: new Date(startedAt.getTime() + session.program.durationMs),
        isGo: session.program.isGo,
        returnProbe: session.program.isGo ? "ret-instructions" : "uretprobe",
      },
      session,
      this.options,
    );
    this.collectors.set(session.id, collector);
    return collector.view();
  }

  private async startSession(pid: number, req: CollectorRequest): Promise<CollectorSession> {
    const common = {
      pid,
      symbol: req.functionName,
      durationMs: req.durationMs || undefined,
      captureArgs: req.captureArgs ?? 0,
      sampleRate: req.sampleRate || undefined,
      maxEvents: req.maxEvents || undefined,
    };
    let functions;
    try {
      functions = await listFunctions(pid);
    } catch (err) {
      throw new DebugError("process_not_found", `cannot read process ${pid}: ${(err as Error).message}`);
    }
    if (!functions.isGo)
      return UprobeSession.start({ ...common, captureReturn: req.captureReturn ?? false, bpftracePath: this.options.bpftracePath, limiter: this.limiter });
    // Go: never a uretprobe; returns come from uprobes on the RET instructions.
    const program = { ...generateProgram({ ...common, functions, captureReturn: false }), captureReturn: req.captureReturn ?? false };
    if (!hasBpfPermission()) throw new DebugError("no_permission", "uprobes need root or CAP_SYS_ADMIN");
    return GoRetSession.start({ pid, program, binary: `/proc/${pid}/exe`, limiter: this.limiter });
  }

  /** Stops a collector (idempotent) once its events are stored. */
  async stop(id: string): Promise<CollectorInfo> {
    const c = this.require(id);
    await c.session.stop();
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

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.collectors.values()].map(async (c) => {
      await c.session.stop();
      await c.flush();
    }));
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
