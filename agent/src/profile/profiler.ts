// On-demand CPU profiles of the process set this agent observes (the
// listener, its descendants, and the children they fork while the profile
// runs): one profile per process at a time, bpftrace sampling user and
// kernel stacks (sampler.ts), the processes' names and mappings kept as they
// change (set-watch.ts), then symbolized on the agent (symbolize.ts) into a
// frame table and stacks, with a note for a person when something limits the
// profile. Node processes of the set are profiled through their V8 inspector
// instead (v8-profile.ts), for JavaScript function names; eBPF still samples
// them, so that their forks are followed and their samples remain when the
// inspector cannot be used.
import { performance } from "node:perf_hooks";
import { processSet } from "../observe/process-tree.ts";
import { ProfileError } from "./errors.ts";
import { isFileMapping, type MappingHistory } from "./maps.ts";
import { profileParameters, profileProgram } from "./program.ts";
import { CpuSampler, type SamplerResult } from "./sampler.ts";
import { symbolizeStacks, type ProfileFrameData, type ProfileStackData, type SymbolizedStacks } from "./symbolize.ts";
import { SetWatch } from "./set-watch.ts";
import { SymbolCache } from "./symbols.ts";
import { isNodeProcess } from "./inspector.ts";
import { mergeStacks, profileNode, type NodeCpuProfile } from "./v8-profile.ts";

export interface CpuProfileRequest {
  /** 1..1000; 0 or absent = 99. */
  hz?: number;
  /** 1..300000; 0 or absent = 30000. */
  durationMs?: number;
  /** Who asked, for the agent's log. */
  label?: string;
  /** performance.now() when the request reached the agent (default: when profile() is called). */
  receivedAt?: number;
}

export interface CpuProfileData {
  frames: ProfileFrameData[];
  stacks: ProfileStackData[];
  totalSamples: number;
  hz: number;
  /** How long the program sampled. */
  durationMs: number;
  /** When the probes were attached. */
  startedAt: Date;
  /** The set at the start, then the children forked during the profile. */
  pids: number[];
  /** Where the samples come from: "ebpf", "v8-inspector" (V8's sampler, Node processes), or "ebpf+v8-inspector" when the set has both. */
  method: "ebpf" | "v8-inspector" | "ebpf+v8-inspector";
  /** Words for a person when something limits the profile; "" when nothing does. */
  note: string;
  processNames: Map<number, string>;
  /** From the request reaching the agent to the first sample (undefined when there was none). */
  firstSampleAfterMs: number | undefined;
  /** From the request reaching the agent to the probes being attached. */
  attachedAfterMs: number;
}

export interface ProfilerLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface CpuProfilerOptions {
  /** The pid of the process this agent observes, or null while there is none. */
  observedPid: () => number | null;
  bpftracePath?: string;
  /** Shared parsed symbol tables (default: one of the profiler's own). */
  symbols?: SymbolCache;
  /** How often the mappings of the set are read again while a profile runs (default 1000 ms). */
  mapsRefreshMs?: number;
  logger?: ProfilerLogger;
  /** Profile Node processes through their V8 inspector (default true). */
  inspector?: boolean;
  /** How long a Node process's inspector may take to listen after SIGUSR1 (default 3 s). */
  inspectorOpenTimeoutMs?: number;
}

interface Running {
  label: string;
  startedAt: number;
  durationMs: number;
  names: Map<number, string>;
}

/** Below this share of the samples one busy CPU would give, the set counts as idle. */
const idleShare = 0.05;
/** Above this share of one-frame user stacks, the binaries probably lack frame pointers. */
const shallowShare = 0.5;

export class CpuProfiler {
  private readonly running = new Map<number, Running>();
  private readonly active = new Set<{ abort: AbortController; done: Promise<unknown> }>();
  private readonly symbols: SymbolCache;
  private closed = false;

  constructor(private readonly options: CpuProfilerOptions) {
    this.symbols = options.symbols ?? new SymbolCache();
  }

