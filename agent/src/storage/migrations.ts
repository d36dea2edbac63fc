// Versioned schema migrations of the agent's SQLite file. The list is ordered
// and append-only: never edit a migration that has shipped, add a new one.
// Each runs once, in its own transaction, and is recorded in schema_migrations.
import type { Conn } from "./sql.ts";

/** One schema change. */
export interface Migration {
  version: number;
  name: string;
  up: string | ((conn: Conn) => void);
}

export interface MigrationReport {
  /** Schema version after migrating. */
  version: number;
  /** Versions applied by this call. */
  applied: number[];
}

// Version 1 is the schema the DuckDB store had reached (its migrations 1-8),
// in SQLite's terms: times are INTEGER milliseconds since the epoch (OTLP's
// nanoseconds stay in their own INTEGER columns), booleans 0/1, JSON as TEXT,
// traffic bodies as BLOBs. Events are keyed by a TEXT event_id (ids come from
// the agent and the colony dedupes on them). Every raw table has an index on
// its time column: SQLite has no zonemaps, and the summaries, detail queries
// and retention DELETEs all select a time range.
const initial = `
CREATE TABLE metrics (
  timestamp INTEGER NOT NULL,
  metric_name TEXT NOT NULL,
  value REAL NOT NULL,
  labels TEXT
);
CREATE INDEX metrics_time ON metrics (timestamp);

CREATE TABLE events (
  event_id TEXT PRIMARY KEY,
  timestamp INTEGER NOT NULL,
  event_type TEXT NOT NULL,
  process_name TEXT,
  details TEXT
);
CREATE INDEX events_time ON events (timestamp);

-- TCP connections of the observed process, as seen at observed_at.
CREATE TABLE connections (
  local_addr TEXT NOT NULL,
  remote_addr TEXT NOT NULL,
  state TEXT,
  observed_at INTEGER NOT NULL
);
CREATE INDEX connections_time ON connections (observed_at);

CREATE TABLE process_snapshots (
  timestamp INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  cpu_percent REAL,
  memory_bytes INTEGER,
  fd_count INTEGER,
  thread_count INTEGER
);
CREATE INDEX process_snapshots_time ON process_snapshots (timestamp);

-- Telemetry batches not yet acknowledged by JetStream. Rows leave only by ack
-- (or the outbox's own bounds), never by retention. seq is the delivery order:
-- AUTOINCREMENT never reuses a number, even once every row was acked.
CREATE TABLE outbox (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  batch_id TEXT NOT NULL UNIQUE,
  subject TEXT NOT NULL,
  payload BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT
);

-- Live debugging: events of the uprobe collectors (and Node logpoints'
-- and snapshots' records in value), ordered by seq per collector.
CREATE TABLE uprobe_events (
  collector_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  timestamp INTEGER NOT NULL,
  event_type TEXT NOT NULL,
  pid INTEGER NOT NULL,
  tid INTEGER NOT NULL,
  duration_ns INTEGER,
  args TEXT,
  return_value TEXT,
  goroutine TEXT,
  value TEXT,
  PRIMARY KEY (collector_id, seq)
);
CREATE INDEX uprobe_events_time ON uprobe_events (timestamp);

-- Each collector's request, so a restarted agent resumes the collectors whose
-- deadline has not passed. ended_at is NULL while it runs (or while the agent
-- is down with it still due to run).
CREATE TABLE uprobe_collectors (
  collector_id TEXT PRIMARY KEY,
  label TEXT NOT NULL,
  function_name TEXT NOT NULL,
  duration_ms INTEGER NOT NULL,
  capture_args INTEGER NOT NULL,
  capture_return INTEGER NOT NULL,
  sample_rate INTEGER NOT NULL,
  max_events INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  binary_path TEXT NOT NULL,
  is_go INTEGER NOT NULL,
  pid INTEGER NOT NULL,
  ended_at INTEGER,
  stop_reason TEXT,
  stop_detail TEXT,
  slow_threshold_ms INTEGER DEFAULT 100,
  kind TEXT DEFAULT 'function',
  expression TEXT DEFAULT '',
  condition TEXT DEFAULT '',
  snapshot_count INTEGER DEFAULT 0
);

-- The always-on CPU profiler: one row per window (frames and stacks as one JSON document).
CREATE TABLE profile_windows (
  window_start INTEGER NOT NULL,
  duration_ms INTEGER NOT NULL,
  hz INTEGER NOT NULL,
  total_samples INTEGER NOT NULL,
  other_samples INTEGER NOT NULL,
  stacks TEXT NOT NULL
);
CREATE INDEX profile_windows_start ON profile_windows (window_start);

-- Traffic samples from the SDK's request middleware (traffic.ts): bounded by bytes and age, pruned on a timer.
CREATE TABLE traffic_samples (
  id TEXT PRIMARY KEY,
  method TEXT NOT NULL,
  path TEXT NOT NULL,
  route TEXT NOT NULL,
  status INTEGER NOT NULL,
  start_time INTEGER NOT NULL,
  duration_ms REAL NOT NULL,
  reason TEXT NOT NULL,
  received_at INTEGER NOT NULL,
  request_headers TEXT NOT NULL,
  response_headers TEXT NOT NULL,
  request_body BLOB NOT NULL,
  request_body_truncated INTEGER NOT NULL,
  request_body_size INTEGER NOT NULL,
  response_body BLOB NOT NULL,
  response_body_truncated INTEGER NOT NULL,
  response_body_size INTEGER NOT NULL,
  size_bytes INTEGER NOT NULL
);
CREATE INDEX traffic_samples_start ON traffic_samples (start_time);

-- OpenTelemetry in (agent/src/otlp): spans the tail keep rules kept, and log
-- records, both in the raw window. Times are the sender's, in ns since the
-- epoch, as OTLP carries them (one index on them serves the time filters,
-- the newest-first order and retention); ids are hex.
CREATE TABLE otlp_spans (
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL,
  parent_span_id TEXT NOT NULL,
  service TEXT NOT NULL,
  pid INTEGER NOT NULL,
  name TEXT NOT NULL,
  kind TEXT NOT NULL,
  start_ns INTEGER NOT NULL,
  duration_ms REAL NOT NULL,
  error INTEGER NOT NULL,
  status_message TEXT NOT NULL,
  attributes TEXT NOT NULL
);
CREATE INDEX otlp_spans_start ON otlp_spans (start_ns);
CREATE INDEX otlp_spans_trace ON otlp_spans (trace_id);
CREATE TABLE otlp_logs (
  time_ns INTEGER NOT NULL,
  service TEXT NOT NULL,
  pid INTEGER NOT NULL,
  severity_number INTEGER NOT NULL,
  severity_text TEXT NOT NULL,
  body TEXT NOT NULL,
  attributes TEXT NOT NULL,
  trace_id TEXT NOT NULL,
  span_id TEXT NOT NULL
);
CREATE INDEX otlp_logs_time ON otlp_logs (time_ns);

-- Facts about the store itself (e.g. that an earlier agent's DuckDB store was imported).
CREATE TABLE store_meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
`;

