// Bulk inserts through DuckDB's appender, which is much faster than INSERTs.
import type { DuckDBAppender } from "@duckdb/node-api";
import type { Conn } from "./sql.ts";

/** Appends rows with a fresh appender; on error discards the half-built buffer. Returns what fill returns. */
export async function withAppender<T>(conn: Conn, table: string, fill: (a: DuckDBAppender) => T): Promise<T> {
  const a = await conn.createAppender(table);
  try {
    const result = fill(a);
    a.flushSync();
    return result;
  } catch (err) {
    try {
      a.clear();
    } catch {
      // nothing buffered
    }
    throw err;
  } finally {
    try {
      a.closeSync();
    } catch {
      // already reported above
    }
  }
}
