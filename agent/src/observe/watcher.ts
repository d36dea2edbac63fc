/**
 * Watches the app that listens on a port as a process set (the listener and
 * its descendants, see process-tree.ts): finds the listener, samples the set
 * every interval (sums), and reports when the listener goes away and when a
 * new one appears. Workers that start and exit are counted and reported as
 * one `workers_changed` event per workerEventIntervalMs at most, so a server
 * that forks per connection does not flood the event stream.
 *
 * We observe processes we did not start, so exit codes and signals are not
 * visible to us: a vanished process is reported as `process_exited` (we cannot
 * tell a crash from a clean shutdown), and the next process to listen on the
 * port is reported as a `restart` carrying the downtime. Telling crashes apart
 * is left to consumers that have more context (e.g. a deploy they started).
 */
import { EventEmitter } from "node:events";
import { ProcessSocketsReader } from "./connections.ts";
import type { ProcessSockets, TcpConnection } from "./connections.ts";
import { findListeningProcess } from "./listener.ts";
import type { ListeningProcess } from "./listener.ts";
import { processSet } from "./process-tree.ts";
import { sampleProcess } from "./sample.ts";
import type { ProcessSnapshot, SampleState } from "./sample.ts";
import { sampleProcessSet, type ProcessSetSnapshot } from "./set-sample.ts";

export type ProcessEventType = "process_found" | "process_exited" | "restart" | "workers_changed";

export interface ProcessEvent {
  type: ProcessEventType;
  pid: number;
  /** For `restart`: the pid that listened before. */
  previousPid?: number;
  at: Date;
  /**
   * process_found: { port, address, comm, start_time }
   * process_exited: { port, reason: "vanished" | "pid_reused", uptime_ms?, last_rss_bytes?, last_cpu_percent? }
   * restart: { port, address, comm, start_time, reason: "exited" | "listener_changed", downtime_ms }
   *   downtime_ms is measured between our observations, so it is exact to within one interval.
   * workers_changed: { port, started, exited, process_count, since }: processes of the set seen
   *   starting and exiting since `since` (seen between samples: one that lives less than an interval may be missed).
   */
  details: Record<string, unknown>;
}

export type WatcherStatus = { state: "waiting"; port: number } | { state: "observing"; port: number; pid: number };

export interface ProcessWatcherEvents {
  /** The set's sums; `pid` is the listener's. */
  sample: [ProcessSetSnapshot];
  connections: [TcpConnection[]];
  event: [ProcessEvent];
  status: [WatcherStatus];
  error: [Error];
}

export interface ProcessWatcherOptions {
  port: number;
  /** Sampling interval in milliseconds; default 1000. */
  intervalMs?: number;
  /** At most one workers_changed event per this many milliseconds; default 10000. */
  workerEventIntervalMs?: number;
  /**
   * A count that grows whenever the kernel saw a process of the service fork,
   * connect or accept (the connection tracer), or null while no such source
   * runs. While it stands still, the process tree and the socket table are
   * read again only every `fullScanEvery` samples (default 5): they are the
   * costly part of a sample, and nothing that changes them went unseen. What
   * the kernel does not report (a socket closed or a listener replaced) then
   * shows within those samples. Without it, every sample reads both.
   */
  kernelChanges?: () => number | null;
  fullScanEvery?: number;
}

interface Current {
  pid: number;
  address: string;
  sampleState?: SampleState;
  lastSnapshot?: ProcessSnapshot;
  /** Per member of the set at the last sample (listener included). */
  memberStates: Map<number, SampleState>;
  /** The set and its sockets as read at the last full scan, with the kernel's count then and samples since. */
  scan?: { members: number[]; sockets: ProcessSockets; changes: number | null; samplesSince: number };
}

/**
 * Emits `status` (on transitions, starting with one "waiting" while nothing
 * listens), `event`, and each interval `sample` then `connections`. Timer work
 * never throws: failures are emitted as `error` (and dropped if nobody listens
 * for `error`, so an unhandled error cannot crash the agent).
 */
