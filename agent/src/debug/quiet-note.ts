// What a session says when a while passed without any call of a function
// that exists: where the calls happen instead (processes outside the
// service's process tree that called it, or that run the same binary), or
// that the function is not being called.
import { readdirSync, statSync } from "node:fs";

/** Processes running the same executable as `pid` (same device and inode of /proc/<pid>/exe). */
export function sameBinaryPids(pid: number): number[] {
  let target;
  try {
    target = statSync(`/proc/${pid}/exe`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = statSync(`/proc/${name}/exe`);
      if (st.ino === target.ino && st.dev === target.dev) out.push(Number(name));
    } catch {
      // gone, a kernel thread, or not ours to read
    }
  }
  return out;
}

export interface QuietSession {
  functionName: string;
  /** The listener (its binary is the one probed). */
  pid: number;
  /** Every process probed so far. */
  probed: ReadonlySet<number>;
  /** Processes outside the set seen calling the function, when the tracer can tell. */
  outside?: ReadonlySet<number>;
}

export function noCallsNote(s: QuietSession): string {
  const n = s.probed.size;
  const inSet = `no calls yet in ${n} process${n === 1 ? "" : "es"} of the service`;
  if (s.outside?.size) return `${inSet}; the function runs in processes outside the service's process tree: pids ${list([...s.outside])}`;
  const others = sameBinaryPids(s.pid).filter((p) => !s.probed.has(p));
  if (others.length > 0) return `${inSet}; the function may run in processes outside the service's process tree that run the same binary: pids ${list(others)}`;
  return `${inSet}: ${s.functionName} is not being called`;
}

/** "1, 2, 3" or "1, 2, 3, … (12 in all)". */
function list(pids: number[]): string {
  const sorted = [...pids].sort((a, b) => a - b);
  return sorted.length > 10 ? `${sorted.slice(0, 10).join(", ")}, … (${sorted.length} in all)` : sorted.join(", ");
}
