// Versioned schema migrations. The list is ordered and append-only: never edit
// a migration that has shipped, add a new one. Each runs once, in its own
// transaction, and is recorded in schema_migrations.
import { applyMigrations, type Conn, type Migration, type MigrationReport } from "@coral/common/duckdb";

export { checkMigrationList, schemaVersion, type Migration, type MigrationReport } from "@coral/common/duckdb";


const initial = `
-- Components of the application (one row per service name; kept from agent registrations).
CREATE TABLE services (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  app_id TEXT,
  version TEXT,
  agent_id TEXT,
  labels JSON,
  last_seen TIMESTAMP,
  status TEXT
);

-- Write generations: every ingest and rollup run takes one; rollups recompute
-- only windows whose source rows have a newer generation than their last run.
CREATE SEQUENCE write_gen START 1;

-- Summaries from agents ('1m' as sent) and the colony's rollups (5m/15m/1h/1d).
-- service_id is the service name; gen is the write generation (see rollup.ts).
CREATE TABLE metric_summaries (
  timestamp TIMESTAMP NOT NULL,
  service_id TEXT NOT NULL,
  metric_name TEXT NOT NULL,
  interval TEXT NOT NULL CHECK (interval IN ('1m', '5m', '15m', '1h', '1d')),
  p50 DOUBLE,
  p95 DOUBLE,
  p99 DOUBLE,
  mean DOUBLE,
  max DOUBLE,
  min DOUBLE,
  count BIGINT NOT NULL,
  agent_id TEXT,
  labels JSON,
  gen BIGINT NOT NULL,
  PRIMARY KEY (timestamp, service_id, metric_name, interval)
);

CREATE TABLE events (
  event_id TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  service_id TEXT NOT NULL,
  timestamp TIMESTAMP NOT NULL,
  event_type TEXT NOT NULL,
  details JSON,
  correlation_group TEXT,
  batch_id TEXT,
  ingested_at TIMESTAMP NOT NULL,
  UNIQUE (agent_id, event_id)
);

CREATE SEQUENCE insights_id_seq;
CREATE TABLE insights (
  id BIGINT PRIMARY KEY DEFAULT nextval('insights_id_seq'),
  created_at TIMESTAMP NOT NULL,
  insight_type TEXT,
  priority TEXT,
  title TEXT,
  summary TEXT,
  details JSON,
  affected_services TEXT[],
  status TEXT,
  confidence DOUBLE,
  expires_at TIMESTAMP
);

-- Topology edges kept beyond the raw observations' retention (see connections.ts).
CREATE TABLE service_connections (
  from_service TEXT NOT NULL,
  to_service TEXT NOT NULL,
  protocol TEXT NOT NULL,
  first_observed TIMESTAMP NOT NULL,
  last_observed TIMESTAMP NOT NULL,
  connection_count BIGINT NOT NULL,
  external BOOLEAN NOT NULL,
  PRIMARY KEY (from_service, to_service, protocol)
);

-- Raw outbound connections as agents reported them; edges are derived from these.
CREATE TABLE connection_observations (
  agent_id TEXT NOT NULL,
  service_id TEXT NOT NULL,
  local_addr TEXT NOT NULL,
  remote_addr TEXT NOT NULL,
  local_port INTEGER,
  remote_host TEXT,
  remote_port INTEGER,
  state TEXT,
  observed_at TIMESTAMP NOT NULL,
  count INTEGER NOT NULL,
  batch_id TEXT
);

CREATE TABLE baselines (
  service_id TEXT NOT NULL,
  metric_name TEXT NOT NULL,
  time_window TEXT NOT NULL,
  mean DOUBLE,
  stddev DOUBLE,
  p50 DOUBLE,
  p95 DOUBLE,
  p99 DOUBLE,
  sample_count BIGINT,
  last_updated TIMESTAMP,
  PRIMARY KEY (service_id, metric_name, time_window)
);

CREATE TABLE agents (
  agent_id TEXT PRIMARY KEY,
  service_name TEXT NOT NULL,
  port INTEGER NOT NULL,
  address TEXT NOT NULL,
  version TEXT,
  hostname TEXT,
  tags JSON,
  agent_url TEXT,
  registered_at TIMESTAMP NOT NULL,
  last_seen TIMESTAMP NOT NULL,
  health TEXT,
  pid INTEGER,
  process_started_at TIMESTAMP,
  restart_count INTEGER,
  cpu_percent DOUBLE,
  memory_bytes BIGINT
);

CREATE TABLE actor_snapshots (
  actor_id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  version BIGINT NOT NULL,
  state TEXT NOT NULL,
  snapshot TEXT NOT NULL,
  updated_at TIMESTAMP NOT NULL
);

-- Append-only history of every persisted actor transition.
CREATE TABLE actor_transitions (
  actor_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  "at" TIMESTAMP NOT NULL,
  from_state TEXT,
  to_state TEXT NOT NULL,
  event TEXT,
  reason TEXT,
  version BIGINT NOT NULL
);

CREATE TABLE api_tokens (
  name TEXT PRIMARY KEY,
  scope TEXT NOT NULL CHECK (scope IN ('read', 'admin')),
  token_hash TEXT NOT NULL UNIQUE,
  created_at TIMESTAMP NOT NULL,
  last_used_at TIMESTAMP,
  revoked_at TIMESTAMP
);

CREATE SEQUENCE audit_log_id_seq;
CREATE TABLE audit_log (
  id BIGINT PRIMARY KEY DEFAULT nextval('audit_log_id_seq'),
  "at" TIMESTAMP NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT,
  details JSON
);

-- Exactly-once ingestion: a batch id is recorded in the same transaction as its rows.
CREATE TABLE ingested_batches (
  batch_id TEXT PRIMARY KEY,
  agent_id TEXT NOT NULL,
  ingested_at TIMESTAMP NOT NULL
);

-- Where the last rollup run got to (one row, id = 1).
CREATE TABLE rollup_state (
  id INTEGER PRIMARY KEY,
  last_now TIMESTAMP NOT NULL,
  last_gen BIGINT NOT NULL
);
`;

