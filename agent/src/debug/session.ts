// Runs one bpftrace uprobe program, parses its events and enforces the hard
// limits (duration, max events) on this side too.
import { spawn, type ChildProcess } from "node:child_process";
import { accessSync, constants, readFileSync } from "node:fs";
import { EventEmitter } from "node:events";
import { createInterface } from "node:readline";
import { listFunctions } from "./elf.ts";
import { DebugError, generateProgram, LIMITS, type GeneratedProgram, type ProgramOptions } from "./program.ts";

export interface UprobeEvent {
  type: "entry" | "return";
  /** Kernel monotonic nanoseconds (bpftrace nsecs). */
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
}

export type StopReason = "stopped" | "duration" | "max_events" | "bpftrace_exit" | "error";

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
}

export interface SessionOptions extends Omit<ProgramOptions, "functions"> {
  /** Calls longer than this count as slow (default 100 ms). */
  slowThresholdMs?: number;
  bpftracePath?: string;
  limiter?: SessionLimiter;
  /** How long to wait for bpftrace to attach (default 30 s). */
  attachTimeoutMs?: number;
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

export function findBpftrace(explicit?: string): string {
  const candidates = explicit
    ? [explicit]
    : (process.env.PATH ?? "/usr/sbin:/usr/bin").split(":").filter(Boolean).map((d) => `${d}/bpftrace`);
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* next */
    }
  }
  throw new DebugError("bpftrace_missing", "bpftrace is not installed (apt-get install bpftrace)");
}

/** True when this process may load BPF programs (root, CAP_SYS_ADMIN, or CAP_BPF+CAP_PERFMON). */
export function hasBpfPermission(): boolean {
  if (process.getuid?.() === 0) return true;
  try {
    const m = /CapEff:\s*([0-9a-f]+)/.exec(readFileSync("/proc/self/status", "utf8"));
    const caps = BigInt(`0x${m?.[1] ?? "0"}`);
    const has = (bit: number) => (caps >> BigInt(bit)) & 1n;
    return has(21) === 1n || (has(38) === 1n && has(39) === 1n);
  } catch {
    return false;
  }
}

let nextId = 1;

export class UprobeSession extends EventEmitter {
  readonly id: string;
  readonly program: GeneratedProgram;
  readonly events: UprobeEvent[] = [];
  stopReason: StopReason | undefined;
  lostEvents = 0;
  stderr = "";
  private child: ChildProcess | undefined;
  private timer: NodeJS.Timeout | undefined;
  private exited: Promise<void>;
  private resolveExited!: () => void;
  private readyPromise: Promise<void>;
  private wake: (() => void) | undefined;
  private done = false;
  private readonly monoToWallNs: bigint;

  private constructor(
    program: GeneratedProgram,
    private readonly opts: SessionOptions,
  ) {
    super();
    this.id = `uprobe-${process.pid}-${nextId++}`;
    this.program = program;
    this.monoToWallNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
    this.exited = new Promise((r) => (this.resolveExited = r));
    this.readyPromise = Promise.resolve();
  }

  /**
   * Validates the function against the process's ELF symbols, starts bpftrace
   * and resolves once the probes are attached.
   */
  static async start(opts: SessionOptions): Promise<UprobeSession> {
    let functions;
    try {
      functions = await listFunctions(opts.pid);
    } catch (err) {
      throw new DebugError("process_not_found", `cannot read process ${opts.pid}: ${(err as Error).message}`);
    }
    const program = generateProgram({ ...opts, functions });
    const bpftrace = findBpftrace(opts.bpftracePath);
    if (!hasBpfPermission()) {
      throw new DebugError("no_permission", "loading eBPF programs needs root or CAP_BPF+CAP_PERFMON");
    }
    const s = new UprobeSession(program, opts);
    opts.limiter?.acquire(s.id);
    try {
      await s.launch(bpftrace);
    } catch (err) {
      await s.stop();
      throw err;
    }
    return s;
  }