  /** Samples the observed process set for the request's duration and returns the symbolized profile. */
  async profile(req: CpuProfileRequest, signal?: AbortSignal): Promise<CpuProfileData> {
    const receivedAt = req.receivedAt ?? performance.now();
    const params = profileParameters(req);
    if ("error" in params) throw new ProfileError("invalid_argument", params.error);
    if (this.closed) throw new ProfileError("cancelled", "the agent is stopping");
    const root = this.options.observedPid();
    if (!root) throw new ProfileError("no_process", "this agent observes no process yet (nothing listens on its port), so there is nothing to profile");
    const pids = await processSet(root);
    if (this.closed) throw new ProfileError("cancelled", "the agent is stopping");
    if (pids.length === 0) throw new ProfileError("process_exited", `the service's process ${root} exited; nothing to profile until a new one listens on the port`);
    this.refuseBusy(pids);

    const abort = new AbortController();
    const onAbort = () => abort.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    if (signal?.aborted) abort.abort();
    const run: Running = { label: req.label ?? "", startedAt: Date.now(), durationMs: params.durationMs, names: new Map() };
    for (const p of pids) this.running.set(p, run);
    const work = this.run(pids, params, run, receivedAt, abort.signal);
    const entry = { abort, done: work.catch(() => undefined) };
    this.active.add(entry);
    try {
      return await work;
    } catch (err) {
      this.options.logger?.warn({ label: run.label, code: err instanceof ProfileError ? err.code : "internal", err: String(err) }, "cpu profile failed");
      throw err;
    } finally {
      this.active.delete(entry);
      signal?.removeEventListener("abort", onAbort);
      for (const [p, r] of this.running) if (r === run) this.running.delete(p);
    }
  }

  /** Ends the running profiles (their callers get a cancelled error) and waits until bpftrace has exited. */
  async close(): Promise<void> {
    this.closed = true;
    const active = [...this.active];
    for (const a of active) a.abort.abort();
    await Promise.all(active.map((a) => a.done));
  }

  /** Processes under a profile now (tests, status). */
  get busyPids(): number[] {
    return [...this.running.keys()];
  }

  private refuseBusy(pids: readonly number[]): void {
    for (const p of pids) {
      const r = this.running.get(p);
      if (!r) continue;
      const ago = Math.round((Date.now() - r.startedAt) / 1000);
      const left = Math.max(0, Math.round((r.startedAt + r.durationMs - Date.now()) / 1000));
      throw new ProfileError(
        "busy",
        `a CPU profile of process ${namedPid(p, r.names)} is already running${r.label ? ` (${r.label})` : ""}, started ${ago}s ago with about ${left}s left: one CPU profile per process at a time`,
      );
    }
  }

