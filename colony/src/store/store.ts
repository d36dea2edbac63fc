// ColonyStore: wires the writer, the readers and the per-table modules.
import type { DuckDBInstance } from "@duckdb/node-api";
import type { TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import * as actors from "./actors.ts";
import * as agents from "./agents.ts";
import * as audit from "./audit.ts";
import { connectionEdges } from "./connections.ts";
import { queryEvents } from "./events-query.ts";
import { ingestBatches } from "./ingest.ts";
import { startLoop, type MaintenanceLoop } from "./maintenance.ts";
import { pickInterval, queryMetrics } from "./metrics-query.ts";
import { schemaVersion } from "./migrations.ts";
import type { ReaderPool } from "./readers.ts";
import { applyRetention } from "./retention.ts";
import { rollup } from "./rollup.ts";
import type { Conn } from "./sql.ts";
import * as tokens from "./tokens.ts";
import type {
  ActorSnapshotRow,
  AgentRow,
  AuditRow,
  ColonyStore,
  ConnectionEdgeRow,
  EventQuery,
  IngestResult,
  Interval,
  MetricQuery,
  MetricSeriesRow,
  RetentionPolicy,
  RetentionResult,
  RollupResult,
  StoreLogger,
  StoredEvent,
  TokenRow,
  TransitionRow,
  TransitionsQuery,
} from "./types.ts";
import type { QueuedConnection } from "@coral/common/duckdb";

/** Thrown by every method called after close(). */
export class StoreClosedError extends Error {
  constructor(path: string) {
    super(`the colony store ${path} is closed`);
    this.name = "StoreClosedError";
  }
}

export class DuckColonyStore implements ColonyStore {
  readonly #instance: DuckDBInstance;
  readonly #writer: QueuedConnection;
  readonly #readers: ReaderPool;
  readonly #adHoc: ReaderPool;
  readonly #logger: StoreLogger | undefined;
  readonly #loops = new Set<MaintenanceLoop>();
  #closing: Promise<void> | undefined;

  constructor(
    readonly path: string,
    readonly retention: Readonly<RetentionPolicy>,
    parts: { instance: DuckDBInstance; writer: QueuedConnection; readers: ReaderPool; adHoc: ReaderPool; logger?: StoreLogger },
  ) {
    this.#instance = parts.instance;
    this.#writer = parts.writer;
    this.#readers = parts.readers;
    this.#adHoc = parts.adHoc;
    this.#logger = parts.logger;
  }

  write<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new StoreClosedError(this.path));
    return this.#writer.run(fn);
  }

  read<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new StoreClosedError(this.path));
    return this.#readers.read(fn);
  }

  adHocRead<T>(fn: (conn: Conn) => Promise<T>): Promise<T> {
    if (this.#closing) return Promise.reject(new StoreClosedError(this.path));
    return this.#adHoc.read(fn);
  }

  schemaVersion(): Promise<number> {
    return this.read((c) => schemaVersion(c));
  }

  ingest(batches: TelemetryBatch[]): Promise<IngestResult> {
    return this.write((c) => ingestBatches(c, batches));
  }

  upsertAgent(row: AgentRow): Promise<void> {
    return this.write((c) => agents.upsertAgent(c, row));
  }

  listAgents(): Promise<AgentRow[]> {
    return this.read((c) => agents.listAgents(c));
  }

  getAgent(agentId: string): Promise<AgentRow | null> {
    return this.read((c) => agents.getAgent(c, agentId));
  }

  saveActorSnapshot(row: ActorSnapshotRow, transition?: TransitionRow): Promise<void> {
    return this.write((c) => actors.saveActorSnapshot(c, row, transition));
  }

  loadActorSnapshots(kind?: string): Promise<ActorSnapshotRow[]> {
    return this.read((c) => actors.loadActorSnapshots(c, kind));
  }

  transitionsFor(actorId: string, q: TransitionsQuery): Promise<TransitionRow[]> {
    return this.read((c) => actors.transitionsFor(c, actorId, q));
  }

  stateAt(actorId: string, at: Date): Promise<string | null> {
    return this.read((c) => actors.stateAt(c, actorId, at));
  }

  createToken(row: TokenRow): Promise<void> {
    return this.write((c) => tokens.createToken(c, row));
  }

  findTokenByHash(tokenHash: string): Promise<TokenRow | null> {
    return this.read((c) => tokens.findTokenByHash(c, tokenHash));
  }

  revokeToken(name: string): Promise<boolean> {
    return this.write((c) => tokens.revokeToken(c, name));
  }

  listTokens(): Promise<TokenRow[]> {
    return this.read((c) => tokens.listTokens(c));
  }

  touchToken(name: string, at: Date): Promise<void> {
    return this.write((c) => tokens.touchToken(c, name, at));
  }

  appendAudit(row: AuditRow): Promise<void> {
    return this.write((c) => audit.appendAudit(c, row));
  }

  listAudit(limit: number): Promise<AuditRow[]> {
    return this.read((c) => audit.listAudit(c, limit));
  }

  queryEvents(q: EventQuery): Promise<StoredEvent[]> {
    return this.read((c) => queryEvents(c, q));
  }

  queryMetrics(q: MetricQuery): Promise<MetricSeriesRow[]> {
    return this.read((c) => queryMetrics(c, q));
  }

  pickInterval(since: Date, until: Date): Interval {
    return pickInterval(since, until);
  }

  connectionEdges(): Promise<ConnectionEdgeRow[]> {
    return this.read((c) => connectionEdges(c));
  }

  rollup(now: Date): Promise<RollupResult> {
    return this.write((c) => rollup(c, now));
  }

  applyRetention(now: Date): Promise<RetentionResult> {
    return this.write((c) => applyRetention(c, this.retention, now));
  }

  startMaintenance(intervalMs: number, logger: StoreLogger | undefined = this.#logger): () => Promise<void> {
    if (this.#closing) throw new StoreClosedError(this.path);
    const loop = startLoop(
      intervalMs,
      async () => {
        if (this.#closing) return;
        const rolled = await this.rollup(new Date());
        const deleted = await this.applyRetention(new Date());
        logger?.("info", "store maintenance", { rolled, deleted });
      },
      logger,
    );
    this.#loops.add(loop);
    return async () => {
      this.#loops.delete(loop);
      await loop.stop();
    };
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await Promise.all([...this.#loops].map((l) => l.stop()));
    this.#loops.clear();
    await this.#writer.drain();
    await this.#readers.drain();
    await this.#adHoc.drain();
    try {
      await this.#writer.run((c) => c.run("CHECKPOINT"));
    } catch (err) {
      this.#logger?.("warn", "checkpoint on close failed", { err: (err as Error).message });
    }
    this.#readers.closeSync();
    this.#adHoc.closeSync();
    this.#writer.closeSync();
    this.#instance.closeSync();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
