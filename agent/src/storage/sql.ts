// Small helpers shared by the storage modules: the SQLite connection with its
// prepared-statement cache and transactions, value conversion between JS and
// SQLite (times are INTEGER milliseconds since the epoch, booleans 0/1, JSON
// as TEXT), and the query-shape helpers (time ranges, limits) the detail
// queries have in common. better-sqlite3 is synchronous: every helper here
// runs to completion on the calling thread, so callers keep each call small
// (bounded by a LIMIT or a time window).
import type Database from "better-sqlite3";
import { checkDate } from "@coral/common/values";

export { checkDate, jsonOrNull, num, str, strOrNull } from "@coral/common/values";

export type Param = string | number | bigint | Buffer | null;
export type Params = Param[];
export type Row = Record<string, unknown>;

/** One SQLite connection: statements are prepared once per SQL text and reused. */
export class Conn {
  readonly #stmts = new Map<string, Database.Statement>();

  constructor(readonly db: Database.Database) {}

  /** The cached statement for `sql`; `bigints` returns INTEGER columns as bigint (ns timestamps). */
  stmt(sql: string, bigints = false): Database.Statement {
    const key = bigints ? `bigint:${sql}` : sql;
    let s = this.#stmts.get(key);
    if (!s) {
      s = this.db.prepare(sql);
      if (bigints) s.safeIntegers(true);
      this.#stmts.set(key, s);
    }
    return s;
  }

  all(sql: string, params: Params = [], bigints = false): Row[] {
    return this.stmt(sql, bigints).all(...params) as Row[];
  }

  get(sql: string, params: Params = []): Row | undefined {
    return this.stmt(sql).get(...params) as Row | undefined;
  }

  /** Runs a write; returns the rows it changed. */
  run(sql: string, params: Params = []): number {
    return this.stmt(sql).run(...params).changes;
  }

  /** Runs fn in one transaction (a savepoint when nested); rolls back on any error. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /**
   * Runs fn with synchronous=FULL: its commit is fsynced before fn returns, so
   * it survives a power loss too, not only a process kill (which WAL with
   * synchronous=NORMAL already survives).
   */
  durable<T>(fn: () => T): T {
    this.db.pragma("synchronous = FULL");
    try {
      return fn();
    } finally {
      this.db.pragma("synchronous = NORMAL");
    }
  }
}

/** A JS Date as stored: INTEGER milliseconds since the epoch (UTC). */
export function ts(d: Date): number {
  return checkDate(d, "timestamp").getTime();
}

/** A stored time (INTEGER ms, or a bigint from a safe-integer statement) as a Date. */
export function date(v: unknown): Date {
  if (typeof v === "number") return new Date(v);
  if (typeof v === "bigint") return new Date(Number(v));
  throw new TypeError(`expected a timestamp, got ${typeof v}`);
}

/** A boolean as stored (0/1). */
export const bool = (v: boolean): number => (v ? 1 : 0);

/** A stored 0/1 (number or bigint) as a boolean. */
export const isTrue = (v: unknown): boolean => v === 1 || v === 1n;

/** A byte array as a Buffer SQLite binds as a BLOB (no copy). */
export const blob = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** n placeholders: "?, ?, ?". */
export const marks = (n: number): string => Array.from({ length: n }, () => "?").join(", ");

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
 * `range` adds the half-open interval [since, until) on a time column.
 */
export class Where {
  readonly #conds: string[] = [];
  readonly params: Params = [];

  eq(column: string, value: string | number | undefined): this {
    if (value === undefined) return this;
    return this.add(`${column} = ?`, value);
  }

  range(column: string, since: Date | undefined, until: Date | undefined): this {
    if (since !== undefined) this.add(`${column} >= ?`, ts(checkDate(since, "since")));
    if (until !== undefined) this.add(`${column} < ?`, ts(checkDate(until, "until")));
    return this;
  }

  /** A condition with its parameters, in the order of its `?`s. */
  add(cond: string, ...values: Param[]): this {
    this.params.push(...values);
    this.#conds.push(cond);
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
