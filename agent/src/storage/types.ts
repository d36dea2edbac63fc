// The agent store's contract. One SQLite file (agent.sqlite in the agent's
// data folder) holding the last 1-6 h of raw observations, plus the outbox of
// telemetry batches not yet acknowledged by the colony's JetStream.

import type { LogRecordRow, SpanRecord } from "../otlp/records.ts";
import type { LogQuery, SpanQuery } from "./otlp.ts";

/** Where background work (cleanup, publisher) reports problems. Never throws into the caller. */
export type StorageLogger = (level: "info" | "warn" | "error", msg: string, fields?: Record<string, unknown>) => void;

/** Exponential backoff for outbox retries: min(cap, base * 2^(attempts-1)), with jitter. */
export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

export interface OpenAgentStoreOptions {
  /** How long raw rows are kept (ms). Default 1 h, at most 6 h. The outbox is never trimmed by age. */
  retentionMs?: number;
  /** Where startCleanup() reports errors (and retention runs). */
  logger?: StorageLogger;
  /** Outbox retry backoff; default base 1 s, cap 60 s. */
  backoff?: Partial<BackoffPolicy>;
  /**
   * An earlier agent's DuckDB store (agent.duckdb). When that file exists, its
   * pending outbox rows and live-debugging collectors (with their events) are
   * imported at open and it is renamed to `<file>.imported`.
   */
  upgradeFrom?: string;
  /**
   * Buffer raw samples (metrics, snapshots, connections) and write them in one
   * transaction at most this often (ms). 0 (the default) writes each at once.
   * Queries flush first, so they always see every accepted sample.
   */
  writeBufferMs?: number;
}

/** One sample of one metric. */
export interface MetricPoint {
  timestamp: Date;
  name: string;
  value: number;
  labels?: Record<string, string>;
}

/** A metric sample as stored (labels are {} when none were given). */
export interface StoredMetricPoint {
  timestamp: Date;
  name: string;
  value: number;
  labels: Record<string, string>;
}

export interface EventInput {
  /** Unique id; generated (UUID) when absent. Recording an id again returns the first stored event. */
  eventId?: string;
  timestamp: Date;
  /** "start", "stop", "crash", "deploy", … */
  eventType: string;
  processName?: string | null;
  details?: Record<string, unknown> | null;
}

export interface StoredEvent {
  eventId: string;
  timestamp: Date;
  eventType: string;
  processName: string | null;
  details: Record<string, unknown> | null;
}

/** One TCP connection of the observed process. */
export interface ConnectionInput {
  localAddr: string;
  remoteAddr: string;
  state: string;
}

export interface ConnectionRow extends ConnectionInput {
  observedAt: Date;
}

/** One sample of the observed process. */
export interface ProcessSnapshot {
  timestamp: Date;
  pid: number;
  cpuPercent: number;
  memoryBytes: number;
  fdCount: number;
  threadCount: number;
}

/** Time filters are half-open: since <= t < until. */
interface TimeRange {
  since?: Date;
  until?: Date;
  /** At most this many rows (the newest ones), at most 50,000. */
  limit: number;
}

export interface MetricQuery extends TimeRange {
  metricName?: string;
}

export interface EventQuery extends TimeRange {
  eventType?: string;
  processName?: string;
}

export interface SnapshotQuery extends TimeRange {
  pid?: number;
}

export type ConnectionQuery = TimeRange;

/** The newest `limit` matching rows, oldest first; truncated when older matching rows were left out. */
export interface QueryPage<T> {
  rows: T[];
  truncated: boolean;
}

/** Statistics of one metric's raw points over [since, until). Quantiles are interpolated as DuckDB's quantile_cont. */
export interface MetricSummary {
  metricName: string;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  max: number;
  min: number;
  count: number;
}

/** Rows deleted by one retention run, per table. */
export interface RetentionResult {
  cutoff: Date;
  metrics: number;
  events: number;
  connections: number;
  snapshots: number;
  uprobeEvents: number;
  /** Always-on profile windows. */
  profileWindows: number;
  /** Collectors that ended before the cutoff. */
  uprobeCollectors: number;
  otlpSpans: number;
  otlpLogs: number;
}

/** One window of the always-on CPU profiler (agent/src/profile/continuous.ts). */
export interface ProfileWindowInput {
  start: Date;
  durationMs: number;
  hz: number;
  /** Every sample of the window, the stacks left out included. */
  totalSamples: number;
  /** Samples of the stacks left out (beyond the top stacks). */
  otherSamples: number;
  frames: { function: string; module: string; kernel: boolean }[];
  /** Root first; frameIds index frames. */
  stacks: { frameIds: number[]; samples: number; pid: number }[];
}

export type StoredProfileWindow = ProfileWindowInput;

export interface ProfileWindowQuery {
  since?: Date;
  until?: Date;
  limit: number;
}

export interface OutboxInput {
  /** Unique per batch; becomes the Nats-Msg-Id so the colony dedupes redeliveries. */
  batchId: string;
  subject: string;
  payload: Uint8Array;
  /** created_at and first next_attempt_at (default: now). */
  at?: Date;
}

