// Small helpers shared by the store's modules; the DuckDB basics come from the
// helpers the agent's store uses too.
export {
  all,
  date,
  dateOrNull,
  exec,
  num,
  str,
  transaction,
  ts,
  tsOrNull,
  type Conn,
  type Params,
  type Row,
} from "@coral/agent/duckdb";

/** Clamp a caller's limit into [1, max]. */
export function clampLimit(limit: number, max = 10_000): number {
  if (!Number.isFinite(limit) || limit < 1) return 1;
  return Math.min(Math.floor(limit), max);
}
