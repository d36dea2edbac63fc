// The lifecycle every uprobe session shares, whatever prints its events
// (bpftrace for C, C++ and Rust; tracefs uprobe events for Go): spawn the
// tracer, wait for its ready line, enforce the duration and event limits on
// this side too, and on stop let the tracer hand over what it still holds
// before ending, so a call completed before stop is never lost.
import { spawn, type ChildProcess } from "node:child_process";
import { EventEmitter } from "node:events";
import { createInterface } from "node:readline";
import { DebugError, LIMITS, type GeneratedProgram } from "./program.ts";


/** What a caller asks of a debug session on one function (uprobes, Go RET probes, V8 breakpoints). */
export interface SessionRequest {
  functionName: string;
  durationMs?: number;
  captureArgs?: number;
  captureReturn?: boolean;
  sampleRate?: number;
  maxEvents?: number;
  /** Calls slower than this count as slow (default 100). */
  slowThresholdMs?: number;
}

export interface UprobeEvent {
  /** log: a logpoint's value; snapshot: a snapshot's names and values (Node line sessions, node/line-session.ts). */
  type: "entry" | "return" | "log" | "snapshot";
  /** Kernel monotonic nanoseconds. */
  ns: bigint;
  /** Wall-clock milliseconds since epoch. */
  timeMs: number;
  pid: number;
  tid: number;
  /** Return events: duration of the call in nanoseconds. */
  durationNs?: number;
  /** Captured integer arguments as decimal strings (64-bit register values). */
  args?: string[];
  /** Captured return value as a decimal string. */
  ret?: string;
  /** Go: goroutine (g pointer) for pairing. */
  goroutine?: string;
  /** log: the expression's formatted value ("!TypeError: …" when it threw); snapshot: a JSON object name → formatted value. */
  value?: string;
}

/** resume_failed: a restarted agent could not re-attach the collector (see its stop detail). */
export type StopReason = "stopped" | "duration" | "max_events" | "bpftrace_exit" | "error" | "resume_failed";

export interface SessionSummary {
  function: string;
  entries: number;
  calls: number;
  avgNs: number;
  p50Ns: number;
  p95Ns: number;
  p99Ns: number;
  maxNs: number;
  slowThresholdNs: number;
  slowCalls: number;
  lostEvents: number;
  stopReason: StopReason | undefined;
  /** Processes probed: the service's set at the start and the children it forked since. */
  processCount?: number;
  /** Why there are no calls yet, when a while passed without any (see UprobeSession). */
  note?: string;
}

/** Max concurrent sessions per agent. */
export class SessionLimiter {
  private readonly active = new Set<string>();
  constructor(readonly max: number = LIMITS.defaultMaxSessions) {}
  acquire(id: string): void {
    if (this.active.has(id)) return;
    if (this.active.size >= this.max) {
      throw new DebugError("limit_reached", `at most ${this.max} debug sessions may run at once on this agent`);
    }
    this.active.add(id);
  }
  release(id: string): void {
    this.active.delete(id);
  }
  get size(): number {
    return this.active.size;
  }
}

/** What every session takes besides its program. */
export interface ProbeSessionOptions {
  /** The session's id (a collector keeps its id across agent restarts); generated when absent. */
  id?: string;
  /** Calls longer than this count as slow (default 100 ms). */
  slowThresholdMs?: number;
  limiter?: SessionLimiter;
  /** How long to wait for the tracer to attach (default 30 s). */
  attachTimeoutMs?: number;
}

/** How a subclass runs its tracer. */
export interface Tracer {
  command: string;
  args: string[];
  /** Asks the tracer to print what it still holds, then exit. */
  drainSignal: NodeJS.Signals;
  /** Ends the tracer without waiting for more events. */
  stopSignal: NodeJS.Signals;
  /**
   * Starts the drain by other means than drainSignal (bpftrace: a kill(-token, 0)
   * its program watches for); the tracer then exits by itself once the calls
   * it recorded have returned, or gets stopSignal after drainGraceMs.
   */
  drain?: () => void;
  /** Default 2000. */
  drainGraceMs?: number;
}

