// Runs one bpftrace uprobe program (C, C++, Rust targets) over a service's
// process set and parses its events; the lifecycle and limits are
// ProbeSession's. bpftrace runs in a private mount namespace with tracefs
// mounted (its tracepoints follow forks and take the drain trigger) without
// touching the host's mounts.
import { accessSync, constants, readFileSync } from "node:fs";
import { noCallsNote } from "./quiet-note.ts";
import { listFunctions } from "./elf.ts";
import { DebugError, generateProgram, type GeneratedProgram, type ProgramOptions } from "./program.ts";
import { ProbeSession, type ProbeSessionOptions, type UprobeEvent } from "./probe-session.ts";

export { SessionLimiter, summarize, summarizeCalls, type SessionSummary, type StopReason, type UprobeEvent } from "./probe-session.ts";

export interface SessionOptions extends Omit<ProgramOptions, "functions">, ProbeSessionOptions {
  bpftracePath?: string;
  /** After this long without a call, the summary says where calls may be happening instead (default 5000). */
  quietAfterMs?: number;
}

/** See endIfDrained(). */
const drainSettleMs = 100;

/** Mounts tracefs where it is missing (in the private namespace only), then becomes bpftrace. */
const bpftraceWrapper =
  '[ -e /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true; exec "$0" -B none -e "$1"';

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

export class UprobeSession extends ProbeSession {
  /** The set at the start and every process it forked during the session. */
  private readonly probed: Set<number>;
  /** Processes outside the set that called the function (counted by the program, not recorded). */
  readonly outsidePids = new Set<number>();
  private readyAtMs = Infinity;
  /** Recorded entries without their return yet. */
  private openCalls = 0;
  /** The program confirmed the drain: no new records, returns still come. */
  private draining = false;
  private settle: NodeJS.Timeout | undefined;

  private constructor(
    program: GeneratedProgram,
    private readonly opts: SessionOptions,
  ) {
    super(program, opts, "uprobe");
    this.probed = new Set(program.pids);
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
    // SIGINT: bpftrace prints what it still holds, then exits. The drain first
    // lets the calls it recorded return (see bpf/uprobe-latency.bt.tmpl).
    await s.begin({
      command: "unshare",
      args: ["-m", "--propagation", "private", "sh", "-c", bpftraceWrapper, bpftrace, program.source],
      drainSignal: "SIGINT",
      stopSignal: "SIGINT",
      drain: () => {
        try {
          process.kill(-program.drainToken, 0);
        } catch {
          // ESRCH, always: no such process group; the program saw the call.
        }
      },
    });
    s.readyAtMs = Date.now();
    return s;
  }

  protected override processCount(): number {
    return this.probed.size;
  }

  protected override quietNote(): string | undefined {
    if (Date.now() - this.readyAtMs < (this.opts.quietAfterMs ?? 5000)) return undefined;
    return noCallsNote({ functionName: this.program.function.name, pid: this.program.pids[0]!, probed: this.probed, outside: this.outsidePids });
  }

  protected startError(code: number | null, signal: NodeJS.Signals | null): DebugError {
    const msg = this.stderr
      .split("\n")
      .filter((l) => l.trim() && !l.includes("RLIMIT_MEMLOCK"))
      .join("\n");
    if (/permission|not permitted/i.test(msg)) return new DebugError("no_permission", msg);
    return new DebugError("bpftrace_failed", `bpftrace exited (${signal ?? code}) before attaching: ${msg}`);
  }

  protected onLine(line: string): void {
    if (line.startsWith("Lost ")) {
      this.lostEvents += Number(/Lost (\d+)/.exec(line)?.[1] ?? 0);
      return;
    }
    const mark = /^\{"ev":"(fork|outside)","ts":\d+,"pid":(\d+)/.exec(line);
    if (mark) {
      (mark[1] === "fork" ? this.probed : this.outsidePids).add(Number(mark[2]));
      return;
    }
    if (line.startsWith('{"ev":"draining"')) {
      this.draining = true;
      this.endIfDrained();
      return;
    }
    const ev = parseEventLine(line, this.monoToWallNs);
    if (!ev) return;
    this.openCalls += ev.type === "entry" ? 1 : -1;
    this.push(ev);
    this.endIfDrained();
  }

  /**
   * Every recorded call has returned since the drain began: nothing more to
   * wait for, once a short settle has let the other CPUs' buffers hand over
   * an entry recorded just before the drain (its return would come next).
   */
  private endIfDrained(): void {
    if (!this.draining || this.openCalls > 0 || this.settle) return;
    this.settle = setTimeout(() => {
      this.settle = undefined;
      if (this.openCalls <= 0) this.endTracer();
    }, drainSettleMs);
  }
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
