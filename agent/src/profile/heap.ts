// Heap profiles on demand. Go services that serve net/http/pprof are asked
// for /debug/pprof/heap over the agent's loopback (a snapshot: nothing is
// attached to the process); Node processes are refused for now.
import { readlink } from "node:fs/promises";
import http from "node:http";
import { basename } from "node:path";
import { ProfileError } from "./errors.ts";
import { decodeGoHeap, NotAHeapProfile, type HeapStackData } from "./heap-pprof.ts";
import { readComm } from "./maps.ts";
import type { ProfilerLogger } from "./profiler.ts";
import type { ProfileFrameData } from "./symbolize.ts";

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
    const port = req.pprofPort || this.#opts.servicePort();
    if (!req.pprofPort && (await isNode(pid)))
      throw new ProfileError("unsupported", `Node heap profiles: not built yet (pid ${pid} runs node); heap profiles work for Go services that serve net/http/pprof`);
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
}
