// Heap profiles on demand. Go services that serve net/http/pprof are asked
// for /debug/pprof/heap over the agent's loopback (a snapshot: nothing is
// attached to the process). Node processes go through their V8 inspector
// (opened with SIGUSR1 on loopback and closed after, as for CPU profiles):
// V8's sampling heap profiler runs for the request's duration, and what the
// allocations it sampled still hold at the end becomes the in-use columns.
import { access, readlink } from "node:fs/promises";
import http from "node:http";
import { basename } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ProfileError } from "./errors.ts";
import { decodeGoHeap, NotAHeapProfile, type HeapStackData } from "./heap-pprof.ts";
import { openInspector } from "./inspector.ts";
import { readComm } from "./maps.ts";
import type { ProfilerLogger } from "./profiler.ts";
import type { ProfileFrameData } from "./symbolize.ts";
import { v8FrameTable, type V8CallFrame } from "./v8-profile.ts";

export type { HeapStackData } from "./heap-pprof.ts";

export const HEAP_LIMITS = {
  maxDurationMs: 300_000,
  defaultDurationMs: 10_000,
  minSamplingIntervalBytes: 1024,
  maxSamplingIntervalBytes: 16 * 1024 * 1024,
  defaultSamplingIntervalBytes: 512 * 1024,
  maxPort: 65_535,
} as const;

export interface HeapParameters {
  durationMs: number;
  samplingIntervalBytes: number;
  /** 0 = the service's own port. */
  pprofPort: number;
}

/** The request's parameters with defaults for 0, or what is wrong with them (the field named as in the proto). */
export function heapParameters(req: { durationMs?: number; samplingIntervalBytes?: number; pprofPort?: number }): HeapParameters | { error: string } {
  const durationMs = req.durationMs || HEAP_LIMITS.defaultDurationMs;
  const interval = req.samplingIntervalBytes || HEAP_LIMITS.defaultSamplingIntervalBytes;
  const pprofPort = req.pprofPort ?? 0;
  if (!Number.isSafeInteger(durationMs) || durationMs < 1 || durationMs > HEAP_LIMITS.maxDurationMs)
    return { error: `duration_ms: at most ${HEAP_LIMITS.maxDurationMs / 60_000} minutes (got ${Math.round(durationMs / 1000)}s)` };
  if (!Number.isSafeInteger(interval) || interval < HEAP_LIMITS.minSamplingIntervalBytes || interval > HEAP_LIMITS.maxSamplingIntervalBytes)
    return { error: `sampling_interval_bytes: must be from ${HEAP_LIMITS.minSamplingIntervalBytes} to ${HEAP_LIMITS.maxSamplingIntervalBytes} (got ${interval})` };
  if (!Number.isSafeInteger(pprofPort) || pprofPort < 0 || pprofPort > HEAP_LIMITS.maxPort)
    return { error: `pprof_port: must be a port from 1 to ${HEAP_LIMITS.maxPort}, or 0 for the service's own port (got ${pprofPort})` };
  return { durationMs, samplingIntervalBytes: interval, pprofPort };
}

export interface HeapProfileRequest extends HeapParameters {
  label: string;
}

export interface HeapProfileData {
  frames: ProfileFrameData[];
  stacks: HeapStackData[];
  takenAt: Date;
  durationMs: number;
  method: string;
  note: string;
  pids: number[];
  processNames: Map<number, string>;
  samplingIntervalBytes: number;
}

export interface HeapProfilerOptions {
  /** The pid of the process this agent observes, or null while there is none. */
  observedPid: () => number | null;
  /** The port the service listens on (where /debug/pprof usually is too). */
  servicePort: () => number;
  /** How long the pprof endpoint may take (default 30 s: a forced GC of a large heap is slow). */
  fetchTimeoutMs?: number;
  /** Larger bodies are refused (default 64 MiB). */
  maxBodyBytes?: number;
  logger?: ProfilerLogger;
  /** How long a Node process's inspector may take to listen after SIGUSR1 (default 10 s: there is no fallback, and a loaded machine can take seconds). */
  inspectorOpenTimeoutMs?: number;
}

/** HeapProfiler.SamplingHeapProfileNode of the Chrome DevTools Protocol. */
export interface V8HeapNode {
  callFrame: V8CallFrame;
  /** Bytes the allocations sampled at this node (not its children) still hold, scaled by V8 to estimate all of them. */
  selfSize: number;
  id: number;
  children?: V8HeapNode[];
}

/** HeapProfiler.SamplingHeapProfile: the allocation tree, and each live sampled allocation (its size and node). */
export interface V8HeapProfile {
  head: V8HeapNode;
  samples?: { size: number; nodeId: number; ordinal: number }[];
}

/**
 * V8's sampling heap profile as heap stacks of `pid`, root first, without the
 * synthetic "(root)": in-use bytes are the nodes' selfSize; in-use objects are
 * estimated from the live samples as V8 scales them (a sample of `size` bytes
 * stands for 1 / (1 − e^(−size/interval)) objects), as Go estimates its own;
 * nothing about allocations that were collected (alloc columns 0).
 */