const killAfterMs = 5_000;
let nextId = 1;

export abstract class ProbeSession extends EventEmitter {
  readonly id: string;
  readonly events: UprobeEvent[] = [];
  stopReason: StopReason | undefined;
  lostEvents = 0;
  stderr = "";
  /** Adds to a kernel monotonic time to get wall-clock time. */
  protected readonly monoToWallNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
  private tracer: Tracer | undefined;
  private child: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly exited: Promise<void>;
  private resolveExited!: () => void;
  private readyPromise: Promise<void> = Promise.resolve();
  private wake: (() => void) | undefined;
  private done = false;

  protected constructor(
    readonly program: GeneratedProgram,
    private readonly baseOptions: ProbeSessionOptions,
    idPrefix: string,
  ) {
    super();
    this.id = baseOptions.id ?? `${idPrefix}-${process.pid}-${nextId++}`;
    this.exited = new Promise((r) => (this.resolveExited = r));
  }

  /** One line the tracer printed after it was ready. */
  protected abstract onLine(line: string): void;

  /** The error for a tracer that exited before it was ready. */
  protected abstract startError(code: number | null, signal: NodeJS.Signals | null): DebugError;

  /** Takes a limiter slot and runs the tracer; on failure everything is released again. */
  protected async begin(tracer: Tracer): Promise<void> {
    this.baseOptions.limiter?.acquire(this.id);
    try {
      await this.launch(tracer);
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  private launch(tracer: Tracer): Promise<void> {
    this.tracer = tracer;
    const child = spawn(tracer.command, tracer.args, { stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    let ready!: () => void;
    let fail!: (e: Error) => void;
    this.readyPromise = new Promise<void>((res, rej) => ((ready = res), (fail = rej)));
    let isReady = false;
    const attachTimer = setTimeout(
      () => fail(new DebugError("bpftrace_failed", `${tracer.command} did not attach the probes in time`)),
      this.baseOptions.attachTimeoutMs ?? 30_000,
    );
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      if (this.stderr.length < 64 * 1024) this.stderr += d;
    });
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (!isReady && line.startsWith('{"ev":"ready"')) {
        isReady = true;
        clearTimeout(attachTimer);
        this.timer = setTimeout(() => void this.finish("duration"), this.program.durationMs);
        ready();
        return;
      }
      this.onLine(line);
    });
    child.on("error", (err) => fail(new DebugError("bpftrace_failed", `cannot run ${tracer.command}: ${err.message}`)));
    // "close", not "exit": stdout has been read to its end, so no event is lost.
    child.on("close", (code, signal) => {
      clearTimeout(attachTimer);
      if (!isReady) fail(this.startError(code, signal));
      if (!this.stopReason) this.stopReason = this.events.length >= this.program.maxEvents ? "max_events" : isReady ? "bpftrace_exit" : "error";
      this.finishLocal();
      this.resolveExited();
    });
    return this.readyPromise;
  }

  /** Records one event, unless the session has ended; ends it at the event cap. */
  protected push(ev: UprobeEvent): void {
    if (this.done) return;
    this.events.push(ev);
    this.emit("event", ev);
    this.wake?.();
    if (this.events.length >= this.program.maxEvents) void this.finish("max_events");
  }

  /** Ends the tracer at once (a subclass that saw the end of its drain). */
  protected endTracer(): void {
    const child = this.child;
    if (this.tracer && child && child.exitCode === null && child.signalCode === null) child.kill(this.tracer.stopSignal);
  }

  /** Resolves when the probes are attached (already resolved after start()). */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** Stops the tracer (idempotent) and resolves once it has exited with every event it held. */
  async stop(): Promise<SessionSummary> {
    await this.finish("stopped");
    return this.summary();
  }

