// Why a query did not answer. One error class with a closed set of kinds; the
// API edge (../api/query-service.ts) maps each kind to one Connect code.

/**
 * refused: not a read-only statement; invalid: SQLite could not run it (a
 * syntax error, no such table); timeout: over its time; limit: over a memory
 * limit, or too many queries waiting; cancelled: the caller went away;
 * unavailable: the store cannot be read (or the runner is closed).
 */
export type QueryErrorKind = "refused" | "invalid" | "timeout" | "limit" | "cancelled" | "unavailable";

export class QueryError extends Error {
  override name = "QueryError";
  constructor(
    readonly kind: QueryErrorKind,
    message: string,
    options?: ErrorOptions & { sqliteCode?: string },
  ) {
    super(message, options);
    this.sqliteCode = options?.sqliteCode;
  }
  /** SQLite's error code (SQLITE_ERROR, SQLITE_NOMEM, …), when SQLite raised it. */
  readonly sqliteCode: string | undefined;
}

/** Why a statement is refused: more than one; writes or reads no rows by SQLite's own classification; a PRAGMA. */
export type RefusalReason = "several" | "not-reader" | "writes" | "pragma";

const refusals: Record<RefusalReason, string> = {
  several: "the SQL holds more than one statement; send one at a time",
  "not-reader": "SQLite says this statement returns no rows: it changes the connection (ATTACH, BEGIN, a setting) rather than reading",
  writes: "SQLite says this statement writes to a database",
  pragma:
    "PRAGMA statements are not run (SQLite applies some while preparing them); read a pragma through its table function, e.g. SELECT * FROM pragma_table_info('events')",
};

export function readOnlyRefusal(reason: RefusalReason): QueryError {
  return new QueryError("refused", `coral query is read-only: ${refusals[reason]} (only SELECT-like statements run)`);
}