export interface OutboxEntry {
  /** Increasing enqueue order. */
  seq: number;
  batchId: string;
  subject: string;
  payload: Uint8Array;
  createdAt: Date;
  attempts: number;
  nextAttemptAt: Date;
  lastError: string | null;
}

/** The outbox's bounds: beyond them the oldest rows are dropped (counted and reported). */
export interface OutboxBounds {
  /** Total payload bytes kept (default 64 MiB). */
  maxBytes: number;
  /** Rows older than this are dropped (default 24 h). */
  maxAgeMs: number;
}

/** What trimOutbox() dropped. */
export interface OutboxTrim {
  rows: number;
  bytes: number;
  /** Rows dropped for the size bound, and for the age bound. */
  bySize: number;
  byAge: number;
  /** created_at of the oldest dropped row. */
  oldest: Date | null;
  /** The first few dropped batch ids. */
  batchIds: string[];
}

/** What fail() recorded. */
export interface OutboxRetry {
  attempts: number;
  nextAttemptAt: Date;
}

/** One uprobe event as a collector stores it. */
export interface UprobeEventRow {
  seq: number;
  timestamp: Date;
  /** log and snapshot: a Node logpoint's or snapshot's record (value holds it). */
  type: "entry" | "return" | "log" | "snapshot";
  pid: number;
  tid: number;
  durationNs?: number;
  args?: string[];
  returnValue?: string;
  goroutine?: string;
  /** log: the formatted value; snapshot: a JSON object name → formatted value. */
  value?: string;
}

export interface StoredUprobeEvent extends UprobeEventRow {
  collectorId: string;
}

export interface UprobeEventQuery {
  collectorId: string;
  afterSeq?: number;
  since?: Date;
  until?: Date;
  limit: number;
}

/** A uprobe collector's request and, once it ended, how. */
export interface UprobeCollectorRecord {
  collectorId: string;
  label: string;
  functionName: string;
  durationMs: number;
  captureArgs: number;
  captureReturn: boolean;
  sampleRate: number;
  maxEvents: number;
  /** Calls slower than this count as slow. */
  slowThresholdMs: number;
  startedAt: Date;
  expiresAt: Date;
  /** The target's executable when the collector (last) attached. */
  binary: string;
  isGo: boolean;
  pid: number;
  endedAt: Date | null;
  stopReason: string | null;
  /** Why, in words, when the stop reason alone does not say it. */
  stopDetail: string | null;
  /** "function" (the default), or a Node line session: "logpoint", "snapshot" (functionName is then file:line). */
  kind?: CollectorKind;
  /** Logpoints: the expression recorded. */
  expression?: string;
  /** Logpoints and snapshots: only the hits where this holds ("" for all). */
  condition?: string;
  /** Snapshots: how many were asked for. */
  snapshotCount?: number;
}

export type CollectorKind = "function" | "logpoint" | "snapshot";

export interface UprobeCollectorEnd {
  at: Date;
  stopReason: string;
  detail: string | null;
}

/** What a collector stored so far, compactly (enough for its summary). */
export interface UprobeHistory {
  lastSeq: number;
  /** Stored events. */
  count: number;
  entries: number;
  /** Durations of the stored return events. */
  durationsNs: number[];
}

/** A traffic sample as the SDK handed it over (headers already redacted there). */
export interface TrafficSampleInput {
  /** "<service>.<hex>". */
  id: string;
  method: string;
  path: string;
  route: string;
  status: number;
  startTime: Date;
  durationMs: number;
  requestHeaders: { name: string; value: string }[];
  responseHeaders: { name: string; value: string }[];
  requestBody: Uint8Array;
  requestBodyTruncated: boolean;
  requestBodySize: number;
  responseBody: Uint8Array;
  responseBodyTruncated: boolean;
  responseBodySize: number;
  reason: string;
}

export interface TrafficSummary {
  id: string;
  method: string;
  path: string;
  route: string;
  status: number;
  startTime: Date;
  durationMs: number;
  reason: string;
}

export interface StoredTrafficSample extends TrafficSampleInput {
  receivedAt: Date;
  sizeBytes: number;
}

export interface TrafficQuery {
  pathPrefix?: string;
  method?: string;
  /** One status (404) or a class (5 = 5xx). */
  status?: { kind: "exact" | "class"; value: number };
  since?: Date;
  limit: number;
}

export interface TrafficStats {
  samples: number;
  bytes: number;
}

export interface TrafficPrune {
  byAge: number;
  byBytes: number;
}

/**
 * The agent's local store: one SQLite connection whose calls each run to
 * completion, so reads see committed data only. Every method rejects with
 * AgentStoreClosedError once close() has been called.
 */
export interface AgentStore extends AsyncDisposable {
  readonly path: string;
  readonly retentionMs: number;
  /** Migration versions this open applied (empty when the file was up to date). */
  readonly migrationsApplied: readonly number[];
  schemaVersion(): Promise<number>;

