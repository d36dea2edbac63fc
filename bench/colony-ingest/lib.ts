// Helpers for the colony ingest benchmark: percentiles, CPU accounting from
// /proc, machine facts, and plain-text tables.
import { execFile } from "node:child_process";
import { readFile, readdir } from "node:fs/promises";
import { availableParallelism, totalmem } from "node:os";
import { promisify } from "node:util";

// ---------------------------------------------------------------- percentiles

export interface LatencySummary {
  calls: number;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Nearest-rank percentile (p in 0..100) of an ascending array. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function summarize(samplesMs: readonly number[]): LatencySummary {
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const sum = sorted.reduce((s, v) => s + v, 0);
  return {
    calls: sorted.length,
    meanMs: round(sum / Math.max(1, sorted.length), 2),
    p50Ms: round(percentile(sorted, 50), 2),
    p95Ms: round(percentile(sorted, 95), 2),
    p99Ms: round(percentile(sorted, 99), 2),
    maxMs: round(sorted[sorted.length - 1] ?? NaN, 2),
  };
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

// ----------------------------------------------------------------------- CPU

const clockTicks = 100; // USER_HZ; 100 on every Linux this runs on

interface ProcStat {
  pid: number;
  ppid: number;
  comm: string;
  cpuTicks: number;
}

async function procStat(pid: number): Promise<ProcStat | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const close = stat.lastIndexOf(")");
    const rest = stat.slice(close + 2).split(" ");
    return { pid, ppid: Number(rest[1]), comm: stat.slice(stat.indexOf("(") + 1, close), cpuTicks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return undefined;
  }
}

/** Direct children of a process (Linux /proc; empty elsewhere). */
export async function childProcesses(parent: number): Promise<ProcStat[]> {
  const entries = await readdir("/proc").catch(() => [] as string[]);
  const stats = await Promise.all(entries.filter((e) => /^\d+$/.test(e)).map((e) => procStat(Number(e))));
  return stats.filter((s): s is ProcStat => s !== undefined && s.ppid === parent);
}

/** Busy CPU ticks of the whole machine, from /proc/stat. */
async function machineBusyTicks(): Promise<number> {
  const stat = await readFile("/proc/stat", "utf8").catch(() => "");
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = (stat.split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return user + nice + system + irq + softirq + steal;
}

export interface CpuSnapshot {
  at: number;
  /** This Node process (with its DuckDB threads), µs. */
  selfMicros: number;
  /** Other processes by label (nats-server, the publisher), ticks. */
  ticks: Record<string, number>;
  machineTicks: number;
}

/** Cores busy on average over a window, by process; "other" is the rest of the machine. */
export type CpuUse = { [process: string]: number; other: number; machine: number };

export async function cpuSnapshot(pids: Record<string, number | undefined>): Promise<CpuSnapshot> {
  const usage = process.cpuUsage();
  const ticks: Record<string, number> = {};
  for (const [label, pid] of Object.entries(pids)) ticks[label] = pid === undefined ? 0 : ((await procStat(pid))?.cpuTicks ?? 0);
  return { at: performance.now(), selfMicros: usage.user + usage.system, ticks, machineTicks: await machineBusyTicks() };
}

export function cpuBetween(a: CpuSnapshot, b: CpuSnapshot, selfLabel: string): CpuUse {
  const seconds = (b.at - a.at) / 1000;
  const ours: Record<string, number> = { [selfLabel]: round((b.selfMicros - a.selfMicros) / 1e6 / seconds, 2) };
  for (const label of Object.keys(b.ticks)) ours[label] = round(((b.ticks[label] ?? 0) - (a.ticks[label] ?? 0)) / clockTicks / seconds, 2);
  const machine = round((b.machineTicks - a.machineTicks) / clockTicks / seconds, 2);
  const sum = Object.values(ours).reduce((s, v) => s + v, 0);
  return { ...ours, other: round(Math.max(0, machine - sum), 2), machine };
}

/** The 1-minute load average, for the record (other work on the machine skews every figure). */
export async function loadAverage(): Promise<number> {
  return Number((await readFile("/proc/loadavg", "utf8").catch(() => "0")).split(" ")[0]);
}

// ------------------------------------------------------------------- machine

export interface MachineInfo {
  nproc: number;
  cpuModel: string;
  memTotalKb: number;
  memGiB: number;
  kernel: string;
  node: string;
  natsServer: string;
}

export async function machineInfo(): Promise<MachineInfo> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const meminfo = await readFile("/proc/meminfo", "utf8").catch(() => "");
  const kernel = (await readFile("/proc/sys/kernel/osrelease", "utf8").catch(() => "")).trim();
  const memTotalKb = Number(/MemTotal:\s+(\d+)/.exec(meminfo)?.[1] ?? Math.round(totalmem() / 1024));
  let natsServer = "unknown";
  try {
    const { stdout } = await promisify(execFile)("nats-server", ["--version"]);
    natsServer = stdout.trim();
  } catch {
    // not on PATH: the colony searches sbin folders too; leave it unknown
  }
  return {
    nproc: availableParallelism(),
    cpuModel: /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memTotalKb,
    memGiB: round(memTotalKb / 1024 / 1024, 1),
    kernel,
    node: process.version,
    natsServer,
  };
}

// --------------------------------------------------------------------- tables

export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === "number" ? c.toLocaleString("en-US") : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join("  ");
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...cells.map(line)].join("\n");
}

/** Coral's one sleep (@coral/common/async), re-exported for the benchmarks that import it from here. */
export { sleep } from "@coral/common/async";
