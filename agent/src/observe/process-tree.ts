/**
 * A service is a set of processes: the one that listens on the port and every
 * descendant of it (pre-fork workers, a child per connection, cluster
 * workers), read fresh on every call so workers that come and go are
 * followed. Walked down /proc/<pid>/task/<tid>/children, which costs what the
 * set costs; where the kernel lacks those files, from the ppid field of every
 * /proc/<pid>/stat (about 50 µs of CPU per process on the host). A service in
 * a cgroup of its own also gets that cgroup's other processes.
 */
// procfs reads never block on disk: sync calls save the thread-pool round trip of each open/read/close.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { cgroupMembers, recentOwnCgroup } from "./own-cgroup.ts";
import { isGone, listPids, parseProcStat, type ProcStat } from "./procfs.ts";

/** The stat of every live process, keyed by pid. Zombies are left out: they hold no CPU or memory and will be reaped. */
export async function readAllStats(): Promise<Map<number, ProcStat>> {
  const stats = new Map<number, ProcStat>();
  for (const pid of await listPids()) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch (err) {
      if (isGone(err)) continue;
      throw err;
    }
    const stat = parseProcStat(text);
    if (stat && stat.state !== "Z" && stat.state !== "X") stats.set(pid, stat);
  }
  return stats;
}

/** `root` and its descendants among `stats`, root first, then breadth-first. Pure. */
export function descendantsOf(root: number, stats: ReadonlyMap<number, Pick<ProcStat, "ppid">>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) {
    if (pid === root) continue;
    const list = children.get(s.ppid);
    if (list) list.push(pid);
    else children.set(s.ppid, [pid]);
  }
  if (!stats.has(root)) return [];
  const out = [root];
  for (let i = 0; i < out.length; i++) for (const c of (children.get(out[i]!) ?? []).sort((a, b) => a - b)) out.push(c);
  return out;
}

/**
 * The process set of the service whose listener is `root`: its tree, then the
 * other processes of its own cgroup if it has one (own-cgroup.ts); [] when
 * root is gone.
 */
export async function processSet(root: number): Promise<number[]> {
  const tree = await processTree(root);
  const cgroup = tree.length > 0 ? recentOwnCgroup(root) : null;
  if (!cgroup) return tree;
  const inTree = new Set(tree);
  for (const pid of cgroupMembers(cgroup)) if (!inTree.has(pid)) tree.push(pid);
  return tree;
}

/** `root` and its descendants, root first: [] when root is gone. */
async function processTree(root: number): Promise<number[]> {
  if (!hasChildrenFiles()) return descendantsOf(root, await readAllStats());
  if (!existsSync(`/proc/${root}/task`)) return [];
  const out = [root];
  const seen = new Set(out);
  for (let i = 0; i < out.length; i++)
    for (const child of childrenOf(out[i]!))
      if (!seen.has(child)) {
        seen.add(child);
        out.push(child);
      }
  return out;
}

/** The children of every thread of `pid` (a thread that forks is its child's parent), ascending. */
function childrenOf(pid: number): number[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return []; // gone while we walked
  }
  const children: number[] = [];
  for (const tid of tids) {
    try {
      for (const word of readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ")) if (word.trim()) children.push(Number(word));
    } catch {
      // the thread exited meanwhile
    }
  }
  return children.sort((a, b) => a - b);
}

let childrenFiles: boolean | undefined;
/** CONFIG_PROC_CHILDREN (Linux 4.2+ and most distribution kernels). */
function hasChildrenFiles(): boolean {
  childrenFiles ??= existsSync(`/proc/${process.pid}/task/${process.pid}/children`);
  return childrenFiles;
}
