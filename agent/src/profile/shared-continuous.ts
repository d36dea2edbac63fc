// One always-on CPU profiler for every service of an agent process: a single
// long-lived bpftrace (the program ContinuousProfiler runs) over the union of
// the services' process sets, instead of one bpftrace per service. Each view
// is one service's share and behaves as that service's own
// ContinuousProfiler would: every window dump is split by pid, each service
// gets its own part symbolized and cut to its top stacks, with its own
// counts. The program starts when the first view has a process, starts anew
// when a view's observed process changes, when a service joins or leaves
// with processes, after its lifetime, and with backoff after a failure; the
// last view to close stops it. Where eBPF cannot run, every view says so.
import { backoffMs } from "@coral/common/async";
import { processSet } from "../observe/process-tree.ts";
import { continuousSettings, topStacks, wakeableDelay, type ContinuousProfilerOptions, type ContinuousState, type ContinuousStatus, type ProfileWindowData } from "./continuous.ts";
import type { RawStack, StackDump } from "./dump.ts";
import { ProfileError } from "./errors.ts";
import { continuousProfileProgram } from "./program.ts";
import type { ProfilerLogger } from "./profiler.ts";
import { CpuSampler } from "./sampler.ts";
import { SetWatch } from "./set-watch.ts";
import { symbolizeStacks, type ProfileFrameData, type ProfileStackData } from "./symbolize.ts";
import type { SymbolCache } from "./symbols.ts";

/** What a service's agent uses; ContinuousProfiler already has this shape. */
export interface ContinuousProfile {
  start(): void;
  status(): ContinuousStatus;
  close(): Promise<void>;
}

export type SharedContinuousProfilerOptions = Omit<ContinuousProfilerOptions, "observedPid" | "onWindow" | "logger"> & { logger?: ProfilerLogger };

export interface ContinuousViewOptions {
  /** The pid of the process this service listens with, or null while there is none. */
  observedPid: () => number | null;
  /** Receives this service's windows with samples, in order; a rejection is logged and the profiler goes on. */
  onWindow: (w: ProfileWindowData) => Promise<void>;
  /** This service's logger (default: the shared profiler's). */
  logger?: ProfilerLogger;
}

const defaultMaxStacks = 500;
const defaultMaxFrames = 4000;
const waitingReason = "no process listens on the port yet";

/** A view's place in one program: its observed pid and process set when the program started. */
interface Member {
  root: number | null;
  pids: number[];
}

interface Program {
  members: Map<ContinuousView, Member>;
  /** Aborted to end the program early (a restart, a close). */
  readonly abort: AbortController;
  /** Resolves once the program has ended and its last windows were handed over. */
  readonly ended: Promise<void>;
  end: () => void;
  /** Looks at once whether the program must start anew (set once it runs). */
  recheck?: () => void;
}

/** A window's samples, with the views each of its pids belongs to (as they stood at the dump). */
interface AttributedWindow {
  stacks: RawStack[];
  owners: Map<number, readonly ContinuousView[]>;
  start: Date;
  end: Date;
}

export class SharedContinuousProfiler {
  readonly hz: number;
  readonly windowMs: number;
  private readonly lifetimeMs: number;
  private readonly checkMs: number;
  private readonly maxStacks: number;
  private readonly maxFrames: number;
  private readonly symbols: SymbolCache;
  /** Started views, until they have closed. */
  private readonly views = new Set<ContinuousView>();
  private programs = 0;
  /** Why eBPF cannot run here, once known: every view is off for this run of the agent. */
  private unavailable: string | undefined;
  private program: Program | undefined;
  private loop: Promise<void> | undefined;
  private closed = false;
  private wake: (() => void) | undefined;

  constructor(private readonly options: SharedContinuousProfilerOptions) {
    ({ hz: this.hz, windowMs: this.windowMs, lifetimeMs: this.lifetimeMs, checkMs: this.checkMs, symbols: this.symbols } = continuousSettings(options));
    this.maxStacks = options.maxStacks ?? defaultMaxStacks;
    this.maxFrames = options.maxFrames ?? defaultMaxFrames;
  }

  /** One service's share: the same behaviour as its own ContinuousProfiler would have. */
  view(options: ContinuousViewOptions): ContinuousProfile {
    return new ContinuousView(options, this.host);
  }