// WireGuard mesh peers: one row per agent id, so an agent keeps its mesh IP
// across restarts and re-enrollments; revoked_at set means refused for good.
const meshPeers = `
CREATE TABLE mesh_peers (
  agent_id TEXT PRIMARY KEY,
  public_key TEXT NOT NULL,
  mesh_ipv4 TEXT NOT NULL UNIQUE,
  mesh_ipv6 TEXT NOT NULL UNIQUE,
  enrolled_at TIMESTAMP NOT NULL,
  updated_at TIMESTAMP NOT NULL,
  revoked_at TIMESTAMP
);
`;

// The control plane: feature flags, rollback history, what apps' SDKs report.
const controlPlane = `
CREATE TABLE feature_flags (
  flag_name TEXT NOT NULL,
  service_id TEXT NOT NULL,
  enabled BOOLEAN NOT NULL,
  rollout_percentage INTEGER NOT NULL CHECK (rollout_percentage BETWEEN 0 AND 100),
  targeting_rules JSON,
  updated_at TIMESTAMP NOT NULL,
  updated_by TEXT,
  PRIMARY KEY (flag_name, service_id)
);

CREATE TABLE rollback_history (
  rollback_id TEXT PRIMARY KEY,
  service_id TEXT NOT NULL,
  from_version TEXT,
  to_version TEXT,
  strategy TEXT NOT NULL,
  initiated_by TEXT NOT NULL,
  state TEXT NOT NULL,
  success BOOLEAN,
  started_at TIMESTAMP NOT NULL,
  completed_at TIMESTAMP,
  duration_seconds INTEGER,
  error_message TEXT,
  steps JSON,
  plan JSON
);
CREATE INDEX idx_rollback_service ON rollback_history(service_id, started_at);

-- The last SDK report per agent (health, build info), kept across colony restarts.
CREATE TABLE sdk_reports (
  agent_id TEXT PRIMARY KEY,
  service_id TEXT NOT NULL,
  version TEXT,
  git_commit TEXT,
  overall_health TEXT,
  info JSON,
  components JSON,
  updated_at TIMESTAMP NOT NULL
);

-- Versions each service has reported, so a rollback knows the previous one.
CREATE TABLE service_versions (
  service_id TEXT NOT NULL,
  version TEXT NOT NULL,
  first_seen TIMESTAMP NOT NULL,
  last_seen TIMESTAMP NOT NULL,
  PRIMARY KEY (service_id, version)
);
`;

// Live debugging: one row per session, kept in step with its actor (the
// session view as JSON, plus the columns sessions are listed by).
const debugSessions = `
CREATE TABLE debug_sessions (
  session_id TEXT PRIMARY KEY,
  collector_id TEXT,
  service_name TEXT NOT NULL,
  function_name TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  state TEXT NOT NULL,
  requested_by TEXT,
  created_at TIMESTAMP NOT NULL,
  started_at TIMESTAMP,
  expires_at TIMESTAMP,
  ended_at TIMESTAMP,
  reason TEXT,
  view JSON NOT NULL,
  updated_at TIMESTAMP NOT NULL
);
`;