  /** Resolves when the session has ended for any reason. */
  async ended(): Promise<SessionSummary> {
    await this.exited;
    return this.summary();
  }

  get running(): boolean {
    return !this.done;
  }

  private async finish(reason: StopReason): Promise<void> {
    if (!this.stopReason) this.stopReason = reason;
    const child = this.child;
    const running = child && child.exitCode === null && child.signalCode === null;
    // At the event cap nothing more is taken; otherwise the tracer prints what
    // it still holds, and those calls happened inside the session.
    if (reason === "max_events" || !running) this.finishLocal();
    else if (this.timer) clearTimeout(this.timer);
    if (running && this.tracer) {
      const tracer = this.tracer;
      let grace: NodeJS.Timeout | undefined;
      const graceMs = tracer.drainGraceMs ?? 2000;
      if (!this.done && tracer.drain) {
        tracer.drain();
        // A call that never returns (blocked, or its process died) must not hold the session open.
        grace = setTimeout(() => child.kill(tracer.stopSignal), graceMs);
      } else child.kill(this.done ? tracer.stopSignal : tracer.drainSignal);
      const killer = setTimeout(() => child.kill("SIGKILL"), killAfterMs + (grace ? graceMs : 0));
      await this.exited;
      clearTimeout(grace);
      clearTimeout(killer);
    } else if (!child) {
      this.resolveExited();
    }
  }

  private finishLocal(): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.baseOptions.limiter?.release(this.id);
    this.wake?.();
    this.emit("end", this.stopReason);
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<UprobeEvent> {
    let i = 0;
    for (;;) {
      while (i < this.events.length) yield this.events[i++]!;
      if (this.done) return;
      await new Promise<void>((r) => (this.wake = r));
    }
  }

  summary(): SessionSummary {
    const s = summarize(this.events, {
      function: this.program.function.name,
      slowThresholdNs: (this.baseOptions.slowThresholdMs ?? 100) * 1e6,
      lostEvents: this.lostEvents,
      stopReason: this.stopReason,
    });
    const note = s.entries === 0 ? this.quietNote() : undefined;
    return { ...s, processCount: this.processCount(), ...(note ? { note } : {}) };
  }

  /** How many processes the session probes (or probed). */
  protected processCount(): number {
    return this.program.pids.length;
  }

  /** What to say when no call was seen (after a while); undefined to say nothing. */
  protected quietNote(): string | undefined {
    return undefined;
  }
}

type SummaryMeta = { function: string; slowThresholdNs: number; lostEvents?: number; stopReason?: StopReason };

export function summarize(events: readonly UprobeEvent[], meta: SummaryMeta): SessionSummary {
  const durations = events.filter((e) => e.type === "return" && e.durationNs !== undefined).map((e) => e.durationNs!);
  return summarizeCalls(events.filter((e) => e.type === "entry").length, durations, meta);
}

/** The summary of `entries` entries and the calls that took `durationsNs`. */
export function summarizeCalls(entries: number, durationsNs: readonly number[], meta: SummaryMeta): SessionSummary {
  const d = [...durationsNs].sort((a, b) => a - b);
  const pct = (p: number) => (d.length ? d[Math.min(d.length - 1, Math.ceil((p / 100) * d.length) - 1)]! : 0);
  return {
    function: meta.function,
    entries,
    calls: d.length,
    avgNs: d.length ? Math.round(d.reduce((a, b) => a + b, 0) / d.length) : 0,
    p50Ns: pct(50),
    p95Ns: pct(95),
    p99Ns: pct(99),
    maxNs: d.length ? d[d.length - 1]! : 0,
    slowThresholdNs: meta.slowThresholdNs,
    slowCalls: d.filter((x) => x > meta.slowThresholdNs).length,
    lostEvents: meta.lostEvents ?? 0,
    stopReason: meta.stopReason,
  };
}
