// openAgentStore: opens (or creates) the agent's DuckDB file, migrates it and
// wires the writer, the reader and the per-table modules.
import { chmod, mkdir } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { DuckDBInstance } from "@duckdb/node-api";
import { startLoop, type Loop } from "./cleanup.ts";
import { QueuedConnection } from "@coral/common/duckdb";
import * as events from "./events.ts";
import * as metrics from "./metrics.ts";
import { migrate, schemaVersion } from "./migrations.ts";
import * as outbox from "./outbox.ts";
import * as proc from "./process.ts";
import * as uprobe from "./uprobe.ts";
import * as otlp from "./otlp.ts";
import type { LogQuery, SpanQuery } from "./otlp.ts";
import type { LogRecordRow, SpanRecord } from "../otlp/records.ts";
import * as profiles from "./profiles.ts";
import * as traffic from "./traffic.ts";
import { applyRetention, checkRetention, DEFAULT_CLEANUP_INTERVAL_MS } from "./retention.ts";
import { transaction, type Conn } from "./sql.ts";
import { WriteBuffer, type BufferedRows } from "./write-buffer.ts";
import type {
  StoredTrafficSample,
  TrafficPrune,
  TrafficQuery,
  TrafficSampleInput,
  TrafficStats,
  TrafficSummary,
  ProfileWindowInput,
  ProfileWindowQuery,
  StoredProfileWindow,
  AgentStore,
  BackoffPolicy,
  ConnectionInput,
  ConnectionQuery,
  ConnectionRow,
  EventInput,
  EventQuery,
  MetricPoint,
  MetricQuery,
  MetricSummary,
  OpenAgentStoreOptions,
  OutboxBounds,
  OutboxEntry,
  OutboxTrim,
  OutboxInput,
  OutboxRetry,
  ProcessSnapshot,
  QueryPage,
  RetentionResult,
  SnapshotQuery,
  StorageLogger,
  StoredEvent,
  StoredMetricPoint,
  StoredUprobeEvent,
  UprobeCollectorEnd,
  UprobeCollectorRecord,
  UprobeEventQuery,
  UprobeEventRow,
  UprobeHistory,
} from "./types.ts";

/** Thrown (as a rejection) by every method called after close(). */
export class AgentStoreClosedError extends Error {
  constructor(path: string) {
    super(`the agent store ${path} is closed`);
    this.name = "AgentStoreClosedError";
  }
}

export async function openAgentStore(path: string, options: OpenAgentStoreOptions = {}): Promise<AgentStore> {
  if (!path) throw new TypeError("openAgentStore: a file path is required");
  const retentionMs = checkRetention(options.retentionMs);
  const backoff = outbox.resolveBackoff(options.backoff);
  const threads = options.threads ?? 2;
  if (!Number.isInteger(threads) || threads < 1) throw new RangeError(`threads must be a positive integer, got ${threads}`);
  const file = resolve(path);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await makePrivate(file);

  let instance: DuckDBInstance;
  try {
    instance = await DuckDBInstance.create(file, {
      threads: String(threads),
      memory_limit: options.memoryLimit ?? "256MB",
    });
  } catch (err) {
    throw new Error(`cannot open the agent store ${file}: ${(err as Error).message}`, { cause: err });
  }
  let writer: QueuedConnection | undefined;
  let reader: QueuedConnection | undefined;
  try {
    writer = await QueuedConnection.open(instance, "writer");
    const report = await writer.run((c) => migrate(c));
    reader = await QueuedConnection.open(instance, "reader");
    await makePrivate(file);
    return new DuckAgentStore(file, retentionMs, report.applied, {
      instance,
      writer,
      reader,
      backoff,
      logger: options.logger,
      writeBufferMs: options.writeBufferMs ?? 0,
    });
  } catch (err) {
    reader?.closeSync();
    writer?.closeSync();
    instance.closeSync();
    throw err;
  }
}

/**
 * The store holds what the agent observed: owner-only, for new and existing
 * installs alike (the file and its WAL 0600, a `.coral` folder 0700). DuckDB
 * recreates the WAL at every checkpoint with the process umask, so the umask
 * is narrowed to owner-only, as PostgreSQL does.
 */
async function makePrivate(file: string): Promise<void> {
  try {
    process.umask(process.umask(0o077) | 0o077);
  } catch {
    // Worker threads cannot change it; the chmods below still apply.
  }
  const dir = dirname(file);
  const targets: Array<[string, number]> = [[file, 0o600], [`${file}.wal`, 0o600]];
  if (basename(dir) === ".coral") targets.push([dir, 0o700]);
  for (const [path, mode] of targets) {
    try {
      await chmod(path, mode);
    } catch (err) {
      // Missing, or not ours to change (another owner, a read-only mount).
      if (!["ENOENT", "EPERM", "EROFS"].includes((err as NodeJS.ErrnoException).code ?? "")) throw err;
    }
  }
}

