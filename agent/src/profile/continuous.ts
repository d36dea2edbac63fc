// The always-on CPU profiler: one long-lived bpftrace over the observed
// process set at a low rate (19 Hz by default), dumped and cleared every
// window (a minute by default). Each window is symbolized on the agent, cut
// to its top stacks (the rest counted as other samples) and handed to
// onWindow, which stores it and queues it for the colony. A new program is
// started when the observed process changes, after the program's lifetime
// (which bounds what bpftrace's stack maps and our mapping history hold) and,
// with backoff, when bpftrace fails; where eBPF cannot run at all it says
// why once and stays off. On-demand profiles run their own program beside it.
import { backoffMs } from "@coral/common/async";
import { processSet } from "../observe/process-tree.ts";
import type { StackDump } from "./dump.ts";
import { ProfileError } from "./errors.ts";
import { CONTINUOUS_LIMITS, continuousProfileProgram, PROFILE_LIMITS } from "./program.ts";
import type { ProfilerLogger } from "./profiler.ts";
import { CpuSampler } from "./sampler.ts";
import { SetWatch } from "./set-watch.ts";
import { symbolizeStacks, type ProfileFrameData, type ProfileStackData } from "./symbolize.ts";
import { SymbolCache } from "./symbols.ts";

export interface ProfileWindowData {
  start: Date;
  durationMs: number;
  hz: number;
  frames: ProfileFrameData[];
  /** The window's top stacks, by samples. */
  stacks: ProfileStackData[];
  /** Every sample of the window, the stacks left out included. */
  totalSamples: number;
  /** Samples of the stacks left out. */
  otherSamples: number;
}

export interface ContinuousProfilerOptions {
  /** The pid of the process this agent observes, or null while there is none. */
  observedPid: () => number | null;
  /** Receives every window with samples, in order; a rejection is logged and the profiler goes on. */
  onWindow: (window: ProfileWindowData) => Promise<void>;
  /** Samples per second (default 19). */
  hz?: number;
  /** One window (default 60 s). */
  windowMs?: number;
  /** How long one bpftrace runs before the next one takes over (default 1 h). */
  lifetimeMs?: number;
  /** Stacks kept per window (default 500). */
  maxStacks?: number;
  /** Frames kept per window (default 4000): the colony takes at most 5000. */
  maxFrames?: number;
  bpftracePath?: string;
  /** Shared parsed symbol tables. */
  symbols?: SymbolCache;
  logger?: ProfilerLogger;
  /** How often the observed process is looked at (default 2 s). */
  checkMs?: number;
}

export type ContinuousState =
  /** Nothing listens on the port yet. */
  | "waiting"
  | "running"
  /** bpftrace failed; the next attempt comes after a backoff. */
  | "retrying"
  /** eBPF cannot run here (no permission, no bpftrace): off for this run of the agent. */
  | "unavailable"
  | "stopped";

export interface ContinuousStatus {
  state: ContinuousState;
  /** Why, for a person ("" while running). */
  reason: string;
  hz: number;
  windowMs: number;
  /** Windows handed to onWindow. */
  windows: number;
  /** Programs started. */
  programs: number;
  lastWindowAt: Date | undefined;
}

/** The profiler's settings with their defaults; a rate or window out of range is a RangeError saying what is allowed. */
export function continuousSettings(options: Pick<ContinuousProfilerOptions, "hz" | "windowMs" | "lifetimeMs" | "checkMs" | "symbols">) {
  const hz = options.hz ?? CONTINUOUS_LIMITS.defaultHz;
  const windowMs = options.windowMs ?? CONTINUOUS_LIMITS.defaultWindowMs;
  if (!Number.isSafeInteger(hz) || hz < PROFILE_LIMITS.minHz || hz > PROFILE_LIMITS.maxHz)
    throw new RangeError(`profile hz: must be from ${PROFILE_LIMITS.minHz} to ${PROFILE_LIMITS.maxHz} (got ${String(options.hz)})`);
  if (!Number.isSafeInteger(windowMs) || windowMs < CONTINUOUS_LIMITS.minWindowMs || windowMs > CONTINUOUS_LIMITS.maxWindowMs)
    throw new RangeError(`profile window: must be from ${CONTINUOUS_LIMITS.minWindowMs} ms to ${CONTINUOUS_LIMITS.maxWindowMs / 60_000} minutes (got ${String(options.windowMs)})`);
  return {
    hz,
    windowMs,
    lifetimeMs: options.lifetimeMs ?? CONTINUOUS_LIMITS.defaultLifetimeMs,
    checkMs: options.checkMs ?? 2000,
    symbols: options.symbols ?? new SymbolCache(),
  };
}

