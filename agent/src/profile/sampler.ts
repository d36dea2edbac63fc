// Runs the CPU profile program (bpf/cpu-profile.bt.tmpl) with bpftrace over a
// process set: resolves once the probes are attached, reports the first
// sample and every fork as they come, and at the end reads the map dump the
// program prints. The program ends itself after its duration; the agent's
// own deadline, a stop() or an abort ends it too (SIGINT: bpftrace detaches
// and prints what it holds; SIGKILL if it does not exit). bpftrace runs in a
// private mount namespace where tracefs is mounted for the fork tracepoint,
// without touching the host's mounts.
import { spawn, type ChildProcess } from "node:child_process";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { findBpftrace, hasBpfPermission } from "../debug/session.ts";
import { StackDumpReader, type StackDump } from "./dump.ts";
import { ProfileError } from "./errors.ts";
import type { ProfileProgram } from "./program.ts";

/** Mounts tracefs where it is missing (in the private namespace only), then becomes bpftrace. */
const bpftraceWrapper =
  '[ -e /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true; exec "$0" -B none -e "$1"';

/** Keys of @stacks (distinct pid + stacks); @pids shares the size. The stack maps themselves are bpftrace's (131072 entries). */
const mapKeysMax = 32_768;

export interface SamplerOptions {
  program: ProfileProgram;
  bpftracePath?: string;
  /** Aborting stops the profile early: start() rejects (before the probes are attached) or result() resolves with what was taken. */
  signal?: AbortSignal;
  /** A process of the set forked `pid` (a process, not a thread), which is now sampled too. */
  onFork?: (pid: number, parent: number) => void;
  /** How long bpftrace may take to attach (default 30 s). */
  attachTimeoutMs?: number;
  /** Time beyond the duration before the agent stops bpftrace itself (default 10 s). */
  overrunMs?: number;
  /** A windowed program (the always-on one) printed a window: what it counted over `span` (kernel times, as wall-clock). */
  onWindow?: (dump: StackDump, span: { start: Date; end: Date }) => void;
}

export type SamplerEnd =
  /** The program ended itself after its duration. */
  | "duration"
  /** stop() or the signal ended it early. */
  | "stopped"
  /** bpftrace exited on its own before the end (its stderr says why). */
  | "exited";

export interface SamplerResult {
  dump: StackDump;
  end: SamplerEnd;
  /** performance.now() when the probes were attached and when the first sample was printed. */
  readyAt: number;
  firstSampleAt: number | undefined;
  /** Wall-clock time the probes were attached. */
  startedAt: Date;
  /** How long the program sampled: its duration, or until it was stopped early. */
  sampledMs: number;
  forks: { pid: number; parent: number }[];
  /** What bpftrace wrote to stderr, without the RLIMIT_MEMLOCK warning. */
  stderr: string;
  exitCode: number | null;
  /** The time the dump covers: from the start, or the end of the last window handed to onWindow, until the program ended. */
  dumpSpan: { start: Date; end: Date };
}

/** After SIGINT, how long bpftrace has to print what it holds and exit before SIGKILL. */
const killAfterMs = 10_000;
/** How long a program that ended by itself may take to print its maps. */
const dumpTimeoutMs = 60_000;

export class CpuSampler {
  readonly readyAt: number;
  readonly startedAt: Date;
  private constructor(
    private readonly child: ChildProcess,
    private readonly state: RunState,
    private readonly finished: Promise<SamplerResult>,
  ) {
    this.readyAt = state.readyAt!;
    this.startedAt = state.startedAt!;
  }

