// What the profile knows of its process set while it runs: the pids (the set
// at the start, then each child forked during the profile), their command
// names and every mapping seen of them, read at the start, at each fork, every
// second and at the end.
import { existsSync, readFileSync } from "node:fs";
import { MappingHistory, parseMaps, readComm, readMapsText } from "./maps.ts";

export class SetWatch {
  readonly pids: number[];
  readonly names = new Map<number, string>();
  readonly mappings = new MappingHistory();
  /** The text of each process's maps at its last read: an unchanged one is not parsed again (most reads of a long profile). */
  private readonly lastMaps = new Map<number, string>();
  /** Reads under way (each removes itself when done). */
  private readonly reads = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(initial: readonly number[]) {
    this.pids = [...initial];
    // The first process's name at once: a profile refused meanwhile names the running one by it.
    const first = initial[0];
    if (first !== undefined) {
      try {
        this.names.set(first, readFileSync(`/proc/${first}/comm`, "utf8").trim());
      } catch {
        // gone: the reads say so
      }
    }
  }

  /** Reads every process of the set; resolves when done. */
  readAll(): Promise<void> {
    return this.settle(this.pids.filter((p) => existsSync(`/proc/${p}`)).map((p) => this.read(p)));
  }

  /** A process of the set forked `pid`: read it while it lives (its parent's mappings stand in when it is already gone). */
  forked(pid: number, parent: number): void {
    if (!this.pids.includes(pid)) this.pids.push(pid);
    this.read(pid, parent);
  }

  /** Reads the live processes again every `ms` until stop(). */
  refreshEvery(ms: number): void {
    this.timer ??= setInterval(() => void this.readAll(), ms);
  }

  /** Stops refreshing; resolves when every read under way is done. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.settle([...this.reads]);
  }

  /** Drops gone processes whose samples have all been symbolized (the always-on profile runs for an hour). */
  forget(pids: readonly number[]): void {
    const drop = new Set(pids);
    for (const p of drop) {
      this.mappings.forget(p);
      this.names.delete(p);
      this.lastMaps.delete(p);
    }
    const kept = this.pids.filter((p) => !drop.has(p));
    this.pids.splice(0, this.pids.length, ...kept);
  }

  /** Processes of the set that are gone now. */
  gone(): number[] {
    return this.pids.filter((p) => !existsSync(`/proc/${p}`));
  }

  private read(pid: number, parent?: number): Promise<void> {
    const p = (async () => {
      const text = readMapsText(pid);
      const comm = await readComm(pid);
      if (text === undefined) {
        if (parent !== undefined) this.mappings.inherit(pid, parent);
      } else if (text !== this.lastMaps.get(pid)) {
        this.mappings.add(pid, parseMaps(text));
        this.lastMaps.set(pid, text);
      }
      if (comm) this.names.set(pid, comm);
      else if (parent !== undefined && !this.names.has(pid)) this.names.set(pid, this.names.get(parent) ?? "");
    })();
    this.reads.add(p);
    void p.finally(() => this.reads.delete(p));
    return p;
  }

  private async settle(reads: Promise<void>[]): Promise<void> {
    await Promise.allSettled(reads);
  }
}