  /** Appends samples in one transaction; non-finite values are skipped. Returns rows stored. */
  recordMetrics(points: readonly MetricPoint[]): Promise<number>;
  /** Stores an event (idempotent on eventId) and returns it as stored. */
  recordEvent(event: EventInput): Promise<StoredEvent>;
  /** Stores the connections seen at `at`. Returns rows stored. */
  recordConnections(list: readonly ConnectionInput[], at: Date): Promise<number>;
  recordSnapshot(snapshot: ProcessSnapshot): Promise<void>;
  /** Writes buffered samples now (see OpenAgentStoreOptions.writeBufferMs). */
  flush(): Promise<void>;

  queryMetrics(q: MetricQuery): Promise<QueryPage<StoredMetricPoint>>;
  queryEvents(q: EventQuery): Promise<QueryPage<StoredEvent>>;
  querySnapshots(q: SnapshotQuery): Promise<QueryPage<ProcessSnapshot>>;
  queryConnections(q: ConnectionQuery): Promise<QueryPage<ConnectionRow>>;

  /** Live debugging: appends a collector's events (idempotent on seq). */
  recordUprobeEvents(collectorId: string, rows: readonly UprobeEventRow[]): Promise<number>;
  /** OpenTelemetry spans (kept by the tail rules) and log records, appended in one transaction each. */
  recordSpans(spans: readonly SpanRecord[]): Promise<number>;
  recordLogs(logs: readonly LogRecordRow[]): Promise<number>;
  querySpans(q: SpanQuery): Promise<{ rows: SpanRecord[]; truncated: boolean }>;
  queryLogs(q: LogQuery): Promise<{ rows: (LogRecordRow & { timestamp: Date })[]; truncated: boolean }>;
  /** A collector's events after `afterSeq`, oldest first. */
  queryUprobeEvents(q: UprobeEventQuery): Promise<{ rows: StoredUprobeEvent[]; hasMore: boolean }>;
  /** Stores (or replaces) a collector's request. */
  saveUprobeCollector(c: UprobeCollectorRecord): Promise<void>;
  /** Marks a collector ended (the first end wins). */
  endUprobeCollector(collectorId: string, end: UprobeCollectorEnd): Promise<void>;
  /** Collectors not ended, and those ended at or after `endedSince`, oldest first. */
  listUprobeCollectors(endedSince: Date): Promise<UprobeCollectorRecord[]>;
  /** A collector's last stored seq and its events' kinds and durations. */
  uprobeHistory(collectorId: string): Promise<UprobeHistory>;
  /** The always-on profiler's windows. */
  recordProfileWindow(window: ProfileWindowInput): Promise<void>;
  queryProfileWindows(q: ProfileWindowQuery): Promise<QueryPage<StoredProfileWindow>>;

  /** Traffic samples from the SDK (idempotent on id). Returns rows stored. */
  recordTrafficSamples(list: readonly TrafficSampleInput[], receivedAt: Date): Promise<number>;
  /** Matching samples, newest first. */
  queryTraffic(q: TrafficQuery): Promise<QueryPage<TrafficSummary>>;
  getTrafficSample(id: string): Promise<StoredTrafficSample | null>;
  trafficStats(): Promise<TrafficStats>;
  /** Drops samples older than maxAgeMs, then the oldest beyond maxBytes. */
  pruneTraffic(bounds: { maxBytes: number; maxAgeMs: number }, now?: Date): Promise<TrafficPrune>;

  /** Per metric name (sorted), over raw points with since <= timestamp < until. */
  summarize(since: Date, until: Date): Promise<MetricSummary[]>;

  /** Deletes raw rows older than now - retentionMs. Never touches the outbox. */
  applyRetention(now?: Date): Promise<RetentionResult>;
  /** Runs applyRetention every intervalMs (default 5 min); errors go to the logger. Returns a stop function. */
  startCleanup(intervalMs?: number): () => Promise<void>;

  /** Adds a batch to the outbox; false when that batchId is already pending. */
  enqueue(input: OutboxInput): Promise<boolean>;
  /** Pending rows with next_attempt_at <= now, in seq order. */
  due(now: Date, limit: number): Promise<OutboxEntry[]>;
  /** Pending rows in seq order, due or not (the publisher's head-of-line view). */
  peek(limit: number): Promise<OutboxEntry[]>;
  /** Deletes a delivered batch; false when it was not pending. */
  ack(batchId: string): Promise<boolean>;
  /** Records a failed attempt and schedules the next one with backoff; null when not pending. */
  fail(batchId: string, error: unknown, now: Date): Promise<OutboxRetry | null>;
  pendingCount(): Promise<number>;
  /** Payload bytes pending in the outbox. */
  pendingBytes(): Promise<number>;
  /** Drops the oldest rows beyond the bounds (default 64 MiB, 24 h); returns what went. */
  trimOutbox(now: Date, bounds?: Partial<OutboxBounds>): Promise<OutboxTrim>;

  /** Stops cleanup loops, writes buffered samples, checkpoints, closes and releases the lock. Idempotent. */
  close(): Promise<void>;
}
