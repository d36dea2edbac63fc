/**
 * Small helpers over /proc/<pid>: pure parsers for stat/status, the socket
 * inodes behind a process's file descriptors, and the few system constants
 * (clock ticks, boot time) the samplers need.
 */
import { execFile } from "node:child_process";
// procfs reads never block on disk: sync calls save the thread-pool round trip of each open/read/close.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export type ErrnoError = NodeJS.ErrnoException;

/** The process (or one of its fds) went away while we looked: normal, not an error. */
export function isGone(err: unknown): boolean {
  const code = (err as ErrnoError | null)?.code;
  return code === "ENOENT" || code === "ESRCH";
}

/** Another user's process we may not inspect: normal while scanning, an error when observing. */
export function isNoAccess(err: unknown): boolean {
  const code = (err as ErrnoError | null)?.code;
  return code === "EACCES" || code === "EPERM";
}

export interface ProcStat {
  pid: number;
  comm: string;
  /** One letter: R running, S sleeping, D disk sleep, Z zombie, T stopped, X dead, ... */
  state: string;
  ppid: number;
  /** Field 14, user mode time in clock ticks. */
  utime: number;
  /** Field 15, kernel mode time in clock ticks. */
  stime: number;
  /** Field 20. */
  numThreads: number;
  /** Field 22, start time in clock ticks after boot. */
  startTicks: number;
}

/**
 * Parses /proc/<pid>/stat. The command name (field 2) is in parentheses and
 * may itself contain spaces and parentheses, so the fields after it are
 * located from the LAST ")".
 */
export function parseProcStat(text: string): ProcStat | null {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 1 || close < open) return null;
  const pid = Number(text.slice(0, open).trim());
  const comm = text.slice(open + 1, close);
  // rest[0] is field 3 (state), so field n is rest[n - 3].
  const rest = text.slice(close + 1).trim().split(/\s+/);
  if (rest.length < 20) return null;
  const field = (n: number): number => Number(rest[n - 3]);
  const stat: ProcStat = {
    pid,
    comm,
    state: rest[0] ?? "?",
    ppid: field(4),
    utime: field(14),
    stime: field(15),
    numThreads: field(20),
    startTicks: field(22),
  };
  const numbers = [stat.pid, stat.ppid, stat.utime, stat.stime, stat.numThreads, stat.startTicks];
  if (!Number.isInteger(stat.pid) || stat.pid <= 0 || numbers.some((n) => !Number.isFinite(n))) return null;
  return stat;
}

/**
 * Resident set size in bytes from /proc/<pid>/status ("VmRSS:  12345 kB").
 * Kernel threads have no VmRSS line: 0. Independent of the page size.
 */
export function parseStatusRssBytes(text: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : 0;
}

/** `btime` (boot time, seconds since the epoch) from /proc/stat. */
export function parseBootTime(procStat: string): number | null {
  const m = /^btime\s+(\d+)/m.exec(procStat);
  return m ? Number(m[1]) : null;
}

/** `socket:[12345]` → 12345; anything else → null. */
export function socketInodeFromLink(link: string): number | null {
  const m = /^socket:\[(\d+)\]$/.exec(link);
  return m ? Number(m[1]) : null;
}

/** All numeric entries of /proc, ascending. */
export async function listPids(): Promise<number[]> {
  const names = readdirSync("/proc");
  const pids: number[] = [];
  for (const name of names) if (/^\d+$/.test(name)) pids.push(Number(name));
  return pids.sort((a, b) => a - b);
}

/**
 * The inodes of every socket the process has open. Returns null if the
 * process is gone; throws (EACCES) if we may not read its fd table. Fds that
 * close while we read them are skipped.
 */
export async function socketInodes(pid: number): Promise<Set<number> | null> {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch (err) {
    if (isGone(err)) return null;
    throw err;
  }
  const inodes = new Set<number>();
  for (const fd of fds) {
    let link: string;
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch (err) {
      if (!isGone(err) && !isNoAccess(err)) throw err;
      continue;
    }
    // "socket:[12345]": checked by its first letters before the pattern (most fds are files and pipes).
    if (link.startsWith("socket:")) {
      const inode = socketInodeFromLink(link);
      if (inode !== null) inodes.add(inode);
    }
  }
  return inodes;
}

let clkTckPromise: Promise<number> | undefined;

/**
 * USER_HZ, the unit of the tick fields in /proc/<pid>/stat. Read once with
 * `getconf CLK_TCK`; if that is not available we assume 100, which is what
 * Linux reports to user space on every mainstream architecture.
 */
export function clockTicksPerSecond(): Promise<number> {
  clkTckPromise ??= new Promise<number>((resolve) => {
    execFile("getconf", ["CLK_TCK"], { timeout: 2000 }, (err, stdout) => {
      const n = Number(String(stdout).trim());
      resolve(!err && Number.isInteger(n) && n > 0 ? n : 100);
    });
  });
  return clkTckPromise;
}

let bootTimePromise: Promise<number> | undefined;

/** Boot time in seconds since the epoch (/proc/stat btime), read once. */
export function bootTimeSeconds(): Promise<number> {
  bootTimePromise ??= Promise.resolve().then(() => readFileSync("/proc/stat", "utf8")).then((text) => {
    const btime = parseBootTime(text);
    if (btime === null) throw new Error("/proc/stat has no btime line");
    return btime;
  });
  bootTimePromise.catch(() => {
    bootTimePromise = undefined; // retry on the next call
  });
  return bootTimePromise;
}

/** Seconds since boot, from /proc/uptime. */
export async function uptimeSeconds(): Promise<number> {
  const text = readFileSync("/proc/uptime", "utf8");
  const n = Number(text.trim().split(/\s+/)[0]);
  if (!Number.isFinite(n)) throw new Error(`unexpected /proc/uptime: ${JSON.stringify(text)}`);
  return n;
}
