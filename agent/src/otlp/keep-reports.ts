// Tells the colony which traces this agent keeps for an error or slow span
// (TailSampler's onKeep), so it can tell the other agents to keep theirs.
// Soon, not after the keep rules' wait: the first id goes out at once, later
// ones at most every `everyMs`, up to `maxPerCall` ids a call, one call at a
// time. Reporting never holds up ingest: ids past `maxQueued` are dropped, a
// failed call drops its ids; both are counted.
import { maxKeptTraceIds } from "@coral/proto";

export interface KeepReporterOptions {
  /** Sends one batch (MeshService.ReportKeptTraces); a rejection drops the batch. */
  send(traceIds: string[]): Promise<void>;
  /** At most one call per this long (default 200 ms). */
  everyMs?: number;
  /** Ids a call carries at most (default and most 1000). */
  maxPerCall?: number;
  /** Ids waiting at most (default 10,000); more are dropped. */
  maxQueued?: number;
  onError?: (err: unknown) => void;
  now?: () => number;
}

export interface KeepReportStats {
  /** Trace ids the colony accepted. */
  sent: number;
  calls: number;
  /** Ids of calls that failed (not retried). */
  failed: number;
  /** Ids dropped because too many were waiting, or the agent stopped. */
  dropped: number;
  queued: number;
}

export class KeepReporter {
  readonly #send: (traceIds: string[]) => Promise<void>;
  readonly #everyMs: number;
  readonly #maxPerCall: number;
  readonly #maxQueued: number;
  readonly #onError: ((err: unknown) => void) | undefined;
  readonly #now: () => number;
  readonly #queue = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #sending = false;
  #stopped = false;
  #lastCallAt = -Infinity;
  readonly #stats = { sent: 0, calls: 0, failed: 0, dropped: 0 };

  constructor(options: KeepReporterOptions) {
    this.#send = options.send;
    this.#everyMs = options.everyMs ?? 200;
    this.#maxPerCall = Math.min(options.maxPerCall ?? maxKeptTraceIds, maxKeptTraceIds);
    this.#maxQueued = options.maxQueued ?? 10_000;
    this.#onError = options.onError;
    this.#now = options.now ?? Date.now;
  }

  stats(): KeepReportStats {
    return { ...this.#stats, queued: this.#queue.size };
  }

  /** Queues a trace id for the next call; never waits, never throws. */
  report(traceId: string): void {
    if (this.#stopped || this.#queue.size >= this.#maxQueued) {
      this.#stats.dropped++;
      return;
    }
    this.#queue.add(traceId);
    this.#arm();
  }

  #arm(): void {
    if (this.#timer || this.#sending || this.#stopped || this.#queue.size === 0) return;
    const wait = Math.max(0, this.#lastCallAt + this.#everyMs - this.#now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#call();
    }, wait);
    this.#timer.unref();
  }

  async #call(): Promise<void> {
    const batch: string[] = [];
    for (const id of this.#queue) {
      if (batch.length >= this.#maxPerCall) break;
      batch.push(id);
      this.#queue.delete(id);
    }
    this.#sending = true;
    this.#lastCallAt = this.#now();
    this.#stats.calls++;
    try {
      await this.#send(batch);
      this.#stats.sent += batch.length;
    } catch (err) {
      this.#stats.failed += batch.length;
      this.#onError?.(err);
    } finally {
      this.#sending = false;
      this.#arm();
    }
  }

  /** Stops reporting; what waits is dropped (an in-flight call finishes on its own). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#stats.dropped += this.#queue.size;
    this.#queue.clear();
  }
}
