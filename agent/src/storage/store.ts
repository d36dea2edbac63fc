// openAgentStore: opens (or creates) the agent's SQLite file, takes its lock,
// migrates it, imports what an earlier agent's DuckDB file still held, and
// wires the per-table modules. better-sqlite3 is synchronous and the agent
// has one connection: every call runs to completion on the event loop (bounded
// by its LIMIT or time window), so reads always see committed data and a failed
// call leaves no transaction open. The interface stays async. (`coral query`
// reads the file through read-only connections of its own, see ../query.)
import { chmod, mkdir, unlink, writeFile, readFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import Database from "better-sqlite3";
import { startLoop, type Loop } from "./cleanup.ts";
import * as events from "./events.ts";
import { importLegacyDuckdb } from "./legacy.ts";
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
import { Conn } from "./sql.ts";
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

/**
 * SQLite's page cache per connection, in KiB. The agent's queries are appends
 * and scans of a recent time range through an index; the kernel's page cache
 * holds the file anyway, so a bigger cache would mostly count the same pages
 * twice in the agent's RSS. 2 MiB keeps the indexes' hot pages.
 */
export const CACHE_KIB = 2_048;

/**
 * Opens the store. Another process (or another open in this one) that holds
 * the file gets an error saying "could not set lock … (PID n)", the holder's
 * pid from the `<file>-lock` note it left.
 */
export async function openAgentStore(path: string, options: OpenAgentStoreOptions = {}): Promise<AgentStore> {
  if (!path) throw new TypeError("openAgentStore: a file path is required");
  const retentionMs = checkRetention(options.retentionMs);
  const backoff = outbox.resolveBackoff(options.backoff);
  const file = resolve(path);
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  await makePrivate(file);

  const owner = await lock(file);
  let db: Database.Database | undefined;
  try {
    db = openWal(file);
    const conn = new Conn(db);
    const report = migrate(conn);
    if (options.upgradeFrom && existsSync(options.upgradeFrom)) {
      const imported = await importLegacyDuckdb(conn, options.upgradeFrom);
      options.logger?.("info", "agent storage: imported the earlier agent's DuckDB store", { ...imported });
    }
    await makePrivate(file);
    return new SqliteAgentStore(file, retentionMs, report.applied, { conn, owner, backoff, logger: options.logger, writeBufferMs: options.writeBufferMs ?? 0 });
  } catch (err) {
    db?.close();
    owner.close();
    await unlink(`${file}-lock`).catch(() => undefined);
    throw err;
  }
}

/**
 * Takes the store for this process alone, for as long as it is open, on a
 * file of its own, `<file>-owner`: a connection there in locking_mode
 * EXCLUSIVE (set before WAL) with a write transaction at once holds that
 * file's lock until it closes; the kernel drops it when the process dies, so
 * a crashed agent leaves nothing stale. The store itself stays in normal
 * locking mode, so read-only connections of `coral query` (../query) read it
 * while the agent writes. The holder's pid goes into `<file>-lock` for the
 * next opener's message.
 */
async function lock(file: string): Promise<Database.Database> {
  const note = `${file}-lock`;
  let owner: Database.Database | undefined;
  try {
    // timeout 0: a second opener fails at once instead of waiting for a lock that is held for the holder's lifetime.
    owner = new Database(`${file}-owner`, { timeout: 0 });
    owner.pragma("locking_mode = EXCLUSIVE");
    owner.pragma("journal_mode = WAL");
    owner.exec("BEGIN IMMEDIATE; COMMIT");
  } catch (err) {
    owner?.close();
    const code = (err as { code?: string }).code ?? "";
    if (code.startsWith("SQLITE_BUSY") || code.startsWith("SQLITE_LOCKED")) {
      const pid = Number((await readFile(note, "utf8").catch(() => "")).trim());
      const holder = Number.isInteger(pid) && pid > 1 ? ` (PID ${pid})` : "";
      throw new Error(`cannot open the agent store ${file}: could not set lock: another agent holds it${holder}`, { cause: err });
    }
    throw new Error(`cannot open the agent store ${file}: ${(err as Error).message}`, { cause: err });
  }
  await writeFile(note, `${process.pid}\n`, { mode: 0o600 });
  return owner;
}

/** The store's own connection: WAL (readers do not wait for the writer), with its caches bounded. */
function openWal(file: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    // Only this process writes (the owner lock); readers wait at most this long for the WAL index.
    db = new Database(file, { timeout: 1_000 });
    db.pragma("journal_mode = WAL");
  } catch (err) {
    db?.close();
    if ((err as { code?: string }).code === "SQLITE_NOTADB")
      throw new Error(`cannot open the agent store ${file}: it is not an SQLite file (an earlier agent's DuckDB file is named agent.duckdb)`, { cause: err });
    throw new Error(`cannot open the agent store ${file}: ${(err as Error).message}`, { cause: err });
  }
  db.pragma("synchronous = NORMAL");
  db.pragma(`cache_size = -${CACHE_KIB}`);
  // Sorts and temporary indexes spill to disk, not to memory.
  db.pragma("temp_store = FILE");
  // The WAL file is cut back to this size after each checkpoint.
  db.pragma(`journal_size_limit = ${8 * 1024 * 1024}`);
  return db;
}

