// SQL helpers that the agent's store and the colony's store share: value
// conversion between JS and DuckDB, row reading, transactions, migrations.
import { DuckDBTimestampValue } from "@duckdb/node-api";
import type { DuckDBConnection, DuckDBValue } from "@duckdb/node-api";
import { checkDate } from "../values.ts";

export { checkDate, jsonOrNull, num, str, strOrNull } from "../values.ts";

export type Conn = DuckDBConnection;
export type Params = DuckDBValue[];
export type Row = Record<string, unknown>;

/** A JS Date as a DuckDB TIMESTAMP (UTC, microseconds). */
export function ts(date: Date): DuckDBTimestampValue {
  return new DuckDBTimestampValue(BigInt(Math.round(checkDate(date, "timestamp").getTime())) * 1000n);
}

export function tsOrNull(date: Date | null | undefined): DuckDBTimestampValue | null {
  return date ? ts(date) : null;
}

/** Reads all rows of a query as plain JS objects (TIMESTAMP → Date, BIGINT → bigint, BLOB → Buffer). */
export async function all(conn: Conn, sql: string, params: Params = []): Promise<Row[]> {
  const reader = await conn.runAndReadAll(sql, params);
  return reader.getRowObjectsJS() as Row[];
}

export async function exec(conn: Conn, sql: string, params: Params = []): Promise<number> {
  const result = await conn.run(sql, params);
  return result.rowsChanged;
}

export function date(v: unknown): Date {
  if (v instanceof Date) return v;
  throw new TypeError(`expected a timestamp, got ${typeof v}`);
}

export function dateOrNull(v: unknown): Date | null {
  return v === null || v === undefined ? null : date(v);
}

/** A JSON object column (read as text); {} when absent or not an object. */
export function jsonObject(v: unknown): Record<string, unknown> {
  if (typeof v !== "string" || v === "") return {};
  try {
    const parsed: unknown = JSON.parse(v);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Clamp a caller's limit into [1, max]. */
export function clampLimit(limit: number, max = 10_000): number {
  if (!Number.isFinite(limit) || limit < 1) return 1;
  return Math.min(Math.floor(limit), max);
}

/**
 * Runs fn inside BEGIN … COMMIT on conn; on any error (also a failed COMMIT)
 * rolls back and rethrows. Only a writer calls this (its queue prevents nesting).
 */
export async function transaction<T>(conn: Conn, fn: () => Promise<T>): Promise<T> {
  await conn.run("BEGIN TRANSACTION");
  let result: T;
  try {
    result = await fn();
    await conn.run("COMMIT");
  } catch (err) {
    try {
      await conn.run("ROLLBACK");
    } catch {
      // The transaction is already aborted or gone; the original error matters.
    }
    throw err;
  }
  return result;
}

/** One schema change. Lists are ordered and append-only: never edit a shipped one. */
export interface Migration {
  version: number;
  name: string;
  up: string | ((conn: Conn) => Promise<void>);
}

export interface MigrationReport {
  /** Schema version after migrating. */
  version: number;
  /** Versions applied by this call. */
  applied: number[];
}

export function checkMigrationList(list: readonly Migration[]): void {
  list.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new Error(`migration list out of order: entry ${i} has version ${m.version}, expected ${i + 1}`);
    }
  });
}

export async function schemaVersion(conn: Conn): Promise<number> {
  const rows = await all(conn, "SELECT coalesce(max(version), 0) AS v FROM schema_migrations");
  return Number(rows[0]?.v ?? 0);
}

/**
 * Applies every migration newer than the file's schema version, in order,
 * each in its own transaction, recorded in schema_migrations. A file newer
 * than the list is refused. `owner` names the program in messages ("agent").
 */
export async function applyMigrations(conn: Conn, list: readonly Migration[], owner: string): Promise<MigrationReport> {
  checkMigrationList(list);
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
      `the ${owner} store's schema version is ${current} but this ${owner} knows migrations up to ${list.length}; ` +
        `upgrade the ${owner} (refusing to open a newer database)`,
    );
  }
  const applied: number[] = [];
  for (const m of list.slice(current)) {
    try {
      await transaction(conn, async () => {
        if (typeof m.up === "string") await conn.run(m.up);
        else await m.up(conn);
        await exec(conn, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [m.version, m.name, ts(new Date())]);
      });
    } catch (err) {
      throw new Error(`migration ${m.version} (${m.name}) failed: ${(err as Error).message}`, { cause: err });
    }
    applied.push(m.version);
  }
  return { version: current + applied.length, applied };
}
