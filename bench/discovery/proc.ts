// /proc readers shared by the discovery benchmarks (run.ts, registrations.ts).
import { readdir, readFile } from "node:fs/promises";

export interface ProcInfo {
  pid: number;
  ppid: number;
  comm: string;
  cpuTicks: number;
}

export async function procInfo(pid: number): Promise<ProcInfo | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const rest = stat.slice(close + 2).split(" ");
    return { pid, ppid: Number(rest[1]), comm, cpuTicks: Number(rest[11]) + Number(rest[12]) };
  } catch {
    return undefined;
  }
}

/** The process and all its descendants, from /proc (Linux only; empty elsewhere). */
export async function processTree(rootPid: number): Promise<ProcInfo[]> {
  let entries: string[];
  try {
    entries = await readdir("/proc");
  } catch {
    return [];
  }
  const all = (await Promise.all(entries.filter((e) => /^\d+$/.test(e)).map((e) => procInfo(Number(e))))).filter(
    (p): p is ProcInfo => p !== undefined,
  );
  const tree: ProcInfo[] = [];
  const wanted = new Set([rootPid]);
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of all) {
      if ((p.pid === rootPid || wanted.has(p.ppid)) && !tree.includes(p)) {
        tree.push(p);
        wanted.add(p.pid);
        grew = true;
      }
    }
  }
  return tree;
}
