// The upgrade from an agent that kept its store in DuckDB (agent.duckdb):
// what must not be lost moves into the SQLite store at the first open, and the
// old file is renamed aside. That is the outbox (telemetry batches the colony
// has not acknowledged) and the live-debugging collectors with their events
// (a restarted agent resumes the collectors still due, with their seq). Raw
// samples are not imported: they are at most 6 h of local detail the colony
// already has as summaries.
//
// @duckdb/node-api is imported here only, dynamically, and only when such a
// file exists: an agent that never had one never loads DuckDB.
import { existsSync } from "node:fs";
import { rename } from "node:fs/promises";
import { blob, bool, marks, num, str, strOrNull, type Conn, type Param } from "./sql.ts";

export interface LegacyImport {
  from: string;
  /** The file had been imported before (an open cut short before the rename): only renamed now. */
  alreadyImported: boolean;
  /** Where the old file went. */
  movedTo: string;
  outbox: number;
  uprobeCollectors: number;
  uprobeEvents: number;
}

type Row = Record<string, unknown>;

/** A DuckDB TIMESTAMP as read by getRowObjectsJS (a Date), as stored here (ms). */
const ms = (v: unknown): number | null => (v instanceof Date ? v.getTime() : v === null || v === undefined ? null : Number(v));
const int = (v: unknown, fallback: number): number => (v === null || v === undefined ? fallback : num(v));

const importedKey = "duckdb_import";

/**
 * Copies the old file's outbox and collectors into `conn` in one transaction
 * (fsynced) that also records the import, then renames the old file (and its
 * WAL) to `<file>.imported`. An open cut short between the commit and the
 * rename finds the record at the next open and only renames: a batch acked
 * since is not sent again. Throws, leaving the old file in place, when it
 * cannot be read.
 */
export async function importLegacyDuckdb(conn: Conn, file: string): Promise<LegacyImport> {
  const counts = { outbox: 0, uprobeCollectors: 0, uprobeEvents: 0 };
  if (conn.get("SELECT value FROM store_meta WHERE key = ?", [importedKey])) return { from: file, alreadyImported: true, movedTo: await moveAside(file), ...counts };
  const { DuckDBInstance } = await import("@duckdb/node-api");
  let instance: Awaited<ReturnType<typeof DuckDBInstance.create>>;
  try {
    instance = await DuckDBInstance.create(file, { threads: "1", memory_limit: "64MB" });
  } catch (err) {
    // A DuckDB lock error ("Could not set lock … (PID n)") says an older agent still runs on this folder.
    throw new Error(`cannot import the earlier agent store ${file}: ${(err as Error).message}`, { cause: err });
  }
  let outboxRows: Row[] = [];
  let collectors: Row[] = [];
  let uprobeEvents: Row[] = [];
  try {
    const duck = await instance.connect();
    try {
      await duck.run("SET TimeZone = 'UTC'");
      const read = async (sql: string) => (await duck.runAndReadAll(sql)).getRowObjectsJS() as Row[];
      const tables = new Set((await read("SELECT table_name FROM information_schema.tables")).map((r) => str(r.table_name)));
      if (tables.has("outbox")) outboxRows = await read("SELECT * FROM outbox ORDER BY seq");
      if (tables.has("uprobe_collectors")) collectors = await read("SELECT * FROM uprobe_collectors");
      if (tables.has("uprobe_events")) uprobeEvents = await read("SELECT * FROM uprobe_events ORDER BY collector_id, seq");
    } finally {
      duck.closeSync();
    }
  } finally {
    instance.closeSync();
  }

  const insertOutbox = conn.stmt(
    "INSERT OR IGNORE INTO outbox (batch_id, subject, payload, created_at, attempts, next_attempt_at, last_error) VALUES (?, ?, ?, ?, ?, ?, ?)",
  );
  const collectorColumns =
    "collector_id, label, function_name, duration_ms, capture_args, capture_return, sample_rate, max_events, started_at, expires_at, binary_path, is_go, pid, ended_at, stop_reason, stop_detail, slow_threshold_ms, kind, expression, condition, snapshot_count";
  const insertCollector = conn.stmt(`INSERT OR IGNORE INTO uprobe_collectors (${collectorColumns}) VALUES (${marks(21)})`);
  const insertEvent = conn.stmt(
    `INSERT OR IGNORE INTO uprobe_events (collector_id, seq, timestamp, event_type, pid, tid, duration_ns, args, return_value, goroutine, value) VALUES (${marks(11)})`,
  );
  conn.durable(() =>
    conn.tx(() => {
      for (const r of outboxRows) {
        const created = ms(r.created_at) ?? Date.now();
        counts.outbox += insertOutbox.run(
          str(r.batch_id),
          str(r.subject),
          blob(new Uint8Array(r.payload as Uint8Array)),
          created,
          int(r.attempts, 0),
          ms(r.next_attempt_at) ?? created,
          strOrNull(r.last_error),
        ).changes;
      }
      for (const r of collectors) {
        const values: Param[] = [
          str(r.collector_id),
          str(r.label),
          str(r.function_name),
          int(r.duration_ms, 0),
          int(r.capture_args, 0),
          bool(r.capture_return === true),
          int(r.sample_rate, 1),
          int(r.max_events, 0),
          ms(r.started_at) ?? 0,
          ms(r.expires_at) ?? 0,
          str(r.binary_path),
          bool(r.is_go === true),
          int(r.pid, 0),
          ms(r.ended_at),
          strOrNull(r.stop_reason),
          strOrNull(r.stop_detail),
          int(r.slow_threshold_ms, 100),
          strOrNull(r.kind) ?? "function",
          str(r.expression),
          str(r.condition),
          int(r.snapshot_count, 0),
        ];
        counts.uprobeCollectors += insertCollector.run(...values).changes;
      }
      for (const r of uprobeEvents) {
        const args = r.args === null || r.args === undefined ? null : typeof r.args === "string" ? r.args : JSON.stringify(r.args);
        counts.uprobeEvents += insertEvent.run(
          str(r.collector_id),
          num(r.seq),
          ms(r.timestamp) ?? 0,
          str(r.event_type),
          int(r.pid, 0),
          int(r.tid, 0),
          r.duration_ns === null || r.duration_ns === undefined ? null : num(r.duration_ns),
          args,
          strOrNull(r.return_value),
          strOrNull(r.goroutine),
          strOrNull(r.value),
        ).changes;
      }
      conn.run("INSERT INTO store_meta (key, value) VALUES (?, ?)", [importedKey, JSON.stringify({ from: file, at: new Date().toISOString(), ...counts })]);
    }),
  );
  return { from: file, alreadyImported: false, movedTo: await moveAside(file), ...counts };
}

/** Renames the old file (and a WAL left beside it) to `<file>.imported`; returns the new name. */
async function moveAside(file: string): Promise<string> {
  let movedTo = `${file}.imported`;
  if (existsSync(movedTo)) movedTo = `${file}.imported-${Date.now()}`;
  await rename(file, movedTo);
  if (existsSync(`${file}.wal`)) await rename(`${file}.wal`, `${movedTo}.wal`);
  return movedTo;
}