const defaultMaxStacks = 500;
const defaultMaxFrames = 4000;

export class ContinuousProfiler {
  readonly hz: number;
  readonly windowMs: number;
  private readonly lifetimeMs: number;
  private readonly checkMs: number;
  private readonly symbols: SymbolCache;
  private state: ContinuousState = "waiting";
  private reason = "no process listens on the port yet";
  private windows = 0;
  private programs = 0;
  private lastWindowAt: Date | undefined;
  private loop: Promise<void> | undefined;
  private closed = false;
  private readonly stopNow = new AbortController();
  private wake: (() => void) | undefined;

  constructor(private readonly options: ContinuousProfilerOptions) {
    ({ hz: this.hz, windowMs: this.windowMs, lifetimeMs: this.lifetimeMs, checkMs: this.checkMs, symbols: this.symbols } = continuousSettings(options));
  }

  /** Starts profiling whenever there is a process to profile (idempotent). */
  start(): void {
    this.loop ??= this.run();
  }

  status(): ContinuousStatus {
    return {
      state: this.state,
      reason: this.reason,
      hz: this.hz,
      windowMs: this.windowMs,
      windows: this.windows,
      programs: this.programs,
      lastWindowAt: this.lastWindowAt,
    };
  }

  /** Stops bpftrace; resolves once the last, partial window has been handed over. */
  async close(): Promise<void> {
    this.closed = true;
    this.stopNow.abort();
    this.wake?.();
    await this.loop;
    this.set("stopped", "the agent is stopping");
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.closed) {
      const root = this.options.observedPid();
      const pids = root ? await processSet(root).catch(() => []) : [];
      if (pids.length === 0) {
        this.set("waiting", "no process listens on the port yet");
        await this.pause(this.checkMs);
        continue;
      }
      try {
        await this.profileSet(root!, pids);
        failures = 0;
      } catch (err) {
        if (err instanceof ProfileError && (err.code === "no_permission" || err.code === "bpftrace_missing")) {
          this.set("unavailable", err.message);
          this.options.logger?.warn({ err: err.message }, "always-on CPU profiler is off");
          return;
        }
        failures++;
        const waitMs = backoffMs(failures - 1, 1000, 60_000);
        this.set("retrying", `bpftrace failed (${failures} in a row), next attempt in ${Math.round(waitMs / 1000)} s: ${String(err instanceof Error ? err.message : err).slice(0, 300)}`);
        this.options.logger?.warn({ failures, err: String(err) }, "always-on CPU profiler failed; retrying");
        await this.pause(waitMs);
      }
    }
  }

  /** One program over the set of `root`, until its lifetime ends, the observed process changes or the profiler closes. */
  private async profileSet(root: number, pids: number[]): Promise<void> {
    const program = continuousProfileProgram({ pids, hz: this.hz, windowMs: this.windowMs, lifetimeMs: this.lifetimeMs });
    const watch = new SetWatch(program.pids);
    // Windows are symbolized one after another, in order, while sampling goes on.
    let delivering: Promise<void> = Promise.resolve();
    const onWindow = (dump: StackDump, span: { start: Date; end: Date }) => {
      // Processes gone by now have no samples in later windows: forget them once this one is symbolized.
      const gone = watch.gone().filter((p) => p !== root);
      delivering = delivering
        .then(() => this.deliver(dump, span.start, span.end, watch))
        .catch((err: unknown) => this.options.logger?.warn({ err: String(err) }, "could not keep a profile window"))
        .finally(() => watch.forget(gone));
    };
    const read = watch.readAll();
    const sampler = await CpuSampler.start({
      program,
      bpftracePath: this.options.bpftracePath,
      signal: this.stopNow.signal,
      onFork: (pid, parent) => watch.forked(pid, parent),
      onWindow,
      overrunMs: 30_000,
    });
    this.programs++;
    this.set("running", "");
    this.options.logger?.info({ pid: root, pids: pids.length, hz: this.hz, window_ms: this.windowMs }, "always-on CPU profiler attached");
    await read;
    watch.refreshEvery(2000);
    // A new process on the port (a restart): end this program; the loop starts one for the new set.
    const rootCheck = setInterval(() => {
      if (this.options.observedPid() !== root) void sampler.stop();
    }, this.checkMs);
    try {
      const result = await sampler.result();
      // What was counted after the last full window (printed at exit).
      onWindow(result.dump, result.dumpSpan);
      await delivering;
      if (result.end === "exited" && !this.closed) throw new ProfileError("bpftrace_failed", `bpftrace stopped (exit ${result.exitCode}): ${result.stderr || "no output"}`);
    } finally {
      clearInterval(rootCheck);
      await watch.stop();
    }
  }

  private async deliver(dump: StackDump, start: Date, end: Date, watch: SetWatch): Promise<void> {
    if (dump.stacks.length === 0 && !dump.totalSamples) return;
    const symbolized = await symbolizeStacks(dump.stacks, watch.mappings, this.symbols);
    const top = topStacks(symbolized.frames, symbolized.stacks, this.options.maxStacks ?? defaultMaxStacks, this.options.maxFrames ?? defaultMaxFrames);
    const counted = symbolized.stacks.reduce((n, s) => n + s.samples, 0) + dump.setAside.samples;
    const totalSamples = Math.max(dump.totalSamples ?? 0, counted);
    const kept = top.stacks.reduce((n, s) => n + s.samples, 0);
    if (totalSamples === 0) return;
    this.windows++;
    this.lastWindowAt = end;
    await this.options.onWindow({
      start,
      durationMs: Math.max(0, end.getTime() - start.getTime()),
      hz: this.hz,
      frames: top.frames,
      stacks: top.stacks,
      totalSamples,
      otherSamples: totalSamples - kept,
    });
  }

  private set(state: ContinuousState, reason: string): void {
    this.state = state;
    this.reason = reason;
  }

  private pause(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return wakeableDelay(ms, (wake) => (this.wake = wake));
  }
}