  /** Stops the shared program (every view's close() also works; the program stops when the last started view closes). */
  async close(): Promise<void> {
    this.closed = true;
    this.program?.abort.abort();
    this.wake?.();
    await this.loop;
    for (const v of this.views) v.stopped();
    this.views.clear();
  }

  /** What the views see of the shared profiler. */
  private readonly host: ViewHost = {
    join: (view) => this.join(view),
    leave: (view) => this.leave(view),
    status: (own) => ({
      ...own,
      ...(own.state !== "stopped" && this.unavailable !== undefined ? { state: "unavailable", reason: this.unavailable } : {}),
      hz: this.hz,
      windowMs: this.windowMs,
      programs: this.programs,
    }),
    cut: (frames, stacks) => topStacks(frames, stacks, this.maxStacks, this.maxFrames),
    hz: () => this.hz,
    logger: () => this.options.logger,
  };

  private join(view: ContinuousView): void {
    if (this.closed) return view.stopped();
    this.views.add(view);
    this.ensureLoop();
    this.program?.recheck?.();
  }

  /** A view closes: resolves once its last windows were handed over. */
  private async leave(view: ContinuousView): Promise<void> {
    const program = this.program;
    const member = program?.members.get(view);
    if (program && member && member.pids.length > 0) {
      // The program samples this service: end it for the last, partial window; the loop goes on without it.
      program.abort.abort();
      await program.ended;
    }
    this.views.delete(view);
    view.stopped();
    if (this.active().length === 0) this.wake?.();
  }

  private active(): ContinuousView[] {
    return [...this.views].filter((v) => !v.closing);
  }

  private ensureLoop(): void {
    if (this.loop || this.closed || this.unavailable !== undefined) return;
    this.loop = this.run().finally(() => {
      this.loop = undefined;
      // A view that started while the loop was ending.
      if (this.active().length > 0) this.ensureLoop();
    });
  }

  private async run(): Promise<void> {
    // Views started together (the agent starts its services one after another) make one first program, not one each.
    await new Promise<void>((resolve) => setImmediate(resolve));
    let failures = 0;
    while (!this.closed && this.active().length > 0) {
      const surveyed = await Promise.all(
        this.active().map(async (v): Promise<[ContinuousView, Member]> => {
          const root = v.observedPid();
          return [v, { root, pids: root ? await processSet(root).catch(() => []) : [] }];
        }),
      );
      // Views that closed meanwhile are left out; nothing awaits between here and the program's record.
      const members = new Map(surveyed.filter(([v]) => !v.closing));
      for (const [v, m] of members) if (m.pids.length === 0) v.set("waiting", waitingReason);
      const union = [...new Set([...members.values()].flatMap((m) => m.pids))];
      if (this.closed || union.length === 0) {
        await this.pause(this.checkMs);
        continue;
      }
      let end!: () => void;
      const ended = new Promise<void>((resolve) => (end = resolve));
      const program: Program = { members, abort: new AbortController(), ended, end };
      this.program = program;
      let failure: { err: unknown } | undefined;
      try {
        await this.profileSet(program, union);
      } catch (err) {
        failure = { err };
      } finally {
        // Ended before any backoff: a view that closes meanwhile need not wait for it.
        this.program = undefined;
        program.end();
      }
      if (!failure) {
        failures = 0;
        continue;
      }
      const { err } = failure;
      // Stopped before its probes were attached: a restart or a close, not a failure.
      if (program.abort.signal.aborted && err instanceof ProfileError && err.code === "cancelled") continue;
      if (err instanceof ProfileError && (err.code === "no_permission" || err.code === "bpftrace_missing")) {
        this.unavailable = err.message;
        const loggers = new Set([this.options.logger, ...[...this.views].map((v) => v.logger)]);
        for (const l of loggers) l?.warn({ err: err.message }, "always-on CPU profiler is off");
        return;
      }
      failures++;
      const waitMs = backoffMs(failures - 1, 1000, 60_000);
      const reason = `bpftrace failed (${failures} in a row), next attempt in ${Math.round(waitMs / 1000)} s: ${String(err instanceof Error ? err.message : err).slice(0, 300)}`;
      for (const [v, m] of members) if (m.pids.length > 0 && !v.closing) v.set("retrying", reason);
      this.options.logger?.warn({ failures, err: String(err) }, "always-on CPU profiler failed; retrying");
      await this.pause(waitMs);
    }
  }