export const migrations: readonly Migration[] = [{ version: 1, name: "agent schema (SQLite): raw tables, outbox, live debugging, profiles, traffic, OpenTelemetry", up: initial }];

export function checkMigrationList(list: readonly Migration[]): void {
  list.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`migration list out of order: entry ${i} has version ${m.version}, expected ${i + 1}`);
  });
}

export function schemaVersion(conn: Conn): number {
  return Number(conn.get("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")?.v ?? 0);
}

/**
 * Applies every migration newer than the file's schema version, in order,
 * each in its own transaction, recorded in schema_migrations. A file newer
 * than the list is refused.
 */
export function migrate(conn: Conn, list: readonly Migration[] = migrations): MigrationReport {
  checkMigrationList(list);
  conn.db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  )`);
  const current = schemaVersion(conn);
  if (current > list.length) {
    throw new Error(
      `the agent store's schema version is ${current} but this agent knows migrations up to ${list.length}; upgrade the agent (refusing to open a newer database)`,
    );
  }
  const applied: number[] = [];
  for (const m of list.slice(current)) {
    try {
      conn.tx(() => {
        if (typeof m.up === "string") conn.db.exec(m.up);
        else m.up(conn);
        conn.run("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)", [m.version, m.name, Date.now()]);
      });
    } catch (err) {
      throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
    }
    applied.push(m.version);
  }
  return { version: current + applied.length, applied };
}