/**
 * The store holds what the agent observed: owner-only, for new and existing
 * installs alike (the file and its WAL 0600, a `.coral` folder 0700). SQLite
 * gives its WAL and journal the database file's mode; the umask is narrowed to
 * owner-only as well, as PostgreSQL does, for every other file the agent makes.
 */
async function makePrivate(file: string): Promise<void> {
  try {
    process.umask(process.umask(0o077) | 0o077);
  } catch {
    // Worker threads cannot change it; the chmods below still apply.
  }
  const dir = dirname(file);
  const targets: Array<[string, number]> = [file, `${file}-wal`, `${file}-shm`, `${file}-journal`, `${file}-lock`, `${file}-owner`].map((f) => [f, 0o600]);
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

/** A synchronous call's result or error as a settled promise. */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

class SqliteAgentStore implements AgentStore {
  readonly #conn: Conn;
  /** Holds the store's lock (see lock()) until close. */
  readonly #owner: Database.Database;
  /** Retention runs in progress (they yield between chunks); close() waits for them. */
  readonly #running = new Set<Promise<unknown>>();
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
      conn: Conn;
      owner: Database.Database;
      backoff: BackoffPolicy;
      logger: StorageLogger | undefined;
      writeBufferMs: number;
    },
  ) {
    this.#conn = parts.conn;
    this.#owner = parts.owner;
    this.#backoff = parts.backoff;
    this.#logger = parts.logger;
    if (parts.writeBufferMs > 0) this.#buffer = new WriteBuffer(parts.writeBufferMs, (rows) => this.#writeBuffered(rows), parts.logger);
  }

  /** One transaction for everything buffered since the last flush. */
  #writeBuffered(rows: BufferedRows): Promise<void> {
    return settle(() => {
      const c = this.#conn;
      c.tx(() => {
        metrics.recordMetrics(c, rows.metrics);
        proc.recordSnapshots(c, rows.snapshots);
        for (const { list, at } of rows.connections) proc.recordConnections(c, list, at);
      });
    });
  }

  /** Buffers a validated write when buffering is on; otherwise writes it now. */
  #record<T>(validate: () => void, buffer: (b: WriteBuffer) => T, writeNow: (conn: Conn) => T): Promise<T> {
    if (this.#closing) return Promise.reject(new AgentStoreClosedError(this.path));
    if (!this.#buffer) return this.#run(writeNow);
    return settle(() => {
      validate();
      return buffer(this.#buffer!);
    });
  }

  /** Readers see every accepted sample: buffered rows are written first. */
  async #readFlushed<T>(fn: (conn: Conn) => T): Promise<T> {
    if (this.#closing) throw new AgentStoreClosedError(this.path);
    await this.#buffer?.flush();
    return this.#run(fn);
  }

  /** Writes buffered samples now (no-op without a write buffer). */
  flush(): Promise<void> {
    return this.#buffer?.flush() ?? Promise.resolve();
  }

  /** Runs one bounded synchronous call on the connection. */
  #run<T>(fn: (conn: Conn) => T): Promise<T> {
    if (this.#closing || !this.#conn.db.open) return Promise.reject(new AgentStoreClosedError(this.path));
    return settle(() => fn(this.#conn));
  }

  schemaVersion(): Promise<number> {
    return this.#run((c) => schemaVersion(c));
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
    return this.#run((c) => events.recordEvent(c, event));
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
    return this.#run((c) => events.queryEvents(c, q));
  }

  querySnapshots(q: SnapshotQuery): Promise<QueryPage<ProcessSnapshot>> {
    return this.#readFlushed((c) => proc.querySnapshots(c, q));
  }

  queryConnections(q: ConnectionQuery): Promise<QueryPage<ConnectionRow>> {
    return this.#readFlushed((c) => proc.queryConnections(c, q));
  }

  recordUprobeEvents(collectorId: string, rows: readonly UprobeEventRow[]): Promise<number> {
    return this.#run((c) => uprobe.recordUprobeEvents(c, collectorId, rows));
  }

  recordSpans(spans: readonly SpanRecord[]): Promise<number> {
    return this.#run((c) => otlp.recordSpans(c, spans));
  }

  recordLogs(logs: readonly LogRecordRow[]): Promise<number> {
    return this.#run((c) => otlp.recordLogs(c, logs));
  }

  querySpans(q: SpanQuery): Promise<{ rows: SpanRecord[]; truncated: boolean }> {
    return this.#run((c) => otlp.querySpans(c, q));
  }

  queryLogs(q: LogQuery): Promise<{ rows: (LogRecordRow & { timestamp: Date })[]; truncated: boolean }> {
    return this.#run((c) => otlp.queryLogs(c, q));
  }

  queryUprobeEvents(q: UprobeEventQuery): Promise<{ rows: StoredUprobeEvent[]; hasMore: boolean }> {
    return this.#run((c) => uprobe.queryUprobeEvents(c, q));
  }

  saveUprobeCollector(c: UprobeCollectorRecord): Promise<void> {
    return this.#run((conn) => uprobe.saveUprobeCollector(conn, c));
  }

  endUprobeCollector(collectorId: string, end: UprobeCollectorEnd): Promise<void> {
    return this.#run((c) => uprobe.endUprobeCollector(c, collectorId, end));
  }

  listUprobeCollectors(endedSince: Date): Promise<UprobeCollectorRecord[]> {
    return this.#run((c) => uprobe.listUprobeCollectors(c, endedSince));
  }

  uprobeHistory(collectorId: string): Promise<UprobeHistory> {
    return this.#run((c) => uprobe.uprobeHistory(c, collectorId));
  }

  recordProfileWindow(window: ProfileWindowInput): Promise<void> {
    return this.#run((c) => profiles.recordProfileWindow(c, window));
  }

  queryProfileWindows(q: ProfileWindowQuery): Promise<QueryPage<StoredProfileWindow>> {
    return this.#run((c) => profiles.queryProfileWindows(c, q));
  }

  recordTrafficSamples(list: readonly TrafficSampleInput[], receivedAt: Date): Promise<number> {
    return this.#run((c) => traffic.recordTrafficSamples(c, list, receivedAt));
  }

  queryTraffic(q: TrafficQuery): Promise<QueryPage<TrafficSummary>> {
    return this.#run((c) => traffic.queryTraffic(c, q));
  }

  getTrafficSample(id: string): Promise<StoredTrafficSample | null> {
    return this.#run((c) => traffic.getTrafficSample(c, id));
  }

  trafficStats(): Promise<TrafficStats> {
    return this.#run((c) => traffic.trafficStats(c));
  }

  pruneTraffic(bounds: { maxBytes: number; maxAgeMs: number }, now: Date = new Date()): Promise<TrafficPrune> {
    return this.#run((c) => traffic.pruneTraffic(c, bounds, now));
  }

  summarize(since: Date, until: Date): Promise<MetricSummary[]> {
    return this.#readFlushed((c) => metrics.summarize(c, since, until));
  }

  async applyRetention(now: Date = new Date()): Promise<RetentionResult> {
    if (this.#closing) throw new AgentStoreClosedError(this.path);
    await this.#buffer?.flush();
    const run = applyRetention(
      () => {
        if (!this.#conn.db.open) throw new AgentStoreClosedError(this.path);
        return this.#conn;
      },
      this.retentionMs,
      now,
      yieldToEventLoop,
    );
    this.#running.add(run);
    try {
      return await run;
    } finally {
      this.#running.delete(run);
    }
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
    return this.#run((c) => outbox.enqueue(c, input));
  }

  due(now: Date, limit: number): Promise<OutboxEntry[]> {
    return this.#run((c) => outbox.due(c, now, limit));
  }

  peek(limit: number): Promise<OutboxEntry[]> {
    return this.#run((c) => outbox.peek(c, limit));
  }

  ack(batchId: string): Promise<boolean> {
    return this.#run((c) => outbox.ack(c, batchId));
  }

  fail(batchId: string, error: unknown, now: Date): Promise<OutboxRetry | null> {
    return this.#run((c) => outbox.fail(c, batchId, error, now, this.#backoff));
  }

  pendingCount(): Promise<number> {
    return this.#run((c) => outbox.pendingCount(c));
  }

  pendingBytes(): Promise<number> {
    return this.#run((c) => outbox.pendingBytes(c));
  }

  async trimOutbox(now: Date, bounds?: Partial<OutboxBounds>): Promise<OutboxTrim> {
    const resolved = outbox.resolveOutboxBounds(bounds);
    return this.#run((c) => outbox.trim(c, resolved, now));
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await Promise.all([...this.#loops].map((l) => l.stop()));
    this.#loops.clear();
    this.#buffer?.stop();
    // Flush without the closed check (#closing is set): the buffer's rows are accepted data.
    await this.#buffer?.flush();
    await Promise.allSettled([...this.#running]);
    try {
      // Closing the last connection checkpoints the WAL into the file and removes it.
      this.#conn.db.close();
    } catch (err) {
      this.#logger?.("warn", "closing the agent store failed", { err: (err as Error).message });
    }
    this.#owner.close();
    await unlink(`${this.path}-lock`).catch(() => undefined);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
