/**
 * The cgroup a service runs in when it has one of its own (a systemd unit, a
 * container): every process in it belongs to the service, also those that do
 * not descend from the listener (a sidecar script, a worker started by a
 * supervisor beside it). "Its own" means the listener's cgroup differs from
 * its parent's, is not the root, and does not hold this agent: a process
 * started from a shell shares the shell's cgroup and gets no members from it.
 * cgroup v2 only (unified, or the hybrid layout's /sys/fs/cgroup/unified).
 */
import { existsSync, readFileSync } from "node:fs";
import { parseProcStat } from "./procfs.ts";

let mountPoint: string | null | undefined;
/** Where the cgroup v2 hierarchy is mounted, or null. */
function cgroup2Root(): string | null {
  if (mountPoint === undefined) {
    mountPoint = existsSync("/sys/fs/cgroup/cgroup.controllers")
      ? "/sys/fs/cgroup"
      : existsSync("/sys/fs/cgroup/unified/cgroup.procs")
        ? "/sys/fs/cgroup/unified"
        : null;
  }
  return mountPoint;
}

/** The cgroup v2 path of `pid` (the "0::" line of /proc/<pid>/cgroup), or null. */
export function cgroupOf(pid: number): string | null {
  try {
    const line = readFileSync(`/proc/${pid}/cgroup`, "utf8")
      .split("\n")
      .find((l) => l.startsWith("0::"));
    return line ? line.slice(3) : null;
  } catch {
    return null; // gone, or not ours to read: no cgroup to add
  }
}

/** The service's own cgroup (see the module comment), or null. */
export function ownCgroup(listener: number): string | null {
  if (!cgroup2Root()) return null;
  const mine = cgroupOf(listener);
  if (!mine || mine === "/") return null;
  let ppid: number | undefined;
  try {
    ppid = parseProcStat(readFileSync(`/proc/${listener}/stat`, "utf8"))?.ppid;
  } catch {
    return null;
  }
  if (!ppid || cgroupOf(ppid) === mine) return null;
  if (cgroupOf(process.pid) === mine) return null;
  return mine;
}

const recentMs = 10_000;
const recent = new Map<number, { at: number; cgroup: string | null }>();

/**
 * ownCgroup, looked at again at most every 10 s per process: the samplers ask
 * for every service each second (four procfs reads), and a process changes
 * cgroup rarely (a supervisor moving it), which then shows within 10 s.
 */
export function recentOwnCgroup(listener: number, now = performance.now()): string | null {
  const hit = recent.get(listener);
  if (hit && now - hit.at < recentMs) return hit.cgroup;
  if (recent.size >= 1024) for (const [pid, e] of recent) if (now - e.at >= recentMs) recent.delete(pid);
  const cgroup = ownCgroup(listener);
  recent.set(listener, { at: now, cgroup });
  return cgroup;
}

/** The processes in a cgroup v2 path, ascending; [] when it is gone. */
export function cgroupMembers(path: string): number[] {
  const root = cgroup2Root();
  if (!root || path.includes("..")) return [];
  try {
    return readFileSync(`${root}${path}/cgroup.procs`, "utf8")
      .split("\n")
      .filter((l) => l.trim())
      .map(Number)
      .sort((a, b) => a - b);
  } catch {
    return []; // removed meanwhile
  }
}
