// Small helpers shared by the storage modules: value conversion between JS and
// DuckDB, row reading, transactions and the query-shape helpers (time ranges,
// limits) the detail queries have in common.
import { DuckDBTimestampValue } from "@duckdb/node-api";
import type { DuckDBConnection, DuckDBValue } from "@duckdb/node-api";

export type Conn = DuckDBConnection;
export type Params = DuckDBValue[];
export type Row = Record<string, unknown>;

/** A JS Date as a DuckDB TIMESTAMP (UTC, microseconds). */
export function ts(date: Date): DuckDBTimestampValue {
  return new DuckDBTimestampValue(BigInt(Math.round(checkDate(date, "timestamp").getTime())) * 1000n);
}

/** Throws a TypeError unless value is a valid Date; returns it. */
export function checkDate(value: unknown, what: string): Date {
  if (!(value instanceof Date) || !Number.isFinite(value.getTime())) {
    throw new TypeError(`${what} must be a valid Date, got ${value instanceof Date ? "Invalid Date" : typeof value}`);
  }
  return value;
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

export function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (v === null || v === undefined) return 0;
  return Number(v);
}

export function str(v: unknown): string {
  return v === null || v === undefined ? "" : String(v);
}

export function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

export function date(v: unknown): Date {
  if (v instanceof Date) return v;
  throw new TypeError(`expected a timestamp, got ${typeof v}`);
}

/** A JSON column's text as an object (null for SQL NULL). */
export function jsonOrNull<T>(v: unknown): T | null {
  if (v === null || v === undefined) return null;
  return JSON.parse(String(v)) as T;
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
  await conn.run("COMMIT");
  return result;
}

/** Largest page a detail query returns. */
export const maxQueryLimit = 50_000;

/** A query's limit must be a positive integer; larger values are clamped to maxQueryLimit. */
export function checkLimit(limit: number): number {
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`limit must be a positive integer, got ${String(limit)}`);
  }
  return Math.min(limit, maxQueryLimit);
}

/**
 * WHERE-clause builder: collects conditions and their positional parameters.
 * `range` adds the half-open interval [since, until) on a timestamp column.
 */
export class Where {
  readonly #conds: string[] = [];
  readonly params: Params = [];

  eq(column: string, value: DuckDBValue | undefined): this {
    if (value === undefined) return this;
    this.params.push(value);
    this.#conds.push(`${column} = $${this.params.length}`);
    return this;
  }

  range(column: string, since: Date | undefined, until: Date | undefined): this {
    if (since !== undefined) {
      this.params.push(ts(checkDate(since, "since")));
      this.#conds.push(`${column} >= $${this.params.length}`);
    }
    if (until !== undefined) {
      this.params.push(ts(checkDate(until, "until")));
      this.#conds.push(`${column} < $${this.params.length}`);
    }
    return this;
  }

  toString(): string {
    return this.#conds.length === 0 ? "" : `WHERE ${this.#conds.join(" AND ")}`;
  }
}

/**
 * Newest-first rows fetched with LIMIT n + 1, returned oldest first: the page
 * holds the newest `limit` rows and says whether older ones were left out.
 */
export function newestPage<T>(rowsNewestFirst: T[], limit: number): { rows: T[]; truncated: boolean } {
  const truncated = rowsNewestFirst.length > limit;
  const rows = truncated ? rowsNewestFirst.slice(0, limit) : rowsNewestFirst;
  return { rows: rows.reverse(), truncated };
}
