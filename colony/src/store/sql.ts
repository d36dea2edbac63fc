// The store's SQL helpers are the shared DuckDB helpers.
export { all, clampLimit, date, dateOrNull, exec, num, str, transaction, ts, tsOrNull, type Conn, type Params, type Row } from "@coral/common/duckdb";