  /** Starts bpftrace and resolves once its probes are attached (the BEGIN line). */
  static async start(opts: SamplerOptions): Promise<CpuSampler> {
    const bpftrace = findBpftraceOrFail(opts.bpftracePath);
    if (!hasBpfPermission())
      throw new ProfileError("no_permission", `CPU profiling loads eBPF programs, which needs root or CAP_BPF+CAP_PERFMON (this agent runs as uid ${process.getuid?.() ?? "?"})`);
    if (opts.signal?.aborted) throw new ProfileError("cancelled", "the profile was cancelled before it started");
    const child = spawn("unshare", ["-m", "--propagation", "private", "sh", "-c", bpftraceWrapper, bpftrace, opts.program.source], {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, BPFTRACE_NO_USER_SYMBOLS: "1", BPFTRACE_MAP_KEYS_MAX: String(mapKeysMax) },
    });
    const state: RunState = { stderr: "", forks: [], reader: new StackDumpReader(), ended: false, endNs: undefined, readyNs: undefined };
    let onReady!: () => void;
    let onFail!: (err: Error) => void;
    const ready = new Promise<void>((res, rej) => ((onReady = res), (onFail = rej)));
    const attachTimer = setTimeout(() => {
      onFail(new ProfileError("bpftrace_failed", `bpftrace did not attach its probes within ${(opts.attachTimeoutMs ?? 30_000) / 1000} s`));
      child.kill("SIGKILL");
    }, opts.attachTimeoutMs ?? 30_000);

    child.stderr!.setEncoding("utf8").on("data", (d: string) => {
      if (state.stderr.length < 64 * 1024) state.stderr += d;
    });
    // Kernel times (ns since boot) of the program's lines, as wall-clock times.
    const wallClock = (ns: bigint | undefined) =>
      ns === undefined || state.readyNs === undefined || state.startedAt === undefined || ns < state.readyNs
        ? new Date()
        : new Date(state.startedAt.getTime() + Number((ns - state.readyNs) / 1_000_000n));
    const deliverWindow = () => {
      if (!state.window) return;
      const dump = state.window.finish();
      state.window = undefined;
      const span = { start: wallClock(state.windowsEndNs ?? state.readyNs), end: wallClock(state.windowNs) };
      state.windowsEndNs = state.windowNs;
      try {
        opts.onWindow?.(dump, span);
      } catch {
        // the consumer's problem must not stop the reading
      }
    };
    createInterface({ input: child.stdout! }).on("line", (line) => {
      if (state.ended) return state.reader.push(line);
      const ev = /^\{"ev":"(ready|first|fork|end|window|window_end)"(?:,"ts":(\d+))?(?:,"pid":(\d+),"parent":(\d+))?\}$/.exec(line);
      if (!ev) {
        // Inside a window: its dump. Before the end, anything else is bpftrace's own chatter ("Attaching 4 probes...").
        state.window?.push(line);
        return;
      }
      switch (ev[1]) {
        case "window":
          state.window = new StackDumpReader();
          state.windowNs = BigInt(ev[2] ?? 0);
          break;
        case "window_end":
          deliverWindow();
          break;
        case "ready":
          state.readyAt = performance.now();
          state.startedAt = new Date();
          state.readyNs = BigInt(ev[2] ?? 0);
          clearTimeout(attachTimer);
          onReady();
          break;
        case "first":
          state.firstSampleAt ??= performance.now();
          break;
        case "fork": {
          const fork = { pid: Number(ev[3]), parent: Number(ev[4]) };
          state.forks.push(fork);
          opts.onFork?.(fork.pid, fork.parent);
          break;
        }
        case "end":
          // A window cut off by the end (its window_end never comes): deliver what it printed.
          deliverWindow();
          state.ended = true;
          state.endNs = BigInt(ev[2] ?? 0);
          break;
      }
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      // "close": stdout has been read to its end, so the dump is whole.
      child.on("close", (code, signal) => {
        clearTimeout(attachTimer);
        if (state.readyAt === undefined) onFail(startError(state.stderr, code, signal));
        resolve({ code, signal });
      });
      child.on("error", (err) => onFail(new ProfileError("bpftrace_failed", `cannot run unshare/bpftrace: ${err.message}`, { cause: err })));
    });
    const abortBeforeReady = () => {
      onFail(new ProfileError("cancelled", "the profile was cancelled before it started"));
      child.kill("SIGKILL");
    };
    opts.signal?.addEventListener("abort", abortBeforeReady, { once: true });
    try {
      await ready;
    } catch (err) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
      throw err;
    } finally {
      opts.signal?.removeEventListener("abort", abortBeforeReady);
    }

    let stopped = false;
    let killer: NodeJS.Timeout | undefined;
    const stop = () => {
      if (child.exitCode !== null || child.signalCode !== null || killer) return;
      // Once the program has ended it is printing its maps: let it finish, within reason.
      if (!state.ended) {
        stopped = true;
        child.kill("SIGINT");
      }
      killer = setTimeout(() => child.kill("SIGKILL"), state.ended ? dumpTimeoutMs : killAfterMs);
    };
    state.stop = stop;
    const overrun = setTimeout(stop, opts.program.durationMs + (opts.overrunMs ?? 10_000));
    opts.signal?.addEventListener("abort", stop, { once: true });
    if (opts.signal?.aborted) stop();
    const finished = exited.then(({ code }) => {
      clearTimeout(overrun);
      clearTimeout(killer);
      opts.signal?.removeEventListener("abort", stop);
      const lines = state.stderr.split("\n").filter((l) => l.trim() && !/RLIMIT_MEMLOCK|^ERROR\s*$/.test(l.trim()));
      return {
        dump: state.reader.finish(),
        end: stopped ? "stopped" : state.ended ? "duration" : "exited",
        readyAt: state.readyAt!,
        firstSampleAt: state.firstSampleAt,
        startedAt: state.startedAt!,
        // The program's own timer ends it after its duration (its END runs a little later, once
        // bpftrace has noticed); anything else ended it at the time of the END line, or of the exit.
        sampledMs:
          !stopped && state.ended
            ? opts.program.durationMs
            : state.endNs !== undefined && state.readyNs !== undefined && state.endNs > state.readyNs
              ? Math.min(opts.program.durationMs, Number((state.endNs - state.readyNs) / 1_000_000n))
              : Math.min(opts.program.durationMs, Math.round(performance.now() - state.readyAt!)),
        forks: state.forks,
        stderr: lines.join("\n"),
        exitCode: code,
        dumpSpan: { start: wallClock(state.windowsEndNs ?? state.readyNs), end: state.endNs !== undefined ? wallClock(state.endNs) : new Date() },
      } satisfies SamplerResult;
    });
    return new CpuSampler(child, state, finished);
  }

  /** bpftrace's pid (the process our program runs in). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** When the first sample was printed (performance.now()), once it was. */
  get firstSampleAt(): number | undefined {
    return this.state.firstSampleAt;
  }

  /** Resolves when bpftrace has exited, with everything it printed. */
  result(): Promise<SamplerResult> {
    return this.finished;
  }

  /** Ends the profile now (idempotent); result() then has what was taken so far. */
  stop(): Promise<SamplerResult> {
    this.state.stop?.();
    return this.finished;
  }
}

