// Versioned schema migrations. The list is ordered and append-only: never edit
// a migration that has shipped, add a new one. Each runs once, in its own
// transaction, and is recorded in schema_migrations.
import { all, exec, transaction, ts, type Conn } from "./sql.ts";

export interface Migration {
  version: number;
  name: string;
  up: string | ((conn: Conn) => Promise<void>);
}

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

export const migrations: readonly Migration[] = [{ version: 1, name: "agent schema and outbox", up: initial }];

export interface MigrationReport {
  /** Schema version after migrating. */
  version: number;
  /** Versions applied by this call. */
  applied: number[];
}

export async function schemaVersion(conn: Conn): Promise<number> {
  const rows = await all(conn, "SELECT coalesce(max(version), 0) AS v FROM schema_migrations");
  return Number(rows[0]?.v ?? 0);
}

/** Applies every migration newer than the file's schema version, in order. */
export async function migrate(conn: Conn, list: readonly Migration[] = migrations): Promise<MigrationReport> {
  list.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new Error(`migration list out of order: entry ${i} has version ${m.version}, expected ${i + 1}`);
    }
  });
  await exec(
    conn,
    `CREATE TABLE IF NOT EXISTS schema_migrations (
       version INTEGER PRIMARY KEY,
       name TEXT NOT NULL,
       applied_at TIMESTAMP NOT NULL
     )`,
  );
  const current = await schemaVersion(conn);
  if (current > list.length) {
    throw new Error(
      `the agent store's schema version is ${current} but this agent knows migrations up to ${list.length}; ` +
        "upgrade the agent (refusing to open a newer database)",
    );
  }
  const applied: number[] = [];
  for (const m of list.slice(current)) {
    try {
      await transaction(conn, async () => {
        if (typeof m.up === "string") await conn.run(m.up);
        else await m.up(conn);
        await exec(conn, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
          m.version,
          m.name,
          ts(new Date()),
        ]);
      });
    } catch (err) {
      throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
    }
    applied.push(m.version);
  }
  return { version: current + applied.length, applied };
}