  /** One program over the union of the members' sets, until its lifetime ends, a restart is due or the profiler closes. */
  private async profileSet(program: Program, union: number[]): Promise<void> {
    const { members } = program;
    const roots = new Set([...members.values()].flatMap((m) => (m.root === null ? [] : [m.root])));
    const bpf = continuousProfileProgram({ pids: union, hz: this.hz, windowMs: this.windowMs, lifetimeMs: this.lifetimeMs });
    const watch = new SetWatch(bpf.pids);
    // Which views each pid belongs to: every view whose set holds it (two services can share a process), and
    // for a process forked during the program, its parent's views.
    const owners = new Map<number, readonly ContinuousView[]>();
    for (const [v, m] of members) for (const p of m.pids) owners.set(p, [...(owners.get(p) ?? []), v]);
    let delivering: Promise<void> = Promise.resolve();
    const onWindow = (dump: StackDump, span: { start: Date; end: Date }) => {
      // Processes gone by now have no samples in later windows: forget them once this one is handed over.
      const gone = watch.gone().flatMap((p) => (roots.has(p) ? [] : [[p, owners.get(p)] as const]));
      const window = attribute(dump, owners, span);
      delivering = delivering
        .then(() => this.deliver(window, watch))
        .catch((err: unknown) => this.options.logger?.warn({ err: String(err) }, "could not keep a profile window"))
        .finally(() => {
          watch.forget(gone.map(([p]) => p));
          // Unless the pid was taken meanwhile by a new child of the set.
          for (const [p, o] of gone) if (owners.get(p) === o) owners.delete(p);
        });
    };
    const read = watch.readAll();
    const sampler = await CpuSampler.start({
      program: bpf,
      bpftracePath: this.options.bpftracePath,
      signal: program.abort.signal,
      onFork: (pid, parent) => {
        watch.forked(pid, parent);
        const o = owners.get(parent);
        if (o) owners.set(pid, o);
      },
      onWindow,
      overrunMs: 30_000,
    });
    this.programs++;
    for (const [v, m] of members) if (m.pids.length > 0 && !v.closing) v.set("running", "");
    this.options.logger?.info(
      { pids: union.length, services: [...members.values()].filter((m) => m.pids.length > 0).length, hz: this.hz, window_ms: this.windowMs },
      "always-on CPU profiler attached",
    );
    await read;
    watch.refreshEvery(2000);
    const recheck = () => {
      if (this.mustRestart(program)) program.abort.abort();
    };
    program.recheck = recheck;
    const check = setInterval(recheck, this.checkMs);
    recheck();
    try {
      const result = await sampler.result();
      // What was counted after the last full window (printed at exit).
      onWindow(result.dump, result.dumpSpan);
      await delivering;
      if (result.end === "exited" && !program.abort.signal.aborted)
        throw new ProfileError("bpftrace_failed", `bpftrace stopped (exit ${result.exitCode}): ${result.stderr || "no output"}`);
    } finally {
      clearInterval(check);
      await watch.stop();
    }
  }

  /** A view's observed process changed, a service with a process joined, or one the program samples is leaving. */
  private mustRestart(program: Program): boolean {
    for (const v of this.views) {
      const m = program.members.get(v);
      if (!m) {
        if (!v.closing && v.observedPid() !== null) return true;
      } else if (v.closing) {
        if (m.pids.length > 0) return true;
      } else if (v.observedPid() !== m.root) return true;
    }
    return false;
  }

  /** Symbolizes the window once, then hands each view its own stacks. */
  private async deliver(window: AttributedWindow, watch: SetWatch): Promise<void> {
    if (window.stacks.length === 0) return;
    const symbolized = await symbolizeStacks(window.stacks, watch.mappings, this.symbols);
    const parts = new Map<ContinuousView, ProfileStackData[]>();
    for (const s of symbolized.stacks)
      for (const v of window.owners.get(s.pid) ?? []) {
        const part = parts.get(v);
        if (part) part.push(s);
        else parts.set(v, [s]);
      }
    await Promise.all([...parts].map(([v, stacks]) => v.deliver(symbolized.frames, stacks, window.start, window.end)));
  }