interface RunState {
  stderr: string;
  forks: { pid: number; parent: number }[];
  reader: StackDumpReader;
  /** Between a window line and its window_end: that window's dump. */
  window?: StackDumpReader;
  /** The kernel time of the open window's line, and of the last window handed over. */
  windowNs?: bigint;
  windowsEndNs?: bigint;
  /** The END line was seen: what follows is the map dump. */
  ended: boolean;
  readyNs: bigint | undefined;
  endNs: bigint | undefined;
  readyAt?: number;
  startedAt?: Date;
  firstSampleAt?: number;
  stop?: () => void;
}

function findBpftraceOrFail(explicit?: string): string {
  try {
    return findBpftrace(explicit);
  } catch (err) {
    throw new ProfileError("bpftrace_missing", "CPU profiling needs bpftrace on the agent's host, and it is not installed (apt-get install bpftrace)", { cause: err });
  }
}

function startError(stderr: string, code: number | null, signal: NodeJS.Signals | null): ProfileError {
  const msg = stderr
    .split("\n")
    .filter((l) => l.trim() && !/RLIMIT_MEMLOCK|^ERROR\s*:?\s*$/.test(l.trim()))
    .join("\n")
    .slice(0, 2000);
  if (/permission|not permitted/i.test(msg)) return new ProfileError("no_permission", `bpftrace may not load the profile program: ${msg}`);
  return new ProfileError("bpftrace_failed", `bpftrace exited (${signal ?? code}) before attaching its probes: ${msg || "no output"}`);
}
