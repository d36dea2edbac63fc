// Small helpers shared by the store's modules: value conversion between JS and
// DuckDB, row reading, and transactions.
import { DuckDBTimestampValue } from "@duckdb/node-api";
import type { DuckDBConnection, DuckDBValue } from "@duckdb/node-api";

export type Conn = DuckDBConnection;
export type Params = DuckDBValue[];
export type Row = Record<string, unknown>;

/** A JS Date as a DuckDB TIMESTAMP (UTC, microseconds). */
export function ts(date: Date): DuckDBTimestampValue {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new TypeError("invalid Date");
  return new DuckDBTimestampValue(BigInt(Math.round(ms)) * 1000n);
}

export function tsOrNull(date: Date | null | undefined): DuckDBTimestampValue | null {
  return date ? ts(date) : null;
}

/** Reads all rows of a query as plain JS objects (TIMESTAMP → Date, BIGINT → bigint). */
export async function all(conn: Conn, sql: string, params: Params = []): Promise<Row[]> {
  const reader = await conn.runAndReadAll(sql, params);
  return reader.getRowObjectsJS() as Row[];
}

export async function exec(conn: Conn, sql: string, params: Params = []): Promise<number> {
  const result = await conn.run(sql, params);
  return result.rowsChanged;
}

export function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (v === null || v === undefined) return 0;
  return Number(v);
}

export function str(v: unknown): string {
  return v === null || v === undefined ? "" : String(v);
}

export function date(v: unknown): Date {
  if (v instanceof Date) return v;
  throw new TypeError(`expected a timestamp, got ${typeof v}`);
}

export function dateOrNull(v: unknown): Date | null {
  return v === null || v === undefined ? null : date(v);
}

/**
 * Runs fn inside BEGIN … COMMIT on conn; on any error rolls back and rethrows.
 * Only the writer calls this (its queue guarantees no nesting).
 */
export async function transaction<T>(conn: Conn, fn: () => Promise<T>): Promise<T> {
  await conn.run("BEGIN TRANSACTION");
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    try {
      await conn.run("ROLLBACK");
    } catch {
      // The transaction is already aborted or gone; the original error matters.
    }
    throw err;
  }
  try {
    await conn.run("COMMIT");
  } catch (err) {
    try {
      await conn.run("ROLLBACK");
    } catch {
      // ignore: COMMIT failures usually end the transaction themselves
    }
    throw err;
  }
  return result;
}

/** Clamp a caller's limit into [1, max]. */
export function clampLimit(limit: number, max = 10_000): number {
  if (!Number.isFinite(limit) || limit < 1) return 1;
  return Math.min(Math.floor(limit), max);
}
