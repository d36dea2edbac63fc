// CPU profiles of Node processes through the V8 inspector (inspector.ts):
// V8's own sampler gives JavaScript function names, which an eBPF stack walk
// of the JIT's code cannot. Its profile (a call tree, and the tree node of
// each sample) becomes the same frames and root-first stacks as eBPF's, and
// merge() joins the two into one frame table.
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { ProfileError } from "./errors.ts";
import { openInspector, type InspectorOptions } from "./inspector.ts";
import type { ProfileFrameData, ProfileStackData } from "./symbolize.ts";

/** Runtime.CallFrame of the Chrome DevTools Protocol, as the CPU and sampling heap profiles give it. */
export interface V8CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface V8Node {
  id: number;
  callFrame: V8CallFrame;
  children?: number[];
}

/** Profiler.Profile of the Chrome DevTools Protocol (times in µs). */
export interface V8Profile {
  nodes: V8Node[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface FramesAndStacks {
  frames: ProfileFrameData[];
  stacks: ProfileStackData[];
}

export interface NodeCpuProfile extends FramesAndStacks {
  pid: number;
  /** Samples on a CPU (the idle ones left out). */
  samples: number;
  /** Samples V8 took while the thread waited in the event loop: not CPU time, so left out. */
  idleSamples: number;
  startedAt: Date;
  sampledMs: number;
  /** Something about the inspector a person should know (it stayed open), or "". */
  problem: string;
}

/** Where a V8 frame's code is: the script's path, a "node:" module, or "[v8]" for V8's own entries ("(program)", "(garbage collector)"). */
function moduleOf(url: string): string {
  if (url.startsWith("file://")) {
    try {
      return fileURLToPath(url);
    } catch {
      return url;
    }
  }
  return url || "[v8]";
}

/** A frame table of V8 call frames: one frame per script (or "[v8]") and function name. */
export function v8FrameTable(): { frames: ProfileFrameData[]; frameId: (cf: V8CallFrame) => number } {
  const frames: ProfileFrameData[] = [];
  const frameIds = new Map<string, number>();
  const frameId = (cf: V8CallFrame): number => {
    // Anonymous functions keep their place, so two of them in a file stay apart.
    const fn = cf.functionName || (cf.lineNumber >= 0 ? `(anonymous:${cf.lineNumber + 1}:${cf.columnNumber + 1})` : "(anonymous)");
    const module = moduleOf(cf.url);
    const key = `${module}\0${fn}`;
    let id = frameIds.get(key);
    if (id === undefined) {
      id = frames.length;
      frames.push({ function: fn, module, kernel: false });
      frameIds.set(key, id);
    }
    return id;
  };
  return { frames, frameId };
}

/** The V8 call tree's samples as frames and root-first stacks of `pid`, without the synthetic "(root)" and the "(idle)" samples. */
export function v8ProfileStacks(profile: V8Profile, pid: number): FramesAndStacks & { samples: number; idleSamples: number } {
  const parent = new Map<number, number>();
  const byId = new Map<number, V8Node>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const { frames, frameId } = v8FrameTable();
  const hits = new Map<number, number>();
  for (const s of profile.samples ?? []) hits.set(s, (hits.get(s) ?? 0) + 1);
  const stacks: ProfileStackData[] = [];
  let samples = 0;
  let idleSamples = 0;
  for (const [leaf, count] of hits) {
    const ids: number[] = [];
    for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) {
      const node = byId.get(id);
      if (!node || (parent.get(id) === undefined && node.callFrame.functionName === "(root)")) continue;
      ids.push(frameId(node.callFrame));
    }
    if (byId.get(leaf)?.callFrame.functionName === "(idle)") {
      idleSamples += count;
      continue;
    }
    if (ids.length === 0) continue;
    samples += count;
    stacks.push({ frameIds: ids.reverse(), samples: count, pid });
  }
  return { frames, stacks, samples, idleSamples };
}

/** Joins frame tables (one frame per kernel/module/function) and their stacks, most samples first. */
export function mergeStacks(parts: readonly FramesAndStacks[]): FramesAndStacks {
  const frames: ProfileFrameData[] = [];
  const ids = new Map<string, number>();
  const stacks: ProfileStackData[] = [];
  for (const part of parts) {
    const remap = part.frames.map((f) => {
      const key = `${f.kernel ? "k" : "u"}\0${f.module}\0${f.function}`;
      let id = ids.get(key);
      if (id === undefined) {
        id = frames.length;
        frames.push(f);
        ids.set(key, id);
      }
      return id;
    });
    for (const s of part.stacks) stacks.push({ ...s, frameIds: s.frameIds.map((i) => remap[i]!) });
  }
  return { frames, stacks: stacks.sort((a, b) => b.samples - a.samples) };
}

export interface ProfileNodeOptions extends InspectorOptions {
  /** Start sampling once this settles (the eBPF probes attached), so both cover the same time. */
  startWhen?: Promise<unknown>;
}

/**
 * Profiles one Node process through its inspector for `durationMs`; an abort
 * of `signal` ends the profile early with what was taken (before sampling
 * began: throws "cancelled"). The inspector is closed on every path; throws
 * "inspector_failed" when it cannot be used.
 */
export async function profileNode(pid: number, params: { hz: number; durationMs: number }, signal: AbortSignal, options: ProfileNodeOptions = {}): Promise<NodeCpuProfile> {
  const session = await openInspector(pid, options);
  let profile: V8Profile;
  let startedAt: Date;
  try {
    await session.send("Profiler.enable");
    await session.send("Profiler.setSamplingInterval", { interval: Math.max(1, Math.round(1e6 / params.hz)) });
    if (options.startWhen) await Promise.race([options.startWhen.catch(() => undefined), aborted(signal)]);
    if (signal.aborted) throw new ProfileError("cancelled", "the profile was cancelled before it started");
    await session.send("Profiler.start");
    startedAt = new Date();
    await sleep(params.durationMs, undefined, { signal }).catch(() => undefined);
    profile = (await session.send<{ profile: V8Profile }>("Profiler.stop")).profile;
    await session.send("Profiler.disable").catch(() => undefined);
  } catch (err) {
    if (!session.openedByUs) await session.send("Profiler.stop").catch(() => undefined); // a debugger's inspector: leave no profiler running in it
    await session.close();
    if (err instanceof ProfileError) throw err;
    throw new ProfileError("inspector_failed", `the V8 profile of process ${pid} failed: ${String(err)}`, { cause: err });
  }
  const problem = await session.close();
  const converted = v8ProfileStacks(profile, pid);
  return { pid, ...converted, startedAt, sampledMs: Math.round((profile.endTime - profile.startTime) / 1000), problem };
}

function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener("abort", () => resolve(), { once: true })));
}
