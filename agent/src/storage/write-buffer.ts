// Buffers the agent's per-second raw samples and writes them in one
// transaction every few seconds. Each commit runs synchronously on the event
// loop; with DuckDB one per second per table was 43 % of the agent's
// main-thread time (bench/agent-footprint), and one SQLite commit in WAL mode
// still costs a write() of the WAL each. Readers flush first, so a
// query always sees every accepted sample; a crash loses at most one interval
// of raw local samples (summaries and events go to the outbox unbuffered).
import type { ConnectionInput, MetricPoint, ProcessSnapshot, StorageLogger } from "./types.ts";

export interface BufferedRows {
  metrics: MetricPoint[];
  snapshots: ProcessSnapshot[];
  connections: Array<{ list: readonly ConnectionInput[]; at: Date }>;
}

/** Above this many buffered rows a failing disk sheds the oldest, so memory stays bounded. */
const MAX_BUFFERED_ROWS = 200_000;

export class WriteBuffer {
  #rows: BufferedRows = empty();
  #count = 0;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly write: (rows: BufferedRows) => Promise<void>,
    private readonly logger: StorageLogger | undefined,
  ) {}

  addMetrics(points: readonly MetricPoint[]): void {
    this.#rows.metrics.push(...points);
    this.#added(points.length);
  }

  addSnapshot(snapshot: ProcessSnapshot): void {
    this.#rows.snapshots.push(snapshot);
    this.#added(1);
  }

  addConnections(list: readonly ConnectionInput[], at: Date): void {
    this.#rows.connections.push({ list, at });
    this.#added(list.length);
  }

  /** Writes everything buffered so far; resolves once it is committed (or reported). */
  async flush(): Promise<void> {
    // Flushes are serial: a flush asked during another waits and then writes what came since.
    while (this.#flushing) await this.#flushing;
    if (this.#count === 0) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const rows = this.#rows;
    const count = this.#count;
    this.#rows = empty();
    this.#count = 0;
    this.#flushing = this.write(rows)
      .catch((err: unknown) => this.#requeue(rows, count, err))
      .finally(() => (this.#flushing = undefined));
    await this.#flushing;
  }

  /** Stops the timer; the owner flushes once more before closing. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #added(n: number): void {
    this.#count += n;
    if (this.#timer || this.intervalMs <= 0) return;
    this.#timer = setTimeout(() => void this.flush(), this.intervalMs);
    this.#timer.unref();
  }

  #requeue(rows: BufferedRows, count: number, err: unknown): void {
    if (this.#count + count > MAX_BUFFERED_ROWS) {
      this.logger?.("error", "agent storage: could not write buffered samples, dropping them", { rows: count, err: String(err) });
      return;
    }
    this.logger?.("warn", "agent storage: could not write buffered samples, will retry", { rows: count, err: String(err) });
    this.#rows = {
      metrics: [...rows.metrics, ...this.#rows.metrics],
      snapshots: [...rows.snapshots, ...this.#rows.snapshots],
      connections: [...rows.connections, ...this.#rows.connections],
    };
    this.#added(count);
  }
}

function empty(): BufferedRows {
  return { metrics: [], snapshots: [], connections: [] };
}