  private async run(pids: number[], params: { hz: number; durationMs: number }, run: Running, receivedAt: number, signal: AbortSignal): Promise<CpuProfileData> {
    const program = profileProgram({ pids, ...params });
    const watch = new SetWatch(program.pids);
    run.names = watch.names;
    const onFork = (pid: number, parent: number) => {
      this.running.set(pid, run);
      watch.forked(pid, parent);
    };
    // bpftrace's start is the slow part: launch it first, read the set while it attaches.
    const starting = CpuSampler.start({ program, bpftracePath: this.options.bpftracePath, signal, onFork });
    const initialRead = watch.readAll();
    // The Node processes' inspectors open and sample meanwhile; each settles to its profile or why it failed.
    const nodePids = new Set(this.options.inspector === false ? [] : program.pids.filter(isNodeProcess));
    const inspectAbort = new AbortController();
    const stopInspecting = () => inspectAbort.abort();
    signal.addEventListener("abort", stopInspecting, { once: true });
    const inspections = Promise.all(
      [...nodePids].map((pid) =>
        profileNode(pid, params, inspectAbort.signal, { openTimeoutMs: this.options.inspectorOpenTimeoutMs, startWhen: starting }).then(
          (profile): Inspection => ({ pid, profile }),
          (err: unknown): Inspection => ({ pid, error: err instanceof Error ? err.message : String(err) }),
        ),
      ),
    ).finally(() => signal.removeEventListener("abort", stopInspecting));
    let sampler: CpuSampler;
    try {
      sampler = await starting;
    } catch (err) {
      inspectAbort.abort();
      await Promise.all([watch.stop(), inspections]);
      const root = pids[0]!;
      if (err instanceof ProfileError && err.code === "bpftrace_failed" && watch.gone().includes(root))
        throw new ProfileError("process_exited", `the service's process ${namedPid(root, watch.names)} exited before the profile started`, { cause: err });
      throw err;
    }
    // Parse the symbol tables of what is mapped while the profile runs (the
    // symbolizer shares the loads under way); read the set again now and then.
    let sampling = true;
    void initialRead.then(() => this.warmSymbols(watch.pids.filter((p) => !nodePids.has(p)), watch.mappings, () => sampling)).catch(() => undefined);
    watch.refreshEvery(this.options.mapsRefreshMs ?? 1000);
    let result: SamplerResult;
    let inspected: Inspection[];
    let fullLength = false;
    try {
      result = await sampler.result();
      fullLength = result.end === "duration";
    } finally {
      sampling = false;
      // bpftrace ended (its duration, or early): the inspectors' profiles end with it, give or take their start.
      const ended = setTimeout(stopInspecting, fullLength ? 2000 : 0);
      inspected = await inspections;
      clearTimeout(ended);
      await watch.stop();
    }
    if (signal.aborted) throw new ProfileError("cancelled", this.closed ? "the agent is stopping: the profile was cut short" : "the profile was cancelled");
    const gone = watch.gone();
    await watch.readAll();
    const byInspector = new Map(inspected.flatMap((i) => (i.profile ? [[i.pid, i.profile] as const] : [])));
    if (byInspector.size === 0 && result.end === "exited" && result.dump.totalSamples === undefined && result.dump.stacks.length === 0)
      throw new ProfileError("bpftrace_failed", `bpftrace stopped during the profile (exit ${result.exitCode}): ${result.stderr || "no output"}`);

    // eBPF's samples of a process the inspector profiled are the same time without JavaScript names.
    const symbolized = await symbolizeStacks(
      result.dump.stacks.filter((s) => !byInspector.has(s.pid)),
      watch.mappings,
      this.symbols,
    );
    const merged = mergeStacks([symbolized, ...byInspector.values()]);
    const totalSamples = merged.stacks.reduce((n, s) => n + s.samples, 0);
    const all = [...watch.pids];
    const method = byInspector.size === 0 ? "ebpf" : all.every((p) => byInspector.has(p)) ? "v8-inspector" : "ebpf+v8-inspector";
    const note = notes({ result, symbolized, totalSamples, ebpfSamples: result.dump.stacks.reduce((n, s) => n + s.samples, 0), hz: params.hz, pids: all, initial: program.pids, root: pids[0]!, gone, names: watch.names, inspected });
    // With V8's samples only, the profile's time is V8's.
    const v8 = method === "v8-inspector" ? byInspector.get(pids[0]!) : undefined;
    const profile: CpuProfileData = {
      frames: merged.frames,
      stacks: merged.stacks,
      totalSamples,
      hz: params.hz,
      durationMs: v8?.sampledMs ?? result.sampledMs,
      startedAt: v8?.startedAt ?? result.startedAt,
      pids: all,
      method,
      note,
      processNames: new Map(all.map((p) => [p, watch.names.get(p) ?? ""])),
      firstSampleAfterMs: result.firstSampleAt === undefined ? undefined : Math.round(result.firstSampleAt - receivedAt),
      attachedAfterMs: Math.round(result.readyAt - receivedAt),
    };
    this.options.logger?.info(
      {
        label: run.label,
        hz: params.hz,
        duration_ms: profile.durationMs,
        pids: all.length,
        samples: totalSamples,
        method,
        ...(inspected.some((i) => i.error) ? { inspector_failed: inspected.filter((i) => i.error).map((i) => `${i.pid}: ${i.error}`) } : {}),
        attached_after_ms: profile.attachedAfterMs,
        first_sample_after_ms: profile.firstSampleAfterMs,
        ...(result.dump.setAside.lines ? { set_aside_lines: result.dump.setAside.lines, examples: result.dump.setAside.examples } : {}),
      },
      "cpu profile taken",
    );
    return profile;
  }

  /** Parses the function tables of every executable file mapping, one file at a time while `go()` says so (the cache keeps them). */
  private async warmSymbols(pids: readonly number[], mappings: MappingHistory, go: () => boolean): Promise<void> {
    const seen = new Set<string>();
    for (const pid of pids)
      for (const m of mappings.all(pid)) {
        if (!go()) return;
        if (!m.perms.includes("x") || !isFileMapping(m) || seen.has(m.path)) continue;
        seen.add(m.path);
        await this.symbols.forMapping(pid, m);
      }
  }
}

/** One Node process's inspector profile, or why there is none (its eBPF samples stand instead). */
interface Inspection {
  pid: number;
  profile?: NodeCpuProfile;
  error?: string;
}

interface NoteInput {
  result: SamplerResult;
  symbolized: SymbolizedStacks;
  totalSamples: number;
  /** bpftrace's samples kept, those of processes the inspector profiled included. */
  ebpfSamples: number;
  hz: number;
  pids: readonly number[];
  /** The set at the start. */
  initial: readonly number[];
  root: number;
  gone: readonly number[];
  names: ReadonlyMap<number, string>;
  inspected: readonly Inspection[];
}