// Agent identities (issue 17): invitations hold only the HMAC key derived
// from their secret; each agent id is pinned to the Ed25519 key it enrolled with.
const identities = `
CREATE TABLE invitations (
  invitation_id TEXT PRIMARY KEY,
  key_hex TEXT NOT NULL,
  created_at TIMESTAMP NOT NULL,
  created_by TEXT NOT NULL,
  expires_at TIMESTAMP,
  max_uses INTEGER NOT NULL,
  uses INTEGER NOT NULL,
  note TEXT NOT NULL,
  revoked_at TIMESTAMP
);
CREATE TABLE agent_identities (
  agent_id TEXT PRIMARY KEY,
  public_key TEXT NOT NULL,
  invitation_id TEXT NOT NULL,
  enrolled_at TIMESTAMP NOT NULL,
  rekeyed_at TIMESTAMP,
  revoked_at TIMESTAMP,
  revoked_by TEXT
);
`;

// CLI tokens expire (issue 17). Existing tokens keep a NULL expiry (never):
// `coral doctor` points them out. IF NOT EXISTS keeps it safe to reorder.
const tokenExpiry = `
ALTER TABLE api_tokens ADD COLUMN IF NOT EXISTS expires_at TIMESTAMP;
`;

// Ingestion that bad input cannot stop (issue 17): telemetry set aside
// instead of stored (see dead-letter.ts). dead_letters keeps the newest rows
// (pruned to a cap, with the first bytes of each payload); the per-agent
// counts are never pruned, so what was set aside stays counted.
const deadLetters = `
CREATE SEQUENCE IF NOT EXISTS dead_letters_id_seq START 1;
CREATE TABLE IF NOT EXISTS dead_letters (
  id BIGINT PRIMARY KEY DEFAULT nextval('dead_letters_id_seq'),
  letter_key TEXT NOT NULL UNIQUE,
  "at" TIMESTAMP NOT NULL,
  agent_id TEXT NOT NULL,
  subject TEXT NOT NULL,
  batch_id TEXT,
  reason TEXT NOT NULL,
  payload BLOB NOT NULL,
  payload_bytes INTEGER NOT NULL,
  stream_seq BIGINT,
  deliveries INTEGER
);
CREATE TABLE IF NOT EXISTS dead_letter_counts (
  agent_id TEXT PRIMARY KEY,
  total BIGINT NOT NULL,
  first_at TIMESTAMP NOT NULL,
  last_at TIMESTAMP NOT NULL,
  last_reason TEXT NOT NULL
);
`;

// A service is a set of processes (issue 18): how many the agent last saw.
const agentProcessCount = `
ALTER TABLE agents ADD COLUMN IF NOT EXISTS process_count INTEGER DEFAULT 0;
`;

// Short-lived connections (issue 18): connections opened during each
// observation's interval and where the agent saw them (ebpf | procfs; NULL
// from older agents), and each edge's total opened.
const connectionsOpened = `
ALTER TABLE connection_observations ADD COLUMN IF NOT EXISTS opened INTEGER DEFAULT 0;
ALTER TABLE connection_observations ADD COLUMN IF NOT EXISTS source TEXT;
ALTER TABLE service_connections ADD COLUMN IF NOT EXISTS opened_total BIGINT DEFAULT 0;
`;

// The always-on CPU profiler (issue 20), rolled up per service and minute.
// A stack's frames are stored once in profile_stack_frames (a steady service
// repeats the same stacks every minute) and named by a hash of them;
// profile_stacks sums the samples per minute (agents and windows of the same
// minute add up) and keeps the top stacks, the rest folded into
// profile_minutes.other_samples. Both follow metrics_1m's retention.
const profiles = `
CREATE TABLE IF NOT EXISTS profile_stack_frames (
  stack_key TEXT PRIMARY KEY,
  frames JSON NOT NULL
);
CREATE TABLE IF NOT EXISTS profile_stacks (
  service_name TEXT NOT NULL,
  minute TIMESTAMP NOT NULL,
  stack_key TEXT NOT NULL,
  samples BIGINT NOT NULL,
  PRIMARY KEY (service_name, minute, stack_key)
);
CREATE TABLE IF NOT EXISTS profile_minutes (
  service_name TEXT NOT NULL,
  minute TIMESTAMP NOT NULL,
  total_samples BIGINT NOT NULL,
  other_samples BIGINT NOT NULL,
  hz INTEGER NOT NULL,
  PRIMARY KEY (service_name, minute)
);
`;