export function v8HeapStacks(profile: V8HeapProfile, pid: number, samplingIntervalBytes: number): { frames: ProfileFrameData[]; stacks: HeapStackData[]; objectsKnown: boolean } {
  const { frames, frameId } = v8FrameTable();
  const objectsKnown = Array.isArray(profile.samples);
  const objects = new Map<number, number>();
  for (const s of profile.samples ?? []) objects.set(s.nodeId, (objects.get(s.nodeId) ?? 0) + 1 / (1 - Math.exp(-s.size / samplingIntervalBytes)));
  const byPath = new Map<string, HeapStackData>();
  // Depth first without recursion: an allocation tree can be deeper than the stack allows.
  const todo: { node: V8HeapNode; path: number[] }[] = [{ node: profile.head, path: [] }];
  for (let next = todo.pop(); next; next = todo.pop()) {
    const { node, path } = next;
    const isRoot = node === profile.head && node.callFrame.functionName === "(root)";
    const here = isRoot ? path : [...path, frameId(node.callFrame)];
    const bytes = Math.round(node.selfSize);
    if (bytes > 0 && here.length > 0) {
      const key = here.join(",");
      const stack = byPath.get(key) ?? { frameIds: here, inuseBytes: 0, inuseObjects: 0, allocBytes: 0, allocObjects: 0, pid };
      stack.inuseBytes += bytes;
      stack.inuseObjects += Math.round(objects.get(node.id) ?? 0);
      byPath.set(key, stack);
    }
    for (const c of node.children ?? []) todo.push({ node: c, path: here });
  }
  const stacks = [...byPath.values()].sort((a, b) => b.inuseBytes - a.inuseBytes);
  return { frames, stacks, objectsKnown };
}

/** Whether the process runs Node (its executable, else its command name). */
async function isNode(pid: number): Promise<boolean> {
  const exe = await readlink(`/proc/${pid}/exe`).catch(() => "");
  const name = basename(exe.replace(/ \(deleted\)$/, "")) || ((await readComm(pid)) ?? "");
  return /^node(js)?(\d+)?$/.test(name);
}

/** The body of a GET, at most `max` bytes; ProfileErrors a person can act on. A fresh connection each time (no stale keep-alive socket). */
function fetchCapped(url: string, max: number, signal: AbortSignal): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, signal }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > max) {
          req.destroy();
          reject(new ProfileError("pprof_failed", `the heap profile from ${url} is larger than ${Math.round(max / 1024 / 1024)} MiB`));
        } else chunks.push(chunk);
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", (err: NodeJS.ErrnoException) => {
      if (signal.aborted) reject(signal.reason);
      else reject(new ProfileError("no_pprof", `nothing answers on ${new URL(url).host}: ${err.code ?? err.message}`));
    });
  });
}

export class HeapProfiler {
  readonly #opts: HeapProfilerOptions;

  constructor(options: HeapProfilerOptions) {
    this.#opts = options;
  }