/** Resolves after `ms`, or at once when the wake function handed to `onWake` is called (a close). */
export function wakeableDelay(ms: number, onWake: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      resolve();
    }
    onWake(done);
  });
}

/**
 * The stacks with the most samples, as many as fit in `maxStacks` and
 * `maxFrames`, with a frame table of only the frames they use.
 */
export function topStacks(
  frames: readonly ProfileFrameData[],
  stacks: readonly ProfileStackData[],
  maxStacks: number,
  maxFrames: number,
): { frames: ProfileFrameData[]; stacks: ProfileStackData[] } {
  const byCount = [...stacks].sort((a, b) => b.samples - a.samples);
  const keptFrames: ProfileFrameData[] = [];
  const newId = new Map<number, number>();
  const kept: ProfileStackData[] = [];
  for (const s of byCount) {
    if (kept.length >= maxStacks) break;
    const fresh = new Set(s.frameIds.filter((id) => !newId.has(id)));
    if (keptFrames.length + fresh.size > maxFrames) continue;
    for (const id of fresh) {
      newId.set(id, keptFrames.length);
      keptFrames.push(frames[id]!);
    }
    kept.push({ ...s, frameIds: s.frameIds.map((id) => newId.get(id)!) });
  }
  return { frames: keptFrames, stacks: kept };
}