class DuckAgentStore implements AgentStore {
  readonly #instance: DuckDBInstance;
  readonly #writer: QueuedConnection;
  readonly #reader: QueuedConnection;
  readonly #backoff: BackoffPolicy;
  readonly #logger: StorageLogger | undefined;
  readonly #loops = new Set<Loop>();
  readonly #buffer: WriteBuffer | undefined;
  #closing: Promise<void> | undefined;

  constructor(
    readonly path: string,
    readonly retentionMs: number,
    readonly migrationsApplied: readonly number[],
    parts: {
      instance: DuckDBInstance;
      writer: QueuedConnection;
      reader: QueuedConnection;
      backoff: BackoffPolicy;
      logger: StorageLogger | undefined;
      writeBufferMs: number;
    },
  ) {
    this.#instance = parts.instance;
    this.#writer = parts.writer;
    this.#reader = parts.reader;
    this.#backoff = parts.backoff;
    this.#logger = parts.logger;
    if (parts.writeBufferMs > 0) this.#buffer = new WriteBuffer(parts.writeBufferMs, (rows) => this.#writeBuffered(rows), parts.logger);
  }

  /** One transaction for everything buffered since the last flush. */
  #writeBuffered(rows: BufferedRows): Promise<void> {
    return this.#writer.run((c) =>
      transaction(c, async () => {
        await metrics.recordMetrics(c, rows.metrics);
        await proc.recordSnapshots(c, rows.snapshots);
        for (const { list, at } of rows.connections) await proc.recordConnections(c, list, at);
      }),
    );
  }

  /** Buffers a validated write when buffering is on; otherwise writes it now. */
  #record<T>(validate: () => void, buffer: (b: WriteBuffer) => T, writeNow: (conn: Conn) => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new AgentStoreClosedError(this.path));
    if (!this.#buffer) return this.#write(writeNow);
    try {
      validate();
      return Promise.resolve(buffer(this.#buffer));
    } catch (err) {
      return Promise.reject(err as Error);
    }
  }

  /** Readers see every accepted sample: buffered rows are written first. */
  async #readFlushed<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    await this.#buffer?.flush();
    return this.#read(fn);
  }

  /** Writes buffered samples now (no-op without a write buffer). */
  flush(): Promise<void> {
    return this.#buffer?.flush() ?? Promise.resolve();
  }

  #write<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new AgentStoreClosedError(this.path));
    return this.#writer.run(fn);
  }

  #read<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new AgentStoreClosedError(this.path));
    return this.#reader.run(fn);
  }

  schemaVersion(): Promise<number> {
    return this.#read((c) => schemaVersion(c));
  }

  recordMetrics(points: readonly MetricPoint[]): Promise<number> {
    return this.#record(
      () => metrics.checkPoints(points),
      (b) => {
        const finite = points.filter((p) => Number.isFinite(p.value));
        b.addMetrics(finite);
        return finite.length;
      },
      (c) => metrics.recordMetrics(c, points),
    );
  }

  recordEvent(event: EventInput): Promise<StoredEvent> {
    return this.#write((c) => events.recordEvent(c, event));
  }

  recordConnections(list: readonly ConnectionInput[], at: Date): Promise<number> {
    return this.#record(
      () => proc.checkConnections(list, at),
      (b) => {
        if (list.length > 0) b.addConnections([...list], at);
        return list.length;
      },
      (c) => proc.recordConnections(c, list, at),
    );
  }

  recordSnapshot(snapshot: ProcessSnapshot): Promise<void> {
    return this.#record(
      () => proc.checkSnapshot(snapshot),
      (b) => b.addSnapshot({ ...snapshot }),
      (c) => proc.recordSnapshot(c, snapshot),
    );
  }

  queryMetrics(q: MetricQuery): Promise<QueryPage<StoredMetricPoint>> {
    return this.#readFlushed((c) => metrics.queryMetrics(c, q));
  }

  queryEvents(q: EventQuery): Promise<QueryPage<StoredEvent>> {
    return this.#read((c) => events.queryEvents(c, q));
  }

  querySnapshots(q: SnapshotQuery): Promise<QueryPage<ProcessSnapshot>> {
    return this.#readFlushed((c) => proc.querySnapshots(c, q));
  }

  queryConnections(q: ConnectionQuery): Promise<QueryPage<ConnectionRow>> {
    return this.#readFlushed((c) => proc.queryConnections(c, q));
  }

  recordUprobeEvents(collectorId: string, rows: readonly UprobeEventRow[]): Promise<number> {
    return this.#write((c) => uprobe.recordUprobeEvents(c, collectorId, rows));
  }

  recordSpans(spans: readonly SpanRecord[]): Promise<number> {
    return this.#write((c) => otlp.recordSpans(c, spans));
  }

  recordLogs(logs: readonly LogRecordRow[]): Promise<number> {
    return this.#write((c) => otlp.recordLogs(c, logs));
  }

  querySpans(q: SpanQuery): Promise<{ rows: SpanRecord[]; truncated: boolean }> {
    return this.#read((c) => otlp.querySpans(c, q));
  }

  queryLogs(q: LogQuery): Promise<{ rows: (LogRecordRow & { timestamp: Date })[]; truncated: boolean }> {
    return this.#read((c) => otlp.queryLogs(c, q));
  }

  queryUprobeEvents(q: UprobeEventQuery): Promise<{ rows: StoredUprobeEvent[]; hasMore: boolean }> {
    return this.#read((c) => uprobe.queryUprobeEvents(c, q));
  }

  saveUprobeCollector(c: UprobeCollectorRecord): Promise<void> {
    return this.#write((conn) => uprobe.saveUprobeCollector(conn, c));
  }

  endUprobeCollector(collectorId: string, end: UprobeCollectorEnd): Promise<void> {
    return this.#write((c) => uprobe.endUprobeCollector(c, collectorId, end));
  }

  listUprobeCollectors(endedSince: Date): Promise<UprobeCollectorRecord[]> {
    return this.#read((c) => uprobe.listUprobeCollectors(c, endedSince));
  }

  uprobeHistory(collectorId: string): Promise<UprobeHistory> {
    return this.#read((c) => uprobe.uprobeHistory(c, collectorId));
  }

  recordProfileWindow(window: ProfileWindowInput): Promise<void> {
    return this.#write((c) => profiles.recordProfileWindow(c, window));
  }

  queryProfileWindows(q: ProfileWindowQuery): Promise<QueryPage<StoredProfileWindow>> {
    return this.#read((c) => profiles.queryProfileWindows(c, q));
  }

  recordTrafficSamples(list: readonly TrafficSampleInput[], receivedAt: Date): Promise<number> {
    return this.#write((c) => transaction(c, () => traffic.recordTrafficSamples(c, list, receivedAt)));
  }

  queryTraffic(q: TrafficQuery): Promise<QueryPage<TrafficSummary>> {
    return this.#read((c) => traffic.queryTraffic(c, q));
  }

  getTrafficSample(id: string): Promise<StoredTrafficSample | null> {
    return this.#read((c) => traffic.getTrafficSample(c, id));
  }

  trafficStats(): Promise<TrafficStats> {
    return this.#read((c) => traffic.trafficStats(c));
  }

  pruneTraffic(bounds: { maxBytes: number; maxAgeMs: number }, now: Date = new Date()): Promise<TrafficPrune> {
    return this.#write((c) => traffic.pruneTraffic(c, bounds, now));
  }

  summarize(since: Date, until: Date): Promise<MetricSummary[]> {
    return this.#readFlushed((c) => metrics.summarize(c, since, until));
  }

  async applyRetention(now: Date = new Date()): Promise<RetentionResult> {
    await this.#buffer?.flush();
    return this.#write((c) => applyRetention(c, this.retentionMs, now));
  }

  startCleanup(intervalMs: number = DEFAULT_CLEANUP_INTERVAL_MS): () => Promise<void> {
    if (this.#closing) throw new AgentStoreClosedError(this.path);
    const logger = this.#logger;
    const loop = startLoop(
      intervalMs,
      async () => {
        if (this.#closing) return;
        const deleted = await this.applyRetention(new Date());
        logger?.("info", "agent storage retention", { ...deleted, cutoff: deleted.cutoff.toISOString() });
      },
      logger,
    );
    this.#loops.add(loop);
    return async () => {
      this.#loops.delete(loop);
      await loop.stop();
    };
  }

  enqueue(input: OutboxInput): Promise<boolean> {
    return this.#write((c) => outbox.enqueue(c, input));
  }

  due(now: Date, limit: number): Promise<OutboxEntry[]> {
    return this.#read((c) => outbox.due(c, now, limit));
  }

  peek(limit: number): Promise<OutboxEntry[]> {
    return this.#read((c) => outbox.peek(c, limit));
  }

  ack(batchId: string): Promise<boolean> {
    return this.#write((c) => outbox.ack(c, batchId));
  }

  fail(batchId: string, error: unknown, now: Date): Promise<OutboxRetry | null> {
    return this.#write((c) => outbox.fail(c, batchId, error, now, this.#backoff));
  }

  pendingCount(): Promise<number> {
    return this.#read((c) => outbox.pendingCount(c));
  }

  pendingBytes(): Promise<number> {
    return this.#read((c) => outbox.pendingBytes(c));
  }

  async trimOutbox(now: Date, bounds?: Partial<OutboxBounds>): Promise<OutboxTrim> {
    const resolved = outbox.resolveOutboxBounds(bounds);
    return this.#write((c) => outbox.trim(c, resolved, now));
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await Promise.all([...this.#loops].map((l) => l.stop()));
    this.#loops.clear();
    this.#buffer?.stop();
    await this.#buffer?.flush();
    await this.#writer.drain();
    await this.#reader.drain();
    try {
      await this.#writer.run((c) => c.run("CHECKPOINT"));
    } catch (err) {
      this.#logger?.("warn", "checkpoint on close failed", { err: (err as Error).message });
    }
    this.#reader.closeSync();
    this.#writer.closeSync();
    this.#instance.closeSync();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