  async profile(req: HeapProfileRequest, signal?: AbortSignal): Promise<HeapProfileData> {
    const pid = this.#opts.observedPid();
    if (pid === null) throw new ProfileError("no_process", "no process to profile: nothing listens on the service's port yet");
    if (!(await access(`/proc/${pid}`).then(() => true, () => false))) throw new ProfileError("process_exited", `the service's process ${pid} exited; nothing to profile until a new one listens on the port`);
    const port = req.pprofPort || this.#opts.servicePort();
    if (!req.pprofPort && (await isNode(pid))) return this.#profileNode(pid, req, signal);
    const takenAt = new Date();
    const timeout = AbortSignal.timeout(this.#opts.fetchTimeoutMs ?? 30_000);
    const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
    // gc=1: the in-use numbers are those of the last GC; force one so they are current.
    const url = `http://127.0.0.1:${port}/debug/pprof/heap?gc=1`;
    const hint = req.pprofPort ? "" : " — start net/http/pprof on the service's port (import _ \"net/http/pprof\") or pass --pprof-port";
    let res;
    try {
      res = await fetchCapped(url, this.#opts.maxBodyBytes ?? 64 * 1024 * 1024, both);
    } catch (err) {
      if (signal?.aborted) throw new ProfileError("cancelled", "the heap profile was cancelled", { cause: err });
      if (timeout.aborted) throw new ProfileError("pprof_failed", `${url} did not answer in ${Math.round((this.#opts.fetchTimeoutMs ?? 30_000) / 1000)}s`, { cause: err });
      if (err instanceof ProfileError && err.code === "no_pprof") throw new ProfileError("no_pprof", `${err.message}${hint || " (--pprof-port should name where net/http/pprof listens)"}`);
      throw err;
    }
    if (res.status !== 200) throw new ProfileError("no_pprof", `nothing serves /debug/pprof/heap on 127.0.0.1:${port} (HTTP ${res.status})${hint}`);
    let decoded;
    try {
      decoded = decodeGoHeap(res.body, pid);
    } catch (err) {
      if (err instanceof NotAHeapProfile) throw new ProfileError("no_pprof", `127.0.0.1:${port}/debug/pprof/heap answered, but ${err.message}${hint}`);
      throw err;
    }
    this.#opts.logger?.info({ pid, port, stacks: decoded.stacks.length, label: req.label }, "heap profile taken");
    const notes: string[] = [];
    if (req.samplingIntervalBytes !== HEAP_LIMITS.defaultSamplingIntervalBytes)
      notes.push("Go samples at its own rate (runtime.MemProfileRate); sampling_interval_bytes applies to Node only.");
    if (decoded.stacks.length === 0) notes.push("The profile has no samples: the process has allocated little since it started.");
    return {
      frames: decoded.frames,
      stacks: decoded.stacks,
      takenAt,
      // A snapshot: the duration does not apply.
      durationMs: 0,
      method: "pprof",
      note: notes.join(" "),
      pids: [pid],
      processNames: new Map([[pid, (await readComm(pid)) ?? ""]]),
      samplingIntervalBytes: decoded.samplingIntervalBytes,
    };
  }

  /** V8's sampling heap profiler through the process's inspector for req.durationMs; the inspector is closed on every path. */
  async #profileNode(pid: number, req: HeapProfileRequest, signal?: AbortSignal): Promise<HeapProfileData> {
    const interval = req.samplingIntervalBytes;
    if (signal?.aborted) throw new ProfileError("cancelled", "the heap profile was cancelled");
    let session;
    try {
      session = await openInspector(pid, { openTimeoutMs: this.#opts.inspectorOpenTimeoutMs ?? 10_000 });
    } catch (err) {
      if (err instanceof ProfileError && err.code === "inspector_failed")
        throw new ProfileError("inspector_failed", `${err.message}; Node heap profiles need it (a Go service's net/http/pprof can be named with --pprof-port)`, { cause: err });
      throw err;
    }
    let profile: V8HeapProfile;
    let takenAt: Date;
    let sampledMs: number;
    let sampling = false;
    try {
      await session.send("HeapProfiler.enable");
      await session.send("HeapProfiler.startSampling", { samplingInterval: interval });
      sampling = true;
      takenAt = new Date();
      const started = performance.now();
      await sleep(req.durationMs, undefined, signal ? { signal } : {}).catch(() => undefined);
      if (signal?.aborted) throw new ProfileError("cancelled", "the heap profile was cancelled");
      sampledMs = Math.round(performance.now() - started);
      // The sampled objects that garbage still holds go with a full GC, so what is left is what is live (Go's gc=1).
      await session.send("HeapProfiler.collectGarbage");
      profile = (await session.send<{ profile: V8HeapProfile }>("HeapProfiler.stopSampling")).profile;
      sampling = false;
      await session.send("HeapProfiler.disable").catch(() => undefined);
    } catch (err) {
      // A debugger's inspector stays open: leave no sampling running in it.
      if (sampling && !session.openedByUs) await session.send("HeapProfiler.stopSampling").catch(() => undefined);
      await session.close();
      if (err instanceof ProfileError) throw err;
      throw new ProfileError("inspector_failed", `the V8 heap profile of process ${pid} failed: ${String(err)}`, { cause: err });
    }
    const problem = await session.close();
    const converted = v8HeapStacks(profile, pid, interval);
    this.#opts.logger?.info({ pid, method: "v8-inspector", stacks: converted.stacks.length, sampled_ms: sampledMs, label: req.label, ...(problem ? { problem } : {}) }, "heap profile taken");
    const notes = [
      `V8 sampled allocations for ${(sampledMs / 1000).toFixed(1)} s (about one per ${formatInterval(interval)}): in use is what those allocations still held after a full GC at the end; memory allocated before the profile started is not seen, and V8 does not report what was allocated and freed (the alloc columns are 0).`,
    ];
    if (!converted.objectsKnown) notes.push("This Node did not list the samples, so object counts are unknown (0).");
    if (converted.stacks.length === 0) notes.push("No sampled allocation was still live at the end: the process allocated little, or only short-lived objects, while it was profiled.");
    if (problem) notes.push(`Process ${pid}: ${problem}.`);
    return {
      frames: converted.frames,
      stacks: converted.stacks,
      takenAt,
      durationMs: sampledMs,
      method: "v8-inspector",
      note: notes.join(" "),
      pids: [pid],
      processNames: new Map([[pid, (await readComm(pid)) ?? ""]]),
      samplingIntervalBytes: interval,
    };
  }
}

/** 524288 → "512 KiB". */
function formatInterval(bytes: number): string {
  return bytes % (1024 * 1024) === 0 ? `${bytes / 1024 / 1024} MiB` : bytes % 1024 === 0 ? `${bytes / 1024} KiB` : `${bytes} B`;
}