// Metric summaries without a row key (issue 17): exactly once is by batch id
// (ingested_batches), and the primary key's index was the largest single cost
// of an ingest call (bench/BENCHMARKS.md, "Colony ingest"). Agents stamp each
// summary with the start of its own window, so two agents' rows for one
// service and metric rarely share a timestamp; when they do, both are kept
// (they used to lose the second). Rollups replace their windows themselves
// (rollup.ts). DuckDB cannot drop a constraint: the table is copied.
const metricSummariesWithoutKey = `
CREATE TABLE metric_summaries_unkeyed (
  timestamp TIMESTAMP NOT NULL,
  service_id TEXT NOT NULL,
  metric_name TEXT NOT NULL,
  interval TEXT NOT NULL CHECK (interval IN ('1m', '5m', '15m', '1h', '1d')),
  p50 DOUBLE,
  p95 DOUBLE,
  p99 DOUBLE,
  mean DOUBLE,
  max DOUBLE,
  min DOUBLE,
  count BIGINT NOT NULL,
  agent_id TEXT,
  labels JSON,
  gen BIGINT NOT NULL
);
INSERT INTO metric_summaries_unkeyed
  SELECT timestamp, service_id, metric_name, interval, p50, p95, p99, mean, max, min, count, agent_id, labels, gen
  FROM metric_summaries ORDER BY interval, timestamp;
DROP TABLE metric_summaries;
ALTER TABLE metric_summaries_unkeyed RENAME TO metric_summaries;
`;

// coral exec (issue 25): tokens may have the exec scope (read, plus running
// commands beside services; admin does not include it), and every exec is
// recorded. DuckDB cannot change a CHECK constraint: api_tokens is copied.
const execScopeAndRecords = `
CREATE TABLE api_tokens_v12 (
  name TEXT PRIMARY KEY,
  scope TEXT NOT NULL CHECK (scope IN ('read', 'admin', 'exec')),
  token_hash TEXT NOT NULL UNIQUE,
  created_at TIMESTAMP NOT NULL,
  last_used_at TIMESTAMP,
  revoked_at TIMESTAMP,
  expires_at TIMESTAMP
);
INSERT INTO api_tokens_v12 SELECT name, scope, token_hash, created_at, last_used_at, revoked_at, expires_at FROM api_tokens;
DROP TABLE api_tokens;
ALTER TABLE api_tokens_v12 RENAME TO api_tokens;
CREATE TABLE exec_sessions (
  exec_id TEXT PRIMARY KEY,
  -- exec (one command) or shell (a terminal, recorded as asciicast v2 in recording)
  kind TEXT NOT NULL DEFAULT 'exec',
  recording TEXT,
  started_at TIMESTAMP NOT NULL,
  ended_at TIMESTAMP,
  actor TEXT NOT NULL,
  service_name TEXT NOT NULL,
  agent_id TEXT,
  argv JSON NOT NULL,
  host BOOLEAN NOT NULL,
  outcome TEXT NOT NULL,
  exit_code INTEGER,
  signal TEXT,
  duration_ms INTEGER,
  output_bytes BIGINT,
  error TEXT
);
`;

export const migrations: readonly Migration[] = [
  { version: 1, name: "initial schema", up: initial },
  { version: 2, name: "mesh peers", up: meshPeers },
  { version: 3, name: "control plane: feature flags, rollbacks, SDK reports", up: controlPlane },
  { version: 4, name: "debug sessions", up: debugSessions },
  { version: 5, name: "agent identities and invitations", up: identities },
  { version: 6, name: "ingest dead letters", up: deadLetters },
  { version: 7, name: "API token expiry", up: tokenExpiry },
  { version: 8, name: "agent process count", up: agentProcessCount },
  { version: 9, name: "connections opened per interval", up: connectionsOpened },
  { version: 10, name: "always-on CPU profiles per minute", up: profiles },
  { version: 11, name: "metric summaries without a row key", up: metricSummariesWithoutKey },
  { version: 12, name: "exec scope and exec records", up: execScopeAndRecords },
];

/** Applies every migration newer than the file's schema version, in order. */
export function migrate(conn: Conn, list: readonly Migration[] = migrations): Promise<MigrationReport> {
  return applyMigrations(conn, list, "colony");
}
