// The memory mappings of the profiled processes (/proc/<pid>/maps), read at
// the start, when a process of the set forks, now and then while the profile
// runs and at the end: a process may map a library later, or exit before the
// end, so every mapping ever seen is kept, the latest first.
// procfs reads never block on disk: sync calls save the thread pool's round trips (open, fstat, read, close).
import { readFileSync } from "node:fs";

export interface Mapping {
  start: bigint;
  end: bigint;
  perms: string;
  /** Offset in the file of the mapping's first byte. */
  offset: bigint;
  /** "08:01" (major:minor, hex) as the kernel prints it. */
  dev: string;
  inode: number;
  /** The file's path, "[vdso]" and the like, or "" for anonymous memory; without " (deleted)". */
  path: string;
  /** The file was deleted (or replaced) after it was mapped. */
  deleted: boolean;
}

const lineRe = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S{4})\s+([0-9a-f]+)\s+([0-9a-f]+:[0-9a-f]+)\s+(\d+)\s*(.*)$/;

/** Parses /proc/<pid>/maps; lines that do not fit are skipped. Pure. */
export function parseMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  for (const line of text.split("\n")) {
    const m = lineRe.exec(line);
    if (!m) continue;
    let path = m[7]!.trimEnd();
    const deleted = path.endsWith(" (deleted)");
    if (deleted) path = path.slice(0, -" (deleted)".length);
    out.push({
      start: BigInt(`0x${m[1]}`),
      end: BigInt(`0x${m[2]}`),
      perms: m[3]!,
      offset: BigInt(`0x${m[4]}`),
      dev: m[5]!,
      inode: Number(m[6]),
      path,
      deleted,
    });
  }
  return out;
}

/** A file-backed mapping (not anonymous memory, the heap, the stack or the vDSO). */
export function isFileMapping(m: Mapping): boolean {
  return m.inode !== 0 && m.path.startsWith("/");
}

/** The kernel's vDSO, an ELF image in memory that symbolizes like a file. */
export function isVdso(m: Mapping): boolean {
  return m.path === "[vdso]";
}

/** /proc/<pid>/maps as text, or undefined when the process is gone (or not ours to read). */
export function readMapsText(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/maps`, "utf8");
  } catch {
    return undefined;
  }
}

/** /proc/<pid>/maps, or undefined when the process is gone (or not ours to read). */
export async function readMaps(pid: number): Promise<Mapping[] | undefined> {
  const text = readMapsText(pid);
  return text === undefined ? undefined : parseMaps(text);
}

/** /proc/<pid>/comm without its newline, or undefined when the process is gone. */
export async function readComm(pid: number): Promise<string | undefined> {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Every mapping seen of every process, the latest snapshot first. */
export class MappingHistory {
  private readonly byPid = new Map<number, Mapping[]>();
  private readonly keys = new Map<number, Set<string>>();

  /** Adds one snapshot of `pid`'s mappings; mappings already known are kept where they are. */
  add(pid: number, mappings: readonly Mapping[]): void {
    const list = this.byPid.get(pid) ?? [];
    const keys = this.keys.get(pid) ?? new Set<string>();
    const fresh: Mapping[] = [];
    for (const m of mappings) {
      const key = `${m.start}-${m.end}-${m.offset}-${m.inode}-${m.path}`;
      if (keys.has(key)) continue;
      keys.add(key);
      fresh.push(m);
    }
    this.byPid.set(pid, [...fresh, ...list]);
    this.keys.set(pid, keys);
  }

  /** Copies what is known of `from` to `to` (a child shares its parent's mappings until it execs). */
  inherit(to: number, from: number): void {
    const list = this.byPid.get(from);
    if (list && !this.byPid.has(to)) this.add(to, list);
  }

  /** The mapping holding `address` in `pid`, the most recently seen when several did. */
  find(pid: number, address: bigint): Mapping | undefined {
    return this.byPid.get(pid)?.find((m) => address >= m.start && address < m.end);
  }

  /** Drops what is known of `pid` (a long-lived profile forgets processes that are gone). */
  forget(pid: number): void {
    this.byPid.delete(pid);
    this.keys.delete(pid);
  }

  /** Every mapping seen of `pid`, the latest first. */
  all(pid: number): readonly Mapping[] {
    return this.byPid.get(pid) ?? [];
  }
}
