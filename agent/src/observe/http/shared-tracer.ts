/**
 * One HTTP request tracer for every service of an agent process: a single
 * bpftrace program follows the processes of all of them, and each answered
 * request goes to the service whose process (or a child it forked) served
 * it. Each service keeps its own route cap, so one service's many routes
 * cannot push another's into `other`.
 *
 * The program starts with the first view and stops with the last. The
 * tracer's per-line counts (unparsed, unmatched, client, …) are the
 * program's, for all services; requests and overflow are each view's own.
 */
import { EventEmitter } from "node:events";
import { SharedSource } from "../pid-owners.ts";
import type { ServedRequest } from "./pairing.ts";
import { DEFAULT_ROUTE_CAP, RouteCap } from "./routes.ts";
import { HttpTracer, type HttpTracerEvents, type HttpTracerOptions, type HttpTracerStatus } from "./tracer.ts";

/** What a service's agent uses of its request tracer. */
export interface RequestTracer extends EventEmitter<HttpTracerEvents> {
  status(): HttpTracerStatus;
  start(): Promise<HttpTracerStatus>;
  stop(): Promise<void>;
}

export class SharedHttpTracer {
  readonly #shared: SharedSource<HttpTracerView, HttpTracer, HttpTracerStatus>;

  constructor(private readonly options: Omit<HttpTracerOptions, "pids" | "routeCap" | "onFork"> & { routeCap?: number }) {
    this.#shared = new SharedSource(() => {
      const owners = this.#shared.owners;
      const source = new HttpTracer({ ...options, pids: () => owners.allPids(), routeCap: null, onFork: (pid, parent) => owners.forked(pid, parent) });
      source.on("requests", (list) => this.#route(list));
      source.on("status", () => {
        for (const v of owners) v.sourceChanged();
      });
      return { source, started: () => source.start() };
    });
  }

  /** A service's share, for the processes `pids()` names. */
  view(pids: () => Iterable<number>): RequestTracer {
    return new HttpTracerView(this, pids, this.options.routeCap ?? DEFAULT_ROUTE_CAP);
  }

  /** @internal */
  sourceStatus(): HttpTracerStatus | undefined {
    return this.#shared.source?.status();
  }

  /** @internal */
  async join(view: HttpTracerView): Promise<void> {
    await this.#shared.join(view);
    // Its processes are followed from now on, not from the next periodic check.
    await this.#shared.source?.refresh();
  }

  /** @internal */
  leave(view: HttpTracerView): Promise<void> {
    return this.#shared.leave(view);
  }

  /** Stops the program whoever still looks. */
  close(): Promise<void> {
    return this.#shared.close();
  }

  #route(list: ServedRequest[]): void {
    const byView = new Map<HttpTracerView, ServedRequest[]>();
    for (const r of list) {
      const v = this.#shared.owners.ownerOf(r.pid);
      if (!v) continue;
      const mine = byView.get(v);
      if (mine) mine.push(r);
      else byView.set(v, [r]);
    }
    for (const [v, mine] of byView) v.deliver(mine);
  }
}

class HttpTracerView extends EventEmitter<HttpTracerEvents> implements RequestTracer {
  readonly #cap: RouteCap;
  #joined = false;
  #requests = 0;
  #lastKey = "";

  constructor(
    private readonly shared: SharedHttpTracer,
    readonly pids: () => Iterable<number>,
    routeCap: number,
  ) {
    super();
    this.#cap = new RouteCap(routeCap);
  }

  status(): HttpTracerStatus {
    const s = this.#joined ? this.shared.sourceStatus() : undefined;
    const base: HttpTracerStatus = s ?? {
      state: "stopped",
      lines: 0,
      malformed: 0,
      lost: 0,
      routes: 0,
      restarts: 0,
      followed: 0,
      counts: { requests: 0, unparsed: 0, unmatched: 0, unanswered: 0, client: 0, overflow: 0 },
    };
    const own = { ...base, routes: this.#cap.size(), counts: { ...base.counts, requests: this.#requests, overflow: this.#cap.overflow() } };
    // The program runs for the other services; this one has no process yet.
    if (this.#joined && base.state === "running" && [...this.pids()].length === 0) return { ...own, state: "waiting", reason: "no process of the service yet" };
    return own;
  }

  async start(): Promise<HttpTracerStatus> {
    this.#joined = true;
    await this.shared.join(this);
    this.sourceChanged();
    return this.status();
  }

  async stop(): Promise<void> {
    if (!this.#joined) return;
    const unavailable = this.status().state === "unavailable";
    await this.shared.leave(this);
    this.#joined = false;
    if (!unavailable) this.#emitStatus({ ...this.status(), state: "stopped", reason: undefined });
  }

  /** @internal Requests this service's processes answered (routes not yet capped). */
  deliver(list: ServedRequest[]): void {
    const capped = list.map((r) => ({ ...r, route: this.#cap.route(r.method, r.route) }));
    this.#requests += capped.length;
    this.emit("requests", capped);
  }

  /** @internal */
  sourceChanged(): void {
    if (this.#joined) this.#emitStatus(this.status());
  }

  #emitStatus(st: HttpTracerStatus): void {
    const key = `${st.state}|${st.reason ?? ""}`;
    if (key === this.#lastKey) return;
    this.#lastKey = key;
    this.emit("status", st);
  }
}
