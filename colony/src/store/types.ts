// The colony store's contract. One DuckDB file (.coral/colony.duckdb); one
// writer connection fed by a queue; readers on their own connections.
import type { DuckDBConnection } from "@duckdb/node-api";
import type { TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";

export type Interval = "1m" | "5m" | "15m" | "1h" | "1d";
export const intervals: readonly Interval[] = ["1m", "5m", "15m", "1h", "1d"];

/** Retention per table, in milliseconds (from the config's retention block). */
export interface RetentionPolicy {
  metrics_1m: number;
  metrics_5m: number;
  metrics_15m: number;
  metrics_1h: number;
  metrics_1d: number;
  events: number;
  insights: number;
  transitions: number;
  audit: number;
  /** Raw connection observations (edges are kept in service_connections longer). */
  connections: number;
  /** Ingested batch ids kept for exactly-once ingestion (must exceed any redelivery window). */
  batches: number;
}

export interface AgentRow {
  agentId: string;
  serviceName: string;
  port: number;
  address: string;
  version: string;
  hostname: string;
  tags: Record<string, string>;
  agentUrl: string;
  registeredAt: Date;
  lastSeen: Date;
  health: string;
  pid: number;
  processStartedAt: Date | null;
  restartCount: number;
  cpuPercent: number;
  memoryBytes: number;
  /** Processes in the service's set (listener and descendants); 0 when unknown. */
  processCount?: number;
}

export interface ActorSnapshotRow {
  actorId: string;
  /** "agent", "debug_session", "rollback". */
  kind: string;
  /** Increases by one on every persisted transition. */
  version: number;
  state: string;
  /** JSON of XState's persisted snapshot. */
  snapshot: string;
  updatedAt: Date;
}

export interface TransitionRow {
  actorId: string;
  kind: string;
  at: Date;
  fromState: string;
  toState: string;
  event: string;
  reason: string;
  version: number;
}

export interface TokenRow {
  name: string;
  /** exec: read, plus running commands beside services (coral exec); admin does not include it. */
  scope: "read" | "admin" | "exec";
  /** sha256 hex of the token. */
  tokenHash: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
  /** When it stops working; null (or absent) = never. */
  expiresAt?: Date | null;
}

export interface AuditRow {
  at: Date;
  actor: string;
  action: string;
  target: string;
  details: Record<string, unknown>;
}

export interface EventQuery {
  service?: string;
  eventType?: string;
  since?: Date;
  until?: Date;
  limit: number;
}

export interface StoredEvent {
  eventId: string;
  timestamp: Date;
  service: string;
  eventType: string;
  detailsJson: string;
}

export interface MetricQuery {
  /** Absent: every service (one series per service and metric). */
  service?: string;
  metricName?: string;
  since: Date;
  until: Date;
  interval: Interval;
}

export interface MetricPointRow {
  timestamp: Date;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  max: number;
  min: number;
  count: number;
}

export interface MetricSeriesRow {
  service: string;
  metricName: string;
  interval: Interval;
  points: MetricPointRow[];
}

export interface ConnectionEdgeRow {
  fromService: string;
  /** A service name, or "ip:port" for an address no agent owns. */
  toService: string;
  protocol: string;
  external: boolean;
  /** Peak simultaneous connections seen in one observation. */
  connectionCount: number;
  /** Connections opened over the stored history (agents' opened counts; short ones too with eBPF). */
  openedTotal: number;
  /** Connections opened during the last minute. */
  openedLastMinute: number;
  firstObserved: Date;
  lastObserved: Date;
}

export interface IngestResult {
  /** Batches written now. */
  stored: number;
  /** Batches skipped because their batch id was stored before. */
  duplicates: number;
  metricRows: number;
  eventRows: number;
  /** Connection observations stored. */
  connectionRows: number;
}

/** What one rollup run wrote, per target interval. */
export interface RollupResult {
  "5m": number;
  "15m": number;
  "1h": number;
  "1d": number;
}

/** Rows deleted by one retention run, per table (metrics per interval). */
export type RetentionResult = Record<string, number>;

export interface TransitionsQuery {
  /** Only transitions at or before this instant. */
  until?: Date;
  limit: number;
}

/** Optional log sink for background work (maintenance). */
export type StoreLogger = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

export interface OpenStoreOptions {
  /** Overrides of the default retention (milliseconds per table). */
  retention?: Partial<RetentionPolicy>;
  /** Where background work (maintenance) reports problems. */
  logger?: StoreLogger;
  /** Reader connections (default 2). */
  readers?: number;
  /** DuckDB's memory limit for the whole database, e.g. "1GB" (the default); beyond it work spills to disk or fails cleanly. */
  memoryLimit?: string;
}

/**
 * The colony's store. Writes are serialised through one writer connection;
 * reads use their own connections and see committed data only.
 */
export interface ColonyStore extends AsyncDisposable {
  readonly path: string;
  readonly retention: Readonly<RetentionPolicy>;
  /** The applied schema version (number of migrations). */
  schemaVersion(): Promise<number>;

  /** Runs fn on the writer connection, after every write queued before it. */
  write<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T>;
  /** Runs fn on a reader connection. */
  /**
   * A connection of its own for people's ad-hoc SQL (coral query): their
   * queries never wait behind, or hold up, the colony's own reads.
   */
  adHocRead<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T>;
  read<T>(fn: (conn: DuckDBConnection) => Promise<T>): Promise<T>;

  ingest(batches: TelemetryBatch[]): Promise<IngestResult>;

  upsertAgent(row: AgentRow): Promise<void>;
  listAgents(): Promise<AgentRow[]>;
  getAgent(agentId: string): Promise<AgentRow | null>;

  saveActorSnapshot(row: ActorSnapshotRow, transition?: TransitionRow): Promise<void>;
  loadActorSnapshots(kind?: string): Promise<ActorSnapshotRow[]>;
  transitionsFor(actorId: string, q: TransitionsQuery): Promise<TransitionRow[]>;
  stateAt(actorId: string, at: Date): Promise<string | null>;

  createToken(row: TokenRow): Promise<void>;
  findTokenByHash(tokenHash: string): Promise<TokenRow | null>;
  revokeToken(name: string): Promise<boolean>;
  listTokens(): Promise<TokenRow[]>;
  touchToken(name: string, at: Date): Promise<void>;
  appendAudit(row: AuditRow): Promise<void>;
  listAudit(limit: number): Promise<AuditRow[]>;

  queryEvents(q: EventQuery): Promise<StoredEvent[]>;
  queryMetrics(q: MetricQuery): Promise<MetricSeriesRow[]>;
  pickInterval(since: Date, until: Date): Interval;
  connectionEdges(): Promise<ConnectionEdgeRow[]>;

  rollup(now: Date): Promise<RollupResult>;
  applyRetention(now: Date): Promise<RetentionResult>;
  /** Runs rollup + retention every intervalMs; the returned function stops it. */
  startMaintenance(intervalMs: number, logger?: StoreLogger): () => Promise<void>;

  /** Waits for queued work, then closes. Idempotent. */
  close(): Promise<void>;
}