  private pause(ms: number): Promise<void> {
    if (this.closed || this.active().length === 0) return Promise.resolve();
    return wakeableDelay(ms, (wake) => (this.wake = wake));
  }
}

/**
 * The stacks of `dump` that belong to a view, with their views. The dump
 * counts two kinds of samples it cannot say the pid of: entries it set aside
 * (malformed: only their count is read) and the difference between @samples
 * and what @stacks holds (stacks the full map dropped). Those go to no view:
 * each view's totalSamples counts only samples known to be its own.
 */
function attribute(dump: StackDump, owners: ReadonlyMap<number, readonly ContinuousView[]>, span: { start: Date; end: Date }): AttributedWindow {
  const stacks: RawStack[] = [];
  const of = new Map<number, readonly ContinuousView[]>();
  for (const s of dump.stacks) {
    const views = owners.get(s.pid);
    if (!views) continue;
    stacks.push(s);
    of.set(s.pid, views);
  }
  return { stacks, owners: of, start: span.start, end: span.end };
}

/** What a view sees of its shared profiler. */
interface ViewHost {
  join(view: ContinuousView): void;
  leave(view: ContinuousView): Promise<void>;
  /** The view's status from its own part of it. */
  status(own: Pick<ContinuousStatus, "state" | "reason" | "windows" | "lastWindowAt">): ContinuousStatus;
  /** The top stacks of a window, as every view's window is cut. */
  cut(frames: readonly ProfileFrameData[], stacks: readonly ProfileStackData[]): { frames: ProfileFrameData[]; stacks: ProfileStackData[] };
  hz(): number;
  logger(): ProfilerLogger | undefined;
}

class ContinuousView implements ContinuousProfile {
  readonly observedPid: () => number | null;
  /** close() was called: the view takes part in no new program. */
  closing: Promise<void> | undefined;
  private started = false;
  private state: ContinuousState = "waiting";
  private reason = waitingReason;
  private windows = 0;
  private lastWindowAt: Date | undefined;

  constructor(
    private readonly options: ContinuousViewOptions,
    private readonly host: ViewHost,
  ) {
    this.observedPid = options.observedPid;
  }

  get logger(): ProfilerLogger | undefined {
    return this.options.logger ?? this.host.logger();
  }

  /** Starts profiling this service whenever it has a process (idempotent). */
  start(): void {
    if (this.started || this.closing) return;
    this.started = true;
    this.host.join(this);
  }

  status(): ContinuousStatus {
    return this.host.status({ state: this.state, reason: this.reason, windows: this.windows, lastWindowAt: this.lastWindowAt });
  }

  /** Leaves the shared program (which goes on for the other views); resolves once this service's last, partial window has been handed over. */
  close(): Promise<void> {
    this.closing ??= this.started ? this.host.leave(this) : Promise.resolve(this.stopped());
    return this.closing;
  }

  set(state: ContinuousState, reason: string): void {
    if (this.state === "stopped") return;
    this.state = state;
    this.reason = reason;
  }

  /** No more windows. */
  stopped(): void {
    this.set("stopped", "the agent is stopping");
  }

  /** This service's part of a window (stacks of its pids only): cut to its top stacks and handed over. */
  async deliver(frames: readonly ProfileFrameData[], stacks: readonly ProfileStackData[], start: Date, end: Date): Promise<void> {
    if (this.state === "stopped") return;
    const totalSamples = stacks.reduce((n, s) => n + s.samples, 0);
    if (totalSamples === 0) return;
    const top = this.host.cut(frames, stacks);
    const kept = top.stacks.reduce((n, s) => n + s.samples, 0);
    this.windows++;
    this.lastWindowAt = end;
    try {
      await this.options.onWindow({
        start,
        durationMs: Math.max(0, end.getTime() - start.getTime()),
        hz: this.host.hz(),
        frames: top.frames,
        stacks: top.stacks,
        totalSamples,
        otherSamples: totalSamples - kept,
      });
    } catch (err) {
      this.logger?.warn({ err: String(err) }, "could not keep a profile window");
    }
  }
}
