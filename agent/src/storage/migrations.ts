// Versioned schema migrations. The list is ordered and append-only: never edit
// a migration that has shipped, add a new one. Each runs once, in its own
// transaction, and is recorded in schema_migrations.
import { applyMigrations, type Conn, type Migration, type MigrationReport } from "@coral/common/duckdb";

export { checkMigrationList, schemaVersion, type Migration, type MigrationReport } from "@coral/common/duckdb";


// The agent schema of the design (raw data, ~1-6 h), with two deliberate
// differences: events are keyed by a TEXT event_id (ids come from the agent
// and are sent to the colony, which dedupes on them), and there is no ART index
// on metrics.timestamp: rows arrive in time order, so DuckDB's per-row-group
// min/max zonemaps already prune time-range scans, and an index would only
// slow the once-a-second appends and the retention DELETEs.
const initial = `
CREATE TABLE metrics (
  timestamp TIMESTAMP NOT NULL,
  metric_name TEXT NOT NULL,
  value DOUBLE NOT NULL,
  labels JSON
);

CREATE TABLE events (
  event_id TEXT PRIMARY KEY,
  timestamp TIMESTAMP NOT NULL,
  event_type TEXT NOT NULL,
  process_name TEXT,
  details JSON
);

-- TCP connections of the observed process, as seen at observed_at.
CREATE TABLE connections (
  local_addr TEXT NOT NULL,
  remote_addr TEXT NOT NULL,
  state TEXT,
  observed_at TIMESTAMP NOT NULL
);

CREATE TABLE process_snapshots (
  timestamp TIMESTAMP NOT NULL,
  pid INTEGER NOT NULL,
  cpu_percent DOUBLE,
  memory_bytes BIGINT,
  fd_count INTEGER,
  thread_count INTEGER
);

-- Telemetry batches not yet acknowledged by JetStream. Rows leave only by ack,
-- never by retention. seq (from a persistent sequence) is the delivery order.
CREATE SEQUENCE outbox_seq START 1;
CREATE TABLE outbox (
  seq BIGINT PRIMARY KEY DEFAULT nextval('outbox_seq'),
  batch_id TEXT NOT NULL UNIQUE,
  subject TEXT NOT NULL,
  payload BLOB NOT NULL,
  created_at TIMESTAMP NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMP NOT NULL,
  last_error TEXT
);
`;

// Live debugging: events of the uprobe collectors, ordered by seq per collector.
const uprobeEvents = `
CREATE TABLE uprobe_events (
  collector_id TEXT NOT NULL,
  seq BIGINT NOT NULL,
  timestamp TIMESTAMP NOT NULL,
  event_type TEXT NOT NULL,
  pid INTEGER NOT NULL,
  tid INTEGER NOT NULL,
  duration_ns BIGINT,
  args JSON,
  return_value TEXT,
  goroutine TEXT,
  PRIMARY KEY (collector_id, seq)
);
`;

// Live debugging: each collector's request, so a restarted agent resumes the
// collectors whose deadline has not passed. ended_at is NULL while it runs
// (or while the agent is down with it still due to run).
const uprobeCollectors = `
CREATE TABLE uprobe_collectors (
  collector_id TEXT PRIMARY KEY,
  label TEXT NOT NULL,
  function_name TEXT NOT NULL,
  duration_ms BIGINT NOT NULL,
  capture_args INTEGER NOT NULL,
  capture_return BOOLEAN NOT NULL,
  sample_rate INTEGER NOT NULL,
  max_events BIGINT NOT NULL,
  started_at TIMESTAMP NOT NULL,
  expires_at TIMESTAMP NOT NULL,
  binary_path TEXT NOT NULL,
  is_go BOOLEAN NOT NULL,
  pid INTEGER NOT NULL,
  ended_at TIMESTAMP,
  stop_reason TEXT,
  stop_detail TEXT
);
`;

// The always-on CPU profiler: one row per window (frames and stacks as one JSON document).
const profileWindows = `
CREATE TABLE profile_windows (
  window_start TIMESTAMP NOT NULL,
  duration_ms INTEGER NOT NULL,
  hz INTEGER NOT NULL,
  total_samples BIGINT NOT NULL,
  other_samples BIGINT NOT NULL,
  stacks JSON NOT NULL
);
CREATE INDEX profile_windows_start ON profile_windows (window_start);
`;

