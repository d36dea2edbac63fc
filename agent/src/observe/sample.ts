/**
 * One resource sample of a process from /proc/<pid>/{stat,status,fd}.
 */
// procfs reads never block on disk: sync calls save the thread-pool round trip of each open/read/close.
import { readdirSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import {
  bootTimeSeconds,
  clockTicksPerSecond,
  isGone,
  isNoAccess,
  parseProcStat,
  parseStatusRssBytes,
  uptimeSeconds,
} from "./procfs.ts";

export interface ProcessSnapshot {
  pid: number;
  /** Command name (/proc/<pid>/stat field 2, at most 15 characters). */
  comm: string;
  /** Scheduler state letter (R, S, D, T, ...). */
  state: string;
  timestamp: Date;
  /**
   * CPU use in percent of ONE core (a busy 4-thread process can show 400).
   * With a usable `previous` sample this is the average over the interval
   * since it (`cpuBasis: "interval"`); otherwise the average over the
   * process's whole life (`cpuBasis: "lifetime"`).
   */
  cpuPercent: number;
  cpuBasis: "interval" | "lifetime";
  /** Cumulative user + system CPU time in milliseconds. */
  cpuTimeMs: number;
  /** Resident set size (VmRSS) in bytes. */
  rssBytes: number;
  /** Open file descriptors; null when /proc/<pid>/fd is not readable by the agent. */
  fdCount: number | null;
  threads: number;
  /** When the process started (boot time + stat field 22; whole-second precision). */
  startTime: Date;
}

/** What the next call needs to compute an interval CPU figure. Treat as opaque. */
export interface SampleState {
  pid: number;
  /** Start time in ticks after boot: tells a reused pid from the same process. */
  startTicks: number;
  /** utime + stime in ticks. */
  cpuTicks: number;
  /** Monotonic clock (performance.now()) when the sample was taken. */
  monotonicMs: number;
}

export interface ProcessSample {
  snapshot: ProcessSnapshot;
  state: SampleState;
}

/**
 * CPU percent of one core from a tick delta over an elapsed wall time.
 * Returns 0 for a non-positive interval. Pure.
 */
export function cpuPercent(deltaTicks: number, elapsedMs: number, ticksPerSecond: number): number {
  if (elapsedMs <= 0 || ticksPerSecond <= 0) return 0;
  const cpuMs = (Math.max(0, deltaTicks) / ticksPerSecond) * 1000;
  return (cpuMs / elapsedMs) * 100;
}

async function readProcFile(path: string): Promise<string | null> {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
}

/**
 * Samples `pid`. Pass the `state` of the previous sample of the same process
 * to get CPU over the interval; a state from a different process (pid reuse,
 * detected by start time) is ignored. Returns null if the process is gone
 * (including a zombie that has exited but not been reaped).
 */
export async function sampleProcess(pid: number, previous?: SampleState): Promise<ProcessSample | null> {
  const [hz, btime] = await Promise.all([clockTicksPerSecond(), bootTimeSeconds()]);
  const statText = await readProcFile(`/proc/${pid}/stat`);
  const monotonicMs = performance.now();
  const timestamp = new Date();
  if (statText === null) return null;
  const stat = parseProcStat(statText);
  if (!stat) throw new Error(`unexpected /proc/${pid}/stat: ${JSON.stringify(statText.slice(0, 200))}`);
  if (stat.state === "Z" || stat.state === "X") return null;

  const statusText = await readProcFile(`/proc/${pid}/status`);
  if (statusText === null) return null;

  let fdCount: number | null;
  try {
    fdCount = readdirSync(`/proc/${pid}/fd`).length;
  } catch (err) {
    if (isGone(err)) return null;
    if (!isNoAccess(err)) throw err;
    fdCount = null;
  }

  const cpuTicks = stat.utime + stat.stime;
  const state: SampleState = { pid, startTicks: stat.startTicks, cpuTicks, monotonicMs };
  let percent: number;
  let basis: ProcessSnapshot["cpuBasis"];
  if (previous && previous.pid === pid && previous.startTicks === stat.startTicks && monotonicMs > previous.monotonicMs) {
    percent = cpuPercent(cpuTicks - previous.cpuTicks, monotonicMs - previous.monotonicMs, hz);
    basis = "interval";
  } else {
    const aliveMs = ((await uptimeSeconds()) - stat.startTicks / hz) * 1000;
    percent = cpuPercent(cpuTicks, aliveMs, hz);
    basis = "lifetime";
  }

  return {
    snapshot: {
      pid,
      comm: stat.comm,
      state: stat.state,
      timestamp,
      cpuPercent: percent,
      cpuBasis: basis,
      cpuTimeMs: (cpuTicks / hz) * 1000,
      rssBytes: parseStatusRssBytes(statusText),
      fdCount,
      threads: stat.numThreads,
      startTime: new Date((btime + stat.startTicks / hz) * 1000),
    },
    state,
  };
}
