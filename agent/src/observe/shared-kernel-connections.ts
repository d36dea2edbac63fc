/**
 * One kernel connection tracer for every service of an agent process: the
 * bpftrace program already sees the whole host, so services need not each
 * run their own (~100 MB resident and its CPU apiece). Each service gets a
 * view with the surface of KernelConnections: its own counter, its own
 * matched/connect/accept counts, and the shared program's state.
 *
 * The program starts with the first view and stops with the last; a view
 * that starts after the program has become unavailable is told so at once.
 */
import { EventEmitter } from "node:events";
import {
  KernelConnections,
  OpenedCounter,
  type KernelConnectionEvent,
  type KernelConnectionsEvents,
  type KernelConnectionsOptions,
  type KernelConnectionsStatus,
} from "./kernel-connections.ts";
import { SharedSource } from "./pid-owners.ts";

/** What a service's agent uses of its connection tracer. */
export interface ConnectionTracer extends EventEmitter<KernelConnectionsEvents> {
  readonly counter: OpenedCounter;
  status(): KernelConnectionsStatus;
  active(): boolean;
  /** Grows with every connection and fork of the service's processes the kernel reported; null while it does not run. */
  changes(): number | null;
  start(): Promise<KernelConnectionsStatus>;
  stop(): Promise<void>;
}

export class SharedKernelConnections {
  readonly #shared: SharedSource<KernelConnectionsView, KernelConnections, KernelConnectionsStatus>;

  constructor(options: Omit<KernelConnectionsOptions, "pids" | "follow" | "onEvent" | "onFork">) {
    this.#shared = new SharedSource(() => {
      const source = new KernelConnections({
        ...options,
        // Nothing is counted by the program itself: each view counts its own.
        pids: () => [],
        // ... but it follows every service's processes in the kernel, and prints only theirs.
        follow: () => this.#shared.owners.allPids(),
        onEvent: (e) => this.#shared.owners.ownerOf(e.pid, e.ppid)?.deliver(e),
        onFork: (child, parent) => this.#shared.owners.forked(child, parent)?.forked(),
      });
      source.on("status", () => {
        for (const v of this.#shared.owners) v.sourceChanged();
      });
      return { source, started: () => source.start() };
    });
  }

  /** A service's share, for the processes `pids()` names. */
  view(pids: () => Iterable<number>): ConnectionTracer {
    return new KernelConnectionsView(this, pids);
  }

  /** The shared program's status (counts of every process seen). */
  sourceStatus(): KernelConnectionsStatus | undefined {
    return this.#shared.source?.status();
  }

  /** @internal */
  join(view: KernelConnectionsView): Promise<KernelConnectionsStatus> {
    return this.#shared.join(view);
  }

  /** @internal */
  leave(view: KernelConnectionsView): Promise<void> {
    return this.#shared.leave(view);
  }

  /** Stops the program whoever still looks. */
  close(): Promise<void> {
    return this.#shared.close();
  }
}

class KernelConnectionsView extends EventEmitter<KernelConnectionsEvents> implements ConnectionTracer {
  readonly counter = new OpenedCounter();
  #joined = false;
  #matched = 0;
  #connects = 0;
  #accepts = 0;
  #forks = 0;
  #lastState: KernelConnectionsStatus["state"] | undefined;

  constructor(
    private readonly shared: SharedKernelConnections,
    readonly pids: () => Iterable<number>,
  ) {
    super();
  }

  status(): KernelConnectionsStatus {
    const s = this.#joined ? this.shared.sourceStatus() : undefined;
    const base: KernelConnectionsStatus = s ?? { source: "ebpf", state: "stopped", events: 0, matched: 0, connects: 0, accepts: 0, malformed: 0, restarts: 0 };
    return { ...base, matched: this.#matched, connects: this.#connects, accepts: this.#accepts };
  }

  active(): boolean {
    return this.#joined && this.shared.sourceStatus()?.state === "running";
  }

  changes(): number | null {
    return this.active() ? this.#matched + this.#forks : null;
  }

  /** @internal A process of this service forked. */
  forked(): void {
    this.#forks++;
  }

  async start(): Promise<KernelConnectionsStatus> {
    this.#joined = true;
    await this.shared.join(this);
    // Joined a program already running (or already given up): say so, as a program of its own would.
    this.sourceChanged();
    return this.status();
  }

  async stop(): Promise<void> {
    if (!this.#joined) return;
    await this.shared.leave(this);
    this.#joined = false;
    if (this.#lastState !== "unavailable") this.#emitStatus({ ...this.status(), state: "stopped", bpftracePid: undefined });
  }

  /** @internal A connection of this service's processes. */
  deliver(e: KernelConnectionEvent): void {
    this.#matched++;
    if (e.kind === "connect") this.#connects++;
    else this.#accepts++;
    this.emit("connection", e, this.counter.add(e));
  }

  /** @internal The program changed state. */
  sourceChanged(): void {
    if (this.#joined) this.#emitStatus(this.status());
  }

  #emitStatus(st: KernelConnectionsStatus): void {
    if (st.state === this.#lastState) return;
    this.#lastState = st.state;
    this.emit("status", st);
  }
}
