// Bounds of one `coral query` call: the CLI, the colony and the agents check the same.
export const queryLimits = {
  defaultRows: 1000,
  maxRows: 10_000,
  defaultTimeoutMs: 10_000,
  maxTimeoutMs: 60_000,
  /** Text of the cells returned, at most (the rest is cut: truncated_by "bytes"). */
  maxResultBytes: 4 * 1024 * 1024,
  maxSqlLength: 100_000,
} as const;

/** The request's bounds with defaults; throws a message for a person when one is out of range. */
export function queryBounds(req: { sql: string; maxRows: number; timeoutMs: number }): { maxRows: number; timeoutMs: number } {
  if (req.sql.trim() === "") throw new Error("sql: required (one SELECT statement; coral query --schema lists the tables)");
  if (req.sql.length > queryLimits.maxSqlLength) throw new Error(`sql: at most ${queryLimits.maxSqlLength} characters, got ${req.sql.length}`);
  if (req.maxRows > queryLimits.maxRows) throw new Error(`max_rows: at most ${queryLimits.maxRows}, got ${req.maxRows}`);
  if (req.timeoutMs > queryLimits.maxTimeoutMs) throw new Error(`timeout_ms: at most ${queryLimits.maxTimeoutMs} (60 s), got ${req.timeoutMs}`);
  return { maxRows: req.maxRows || queryLimits.defaultRows, timeoutMs: req.timeoutMs || queryLimits.defaultTimeoutMs };
}
