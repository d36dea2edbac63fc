// Small helpers shared by the storage modules: value conversion between JS and
// DuckDB, row reading, transactions and the query-shape helpers (time ranges,
// limits) the detail queries have in common.

export {
  all,
  checkDate,
  date,
  exec,
  jsonOrNull,
  num,
  str,
  strOrNull,
  transaction,
  ts,
  type Conn,
  type Params,
  type Row,
} from "@coral/common/duckdb";
import { checkDate, ts, type Params } from "@coral/common/duckdb";
import type { DuckDBValue } from "@duckdb/node-api";

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
