// Ends everything a coral exec command or shell started: every process of its
// session (the command leads a session of its own: spawn's detached, or the
// PTY's setsid), whatever process group job control put it in. Only a process
// that made a session of its own (setsid, a daemon) escapes, on purpose.
import { readdirSync, readFileSync } from "node:fs";

/** The pids whose session is `sid` (as this process's pid namespace sees them), from /proc. */
export function sessionMembers(sid: number): number[] {
  const members: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      // Fields after the command name (which may hold spaces and parentheses): state ppid pgrp session …
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(fields[3]) === sid) members.push(Number(name));
    } catch {
      // Gone meanwhile.
    }
  }
  return members;
}

/** SIGKILLs the session `sid` leads: its leader, its process groups, every member. */
export function killSession(sid: number): void {
  for (const target of [-sid, sid, ...sessionMembers(sid)]) {
    try {
      process.kill(target, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}