export class ProcessWatcher extends EventEmitter<ProcessWatcherEvents> {
  readonly port: number;
  readonly intervalMs: number;
  readonly workerEventIntervalMs: number;
  readonly fullScanEvery: number;
  private readonly kernelChanges: (() => number | null) | undefined;
  /** Workers seen starting / exiting and not reported yet. */
  private churn = { started: 0, exited: 0, sinceMs: Date.now() };
  private current: Current | null = null;
  /** The pid we last observed, kept after it exits so the next one is a restart. */
  private lastPid: number | null = null;
  /** Monotonic-ish wall time (Date.now()) at which we noticed the last exit. */
  private exitedAtMs: number | null = null;
  private lastStatusKey: string | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private running: Promise<void> | null = null;
  private started = false;
  private stopped = false;
  /** Re-reads the costly TCP tables only when the socket set changed (or every 30 s). */
  private readonly sockets = new ProcessSocketsReader();

  constructor(options: ProcessWatcherOptions) {
    super();
    const { port, intervalMs = 1000, workerEventIntervalMs = 10_000, fullScanEvery = 5 } = options;
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`invalid TCP port: ${port}`);
    if (!Number.isFinite(intervalMs) || intervalMs < 10) throw new RangeError(`intervalMs must be >= 10, got ${intervalMs}`);
    this.port = port;
    this.intervalMs = intervalMs;
    this.workerEventIntervalMs = workerEventIntervalMs;
    this.fullScanEvery = Math.max(1, Math.floor(fullScanEvery));
    this.kernelChanges = options.kernelChanges;
  }

  /** The pid being observed, or null while waiting. */
  get pid(): number | null {
    return this.current?.pid ?? null;
  }

  /** Starts the first tick right away. Idempotent. */
  start(): this {
    if (this.started || this.stopped) return this;
    this.started = true;
    this.schedule(0);
    return this;
  }

  /** Stops the timer and resolves once an in-flight tick has finished; nothing is emitted after. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.running = this.tick()
        .catch((err: unknown) => this.fail(err))
        .finally(() => {
          this.running = null;
          // On the wall clock's beat (…:01.000, …:02.000 at 1 s): every service of
          // the agent samples on the same tick and shares one read of the TCP tables.
          this.schedule(this.intervalMs - (Date.now() % this.intervalMs));
        });
    }, delayMs);
  }

  private emitSafe<K extends keyof ProcessWatcherEvents>(name: K, ...args: ProcessWatcherEvents[K]): void {
    if (this.stopped) return;
    try {
      // Listener exceptions must not escape into the timer either.
      (this.emit as (n: K, ...a: ProcessWatcherEvents[K]) => boolean)(name, ...args);
    } catch (err) {
      if (name !== "error") this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (this.stopped || this.listenerCount("error") === 0) return;
    const error = err instanceof Error ? err : new Error(String(err));
    try {
      this.emit("error", error);
    } catch {
      // an error listener that throws has nowhere left to report to
    }
  }

  private setStatus(status: WatcherStatus): void {
    const key = status.state === "observing" ? `observing:${status.pid}` : status.state;
    if (this.lastStatusKey === key) return;
    this.lastStatusKey = key;
    this.emitSafe("status", status);
  }

  private event(type: ProcessEventType, pid: number, details: Record<string, unknown>, previousPid?: number): void {
    const ev: ProcessEvent = { type, pid, at: new Date(), details };
    if (previousPid !== undefined) ev.previousPid = previousPid;
    this.emitSafe("event", ev);
  }

  private async tick(): Promise<void> {
    if (!this.current) {
      const found = await findListeningProcess(this.port);
      if (this.stopped) return;
      if (!found) {
        this.setStatus({ state: "waiting", port: this.port });
        return;
      }
      await this.adopt(found, "exited");
    }
    // At most two passes: when the observed process turns out to be gone, look
    // for a successor at once instead of a whole interval later.
    for (let pass = 0; pass < 2 && this.current && !this.stopped; pass++) {
      if (await this.observe(this.current)) return;
      const found = await findListeningProcess(this.port);
      if (this.stopped) return;
      if (!found) {
        this.setStatus({ state: "waiting", port: this.port });
        return;
      }
      await this.adopt(found, "exited");
    }
  }

  /** Samples the current process. Returns false if it is gone (after reporting the exit). */
  private async observe(cur: Current): Promise<boolean> {
    const sample = await sampleProcess(cur.pid, cur.sampleState);
    if (this.stopped) return true;
    if (!sample) {
      this.exited(cur, "vanished");
      return false;
    }
    if (cur.sampleState && sample.state.startTicks !== cur.sampleState.startTicks) {
      this.exited(cur, "pid_reused");
      return false;
    }
    // Read before the scan: what the kernel reports during it makes the next sample scan again.
    const changes = this.kernelChanges?.() ?? null;
    const last = cur.scan;
    const full = !last || changes === null || changes !== last.changes || last.samplesSince + 1 >= this.fullScanEvery;
    let members: number[];
    let sockets: ProcessSockets | null;
    if (full) {
      members = await processSet(cur.pid);
      sockets = await this.sockets.read(members.length ? members : [cur.pid], [this.port]);
    } else {
      members = last.members;
      sockets = last.sockets;
    }
    if (this.stopped) return true;
    if (!sockets) {
      this.exited(cur, "vanished");
      return false;
    }
    const set = await sampleProcessSet(sample, members.slice(1), cur.memberStates);
    if (this.stopped) return true;
    // Members that exited since the scan are left out until the next one finds the set anew.
    cur.scan = full ? { members, sockets, changes, samplesSince: 0 } : { ...last!, members: set.snapshot.pids, samplesSince: last!.samplesSince + 1 };
    if (cur.sampleState) this.countChurn(cur.memberStates, set.states);
    cur.memberStates = set.states;
    cur.sampleState = sample.state;
    cur.lastSnapshot = set.snapshot;
    this.emitSafe("sample", set.snapshot);
    this.emitSafe("connections", sockets.connections);

    if (full && !sockets.listening.some((l) => l.port === this.port)) {
      // Still alive but no longer listening: did another process take the port over?
      const found = await findListeningProcess(this.port);
      if (this.stopped) return true;
      if (found && found.pid !== cur.pid) {
        await this.adopt(found, "listener_changed");
      }
    }
    return true;
  }

  /** Members are told apart by pid and start time, so a reused pid counts as a new worker. */
  private countChurn(before: ReadonlyMap<number, SampleState>, after: ReadonlyMap<number, SampleState>): void {
    const key = (s: SampleState) => `${s.pid}:${s.startTicks}`;
    const was = new Set([...before.values()].map(key));
    const now = new Set([...after.values()].map(key));
    for (const k of now) if (!was.has(k)) this.churn.started++;
    for (const k of was) if (!now.has(k)) this.churn.exited++;
    const nowMs = Date.now();
    if ((this.churn.started || this.churn.exited) && nowMs - this.churn.sinceMs >= this.workerEventIntervalMs) {
      this.event("workers_changed", this.current?.pid ?? 0, {
        port: this.port,
        started: this.churn.started,
        exited: this.churn.exited,
        process_count: after.size,
        since: new Date(this.churn.sinceMs).toISOString(),
      });
      this.churn = { started: 0, exited: 0, sinceMs: nowMs };
    }
  }

  private exited(cur: Current, reason: "vanished" | "pid_reused"): void {
    const details: Record<string, unknown> = { port: this.port, reason };
    const last = cur.lastSnapshot;
    if (last) {
      details.uptime_ms = Math.max(0, last.timestamp.getTime() - last.startTime.getTime());
      details.last_rss_bytes = last.rssBytes;
      details.last_cpu_percent = last.cpuPercent;
    }
    this.current = null;
    this.exitedAtMs = Date.now();
    this.event("process_exited", cur.pid, details);
  }

  private async adopt(found: ListeningProcess, reason: "exited" | "listener_changed"): Promise<void> {
    const first = await sampleProcess(found.pid);
    if (this.stopped) return;
    const details: Record<string, unknown> = { port: this.port, address: found.address };
    if (first) {
      details.comm = first.snapshot.comm;
      details.start_time = first.snapshot.startTime.toISOString();
    }
    const previousPid = this.lastPid;
    this.current = { pid: found.pid, address: found.address, memberStates: new Map() };
    this.churn = { started: 0, exited: 0, sinceMs: Date.now() };
    this.lastPid = found.pid;
    if (previousPid === null) {
      this.event("process_found", found.pid, details);
    } else {
      details.reason = reason;
      details.downtime_ms = reason === "listener_changed" ? 0 : Math.max(0, Date.now() - (this.exitedAtMs ?? Date.now()));
      this.event("restart", found.pid, details, previousPid);
    }
    this.exitedAtMs = null;
    this.setStatus({ state: "observing", port: this.port, pid: found.pid });
  }
}