  private launch(bpftrace: string): Promise<void> {
    const child = spawn(bpftrace, ["-B", "none", "-e", this.program.source], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    let ready!: () => void;
    let fail!: (e: Error) => void;
    this.readyPromise = new Promise<void>((res, rej) => ((ready = res), (fail = rej)));
    let isReady = false;
    const attachTimer = setTimeout(
      () => fail(new DebugError("bpftrace_failed", "bpftrace did not attach in time")),
      this.opts.attachTimeoutMs ?? 30_000,
    );
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      if (this.stderr.length < 64 * 1024) this.stderr += d;
    });
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (line.startsWith('{"ev":"ready"')) {
        isReady = true;
        clearTimeout(attachTimer);
        this.timer = setTimeout(() => void this.finish("duration"), this.program.durationMs);
        ready();
        return;
      }
      this.onLine(line);
    });
    child.on("error", (err) => fail(new DebugError("bpftrace_failed", `cannot run bpftrace: ${err.message}`)));
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

  private startError(code: number | null, signal: string | null): DebugError {
    const msg = this.stderr
      .split("\n")
      .filter((l) => l.trim() && !l.includes("RLIMIT_MEMLOCK"))
      .join("\n");
    if (/permission|not permitted/i.test(msg)) return new DebugError("no_permission", msg);
    return new DebugError("bpftrace_failed", `bpftrace exited (${signal ?? code}) before attaching: ${msg}`);
  }

  private onLine(line: string): void {
    if (line.startsWith("Lost ")) {
      this.lostEvents += Number(/Lost (\d+)/.exec(line)?.[1] ?? 0);
      return;
    }
    if (this.done) return;
    const ev = parseEventLine(line, this.monoToWallNs);
    if (!ev) return;
    this.events.push(ev);
    this.emit("event", ev);
    this.wake?.();
    if (this.events.length >= this.program.maxEvents) void this.finish("max_events");
  }

  /** Resolves when the probes are attached (already resolved after start()). */
  ready(): Promise<void> {
    return this.readyPromise;
  }

  /** Stops bpftrace (idempotent) and resolves once it has exited. */
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
    // At the event cap nothing more is taken; otherwise bpftrace prints what it
    // still holds when interrupted, and those calls happened inside the session.
    if (reason === "max_events" || !running) this.finishLocal();
    else if (this.timer) clearTimeout(this.timer);
    if (running) {
      child.kill("SIGINT");
      const killer = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await this.exited;
      clearTimeout(killer);
    } else if (!child) {
      this.resolveExited();
    }
  }

  private finishLocal(): void {
    if (this.done) return;
    this.done = true;
    if (this.timer) clearTimeout(this.timer);
    this.opts.limiter?.release(this.id);
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
    return summarize(this.events, {
      function: this.program.function.name,
      slowThresholdNs: (this.opts.slowThresholdMs ?? 100) * 1e6,
      lostEvents: this.lostEvents,
      stopReason: this.stopReason,
    });
  }
}

export function summarize(
  events: readonly UprobeEvent[],
  meta: { function: string; slowThresholdNs: number; lostEvents?: number; stopReason?: StopReason },
): SessionSummary {
  const d = events.filter((e) => e.type === "return" && e.durationNs !== undefined).map((e) => e.durationNs!);
  d.sort((a, b) => a - b);
  const pct = (p: number) => (d.length ? d[Math.min(d.length - 1, Math.ceil((p / 100) * d.length) - 1)]! : 0);
  return {
    function: meta.function,
    entries: events.filter((e) => e.type === "entry").length,
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

/** Parses one line printed by the bpf/ templates; undefined for anything else. */
export function parseEventLine(line: string, monoToWallNs = 0n): UprobeEvent | undefined {
  const m = /^\{"ev":"(entry|return)","ts":(\d+),"pid":(\d+),"tid":(\d+)(?:,"goid":(\d+))?(?:,"dur":(\d+))?(?:,"args":\[(-?\d+(?:,-?\d+)*)\])?(?:,"ret":(-?\d+))?\}$/.exec(
    line.trim(),
  );
  if (!m) return undefined;
  const ns = BigInt(m[2]!);
  const ev: UprobeEvent = {
    type: m[1] as "entry" | "return",
    ns,
    timeMs: Number((ns + monoToWallNs) / 1_000_000n),
    pid: Number(m[3]),
    tid: Number(m[4]),
  };
  if (m[5] !== undefined) ev.goroutine = m[5];
  if (m[6] !== undefined) ev.durationNs = Number(m[6]);
  if (m[7] !== undefined) ev.args = m[7].split(",");
  if (m[8] !== undefined) ev.ret = m[8];
  return ev;
}
