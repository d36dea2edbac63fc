/**
 * Which service of the agent a process belongs to, for the kernel tracers one
 * agent process shares between its services: a process of a service's set,
 * or a child forked by one (seen by the tracer before the service's next
 * snapshot names it).
 */

export interface PidOwner {
  /** The service's processes now. */
  pids(): Iterable<number>;
}

/** Children remembered at most: the oldest are forgotten first. */
const maxForked = 4096;

export class PidOwners<O extends PidOwner> {
  readonly #owners = new Set<O>();
  readonly #forked = new Map<number, O>();

  add(owner: O): void {
    this.#owners.add(owner);
  }

  delete(owner: O): void {
    this.#owners.delete(owner);
    for (const [pid, o] of this.#forked) if (o === owner) this.#forked.delete(pid);
  }

  get size(): number {
    return this.#owners.size;
  }

  [Symbol.iterator](): IterableIterator<O> {
    return this.#owners.values();
  }

  /** Every owner's processes (each once). */
  allPids(): number[] {
    const all = new Set<number>();
    for (const o of this.#owners) for (const p of o.pids()) all.add(p);
    return [...all];
  }

  /** The owner of `pid` (or, failing that, of its parent `ppid`). */
  ownerOf(pid: number, ppid?: number): O | undefined {
    let byParent: O | undefined;
    for (const o of this.#owners) {
      for (const p of o.pids()) {
        if (p === pid) return o;
        if (p === ppid) byParent ??= o;
      }
    }
    return byParent ?? this.#forked.get(pid) ?? (ppid === undefined ? undefined : this.#forked.get(ppid));
  }

  /** `child` was forked by `parent`: it belongs to the parent's owner (returned) until a snapshot says otherwise. */
  forked(child: number, parent: number): O | undefined {
    const owner = this.ownerOf(parent);
    if (!owner) return undefined;
    if (this.#forked.size >= maxForked) this.#forked.delete(this.#forked.keys().next().value!);
    this.#forked.set(child, owner);
    return owner;
  }
}

/**
 * One program (a kernel tracer) for the views that join it: started by the
 * first view, stopped when the last one leaves, made anew for a view that
 * joins after that.
 */
export class SharedSource<O extends PidOwner, S extends { stop(): Promise<void> }, R> {
  readonly owners = new PidOwners<O>();
  #source: S | undefined;
  #started: Promise<R> | undefined;

  constructor(private readonly make: () => { source: S; started: () => Promise<R> }) {}

  get source(): S | undefined {
    return this.#source;
  }

  /** Adds `owner`; resolves once the program has started (or said why it cannot). */
  join(owner: O): Promise<R> {
    this.owners.add(owner);
    if (!this.#started) {
      const made = this.make();
      this.#source = made.source;
      this.#started = made.started();
    }
    return this.#started;
  }

  async leave(owner: O): Promise<void> {
    this.owners.delete(owner);
    if (this.owners.size > 0 || !this.#source) return;
    const source = this.#source;
    this.#source = undefined;
    this.#started = undefined;
    await source.stop();
  }

  /** Stops the program whoever still looks. */
  async close(): Promise<void> {
    for (const o of [...this.owners]) await this.leave(o);
  }
}