/** What limits the profile, in words; "" when nothing does. */
function notes(n: NoteInput): string {
  const out: string[] = [];
  const named = (p: number) => namedPid(p, n.names);
  const seconds = n.result.sampledMs / 1000;
  const oneCpu = n.hz * seconds;
  if (n.totalSamples === 0) out.push(`no samples: the ${n.pids.length === 1 ? "process" : `${n.pids.length} processes`} of the service did not run on a CPU during the ${seconds.toFixed(1)} s profile (idle)`);
  else if (n.totalSamples < idleShare * oneCpu)
    out.push(
      `few samples (${n.totalSamples} in ${seconds.toFixed(1)} s at ${n.hz} Hz): the service used about ${((100 * n.totalSamples) / oneCpu).toFixed(1)}% of one CPU, so the profile says little about where its time goes when busy`,
    );
  const shallow = [...n.symbolized.shallowSamples].sort((a, b) => b[1] - a[1]);
  const shallowTotal = shallow.reduce((s, [, c]) => s + c, 0);
  if (n.symbolized.userSamples >= 20 && shallowTotal >= shallowShare * n.symbolized.userSamples)
    out.push(
      `${Math.round((100 * shallowTotal) / n.symbolized.userSamples)}% of the samples have a user stack one frame deep (mostly in ${shallow[0]![0]}): it was probably built without frame pointers, so callers are missing; rebuild with -fno-omit-frame-pointer (C, C++) or -C force-frame-pointers=yes (Rust)`,
    );
  if (n.gone.includes(n.root)) out.push(`the service's process ${named(n.root)} exited during the profile; its samples up to then are kept`);
  const initial = new Set(n.initial);
  const others = n.gone.filter((p) => p !== n.root && initial.has(p));
  if (others.length > 0) out.push(`${others.length} other process${others.length === 1 ? "" : "es"} of the set exited during the profile (${list(others.map(named))})`);
  const forked = n.pids.length - initial.size;
  const forkedGone = n.gone.filter((p) => !initial.has(p)).length;
  if (forkedGone > 0) out.push(`${forked} process${forked === 1 ? " was" : "es were"} forked during the profile, ${forkedGone} of them exited before it ended`);
  const dump = n.result.dump;
  const kept = n.ebpfSamples + dump.setAside.samples;
  if (dump.totalSamples !== undefined && dump.totalSamples > kept)
    out.push(`${dump.totalSamples - kept} samples were taken but not kept (bpftrace's map of distinct stacks was full)`);
  if (dump.setAside.lines > 0) out.push(`${dump.setAside.lines} lines of bpftrace's output could not be read and were left out (${dump.setAside.samples} samples)`);
  if (n.symbolized.unreadable.size > 0) out.push(`no symbols for ${list([...n.symbolized.unreadable.values()])}`);
  if (n.result.end === "exited" && n.result.stderr) out.push(`bpftrace ended early: ${n.result.stderr.slice(0, 300)}`);
  out.push(...inspectorNotes(n.inspected, n.pids, named));
  return out.join("; ");
}

/** Which processes went through the V8 inspector, which fell back to eBPF and why, and what the inspector left out. */
function inspectorNotes(inspected: readonly Inspection[], pids: readonly number[], named: (p: number) => string): string[] {
  const out: string[] = [];
  const ok = inspected.filter((i) => i.profile);
  if (ok.length > 0) {
    const rest = pids.length - ok.length;
    out.push(
      `${ok.length === 1 ? "process" : "processes"} ${list(ok.map((i) => named(i.pid)))} profiled through the V8 inspector (JavaScript frames)${rest > 0 ? `, the other ${rest} through eBPF` : ""}`,
    );
  }
  for (const i of ok) {
    const p = i.profile!;
    if (p.idleSamples > 0) out.push(`${p.idleSamples} samples of ${named(i.pid)} waited in the event loop (idle, not CPU time) and are left out`);
    if (p.problem) out.push(`process ${named(i.pid)}: ${p.problem}`);
  }
  for (const i of inspected) if (i.error) out.push(`${i.error}; process ${named(i.pid)} was profiled through eBPF instead (no JavaScript function names)`);
  return out;
}

/** "123 (burn)", or "123" when the name is not known. */
function namedPid(pid: number, names: ReadonlyMap<number, string>): string {
  const name = names.get(pid);
  return name ? `${pid} (${name})` : String(pid);
}

function list(items: string[]): string {
  return items.length > 5 ? `${items.slice(0, 5).join(", ")}, … ${items.length} in all` : items.join(", ");
}