// Node logpoints and snapshots: each record's value, and what a collector
// records (so a restarted agent resumes a logpoint as a logpoint).
const lineSessions = `
ALTER TABLE uprobe_events ADD COLUMN value TEXT;
ALTER TABLE uprobe_collectors ADD COLUMN kind TEXT DEFAULT 'function';
ALTER TABLE uprobe_collectors ADD COLUMN expression TEXT DEFAULT '';
ALTER TABLE uprobe_collectors ADD COLUMN condition TEXT DEFAULT '';
ALTER TABLE uprobe_collectors ADD COLUMN snapshot_count INTEGER DEFAULT 0;
`;

// Traffic samples from the SDK's request middleware (traffic.ts): bounded by bytes and age, pruned on a timer.
const trafficSamples = `
CREATE TABLE IF NOT EXISTS traffic_samples (
  id TEXT PRIMARY KEY,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  route TEXT NOT NULL,
  status INTEGER NOT NULL,
  start_time TIMESTAMP NOT NULL,
  duration_ms DOUBLE NOT NULL,
  reason TEXT NOT NULL,
  received_at TIMESTAMP NOT NULL,
  request_headers JSON NOT NULL,
  response_headers JSON NOT NULL,
  request_body TEXT NOT NULL,
  request_body_truncated BOOLEAN NOT NULL,
  request_body_size BIGINT NOT NULL,
  response_body TEXT NOT NULL,
  response_body_truncated BOOLEAN NOT NULL,
  response_body_size BIGINT NOT NULL,
  size_bytes BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS traffic_samples_start ON traffic_samples (start_time);
`;

// OpenTelemetry in (agent/src/otlp): spans the tail keep rules kept, and log
// records, both in the raw window. Times are the sender's, in ns since the
// epoch, as OTLP carries them; ids are hex.
const otlp = `
CREATE TABLE otlp_spans (
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL,
  parent_span_id TEXT NOT NULL,
  service TEXT NOT NULL,
  pid INTEGER NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  start_time TIMESTAMP NOT NULL,
  start_ns BIGINT NOT NULL,
  duration_ms DOUBLE NOT NULL,
  error BOOLEAN NOT NULL,
  status_message TEXT NOT NULL,
  attributes JSON NOT NULL
);
CREATE INDEX otlp_spans_start ON otlp_spans (start_time);
CREATE INDEX otlp_spans_trace ON otlp_spans (trace_id);
CREATE TABLE otlp_logs (
  timestamp TIMESTAMP NOT NULL,
  time_ns BIGINT NOT NULL,
  service TEXT NOT NULL,
  pid INTEGER NOT NULL,
  severity_number INTEGER NOT NULL,
  severity_text TEXT NOT NULL,
  body TEXT NOT NULL,
  attributes JSON NOT NULL,
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL
);
CREATE INDEX otlp_logs_time ON otlp_logs (timestamp);
`;

export const migrations: readonly Migration[] = [
  { version: 1, name: "agent schema and outbox", up: initial },
  { version: 2, name: "uprobe events", up: uprobeEvents },
  { version: 3, name: "uprobe collectors", up: uprobeCollectors },
  // The session's slow-call threshold, so a resumed collector's summary keeps it.
  { version: 4, name: "uprobe slow threshold", up: "ALTER TABLE uprobe_collectors ADD COLUMN slow_threshold_ms INTEGER DEFAULT 100;" },
  { version: 5, name: "profile windows", up: profileWindows },
  { version: 6, name: "node logpoints and snapshots", up: lineSessions },
  { version: 7, name: "traffic samples", up: trafficSamples },
  { version: 8, name: "OpenTelemetry spans and logs", up: otlp },
];

/** Applies every migration newer than the file's schema version, in order. */
export function migrate(conn: Conn, list: readonly Migration[] = migrations): Promise<MigrationReport> {
  return applyMigrations(conn, list, "agent");
}
