// Runs one checked SELECT on the colony's DuckDB for `coral query`: in a READ
// ONLY transaction (DuckDB refuses any write in it), streamed, so the row cap
// stops reading early, with a result-size cap and a timeout that interrupts
// the query. Memory: DuckDB has no per-query limit; the result is capped here,
// and big sorts and joins spill to disk under the database's memory limit.
import { StatementType, type DuckDBConnection } from "@duckdb/node-api";
import { checkQuery, QueryRefusedError } from "./check-sql.ts";
import { queryLimits } from "@coral/common/query-limits";
import { queryableTables } from "./tables.ts";

export interface QueryResult {
  columns: Array<{ name: string; type: string }>;
  /** Cells as text; null for SQL NULL. */
  rows: Array<Array<string | null>>;
  truncated: boolean;
  truncatedBy: "" | "rows" | "bytes";
  elapsedMs: number;
}

/** The query ran out of time and was interrupted. */
export class QueryTimeoutError extends Error {
  constructor(readonly timeoutMs: number) {
    super(`the query ran longer than ${timeoutMs} ms and was stopped (narrow it, or raise --timeout up to ${queryLimits.maxTimeoutMs / 1000} s)`);
    this.name = "QueryTimeoutError";
  }
}

function cellText(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "string") return value;
  return String(value);
}

/** Runs `sql` (one SELECT over queryable tables) on `conn`; throws QueryRefusedError, QueryTimeoutError or the database's error. */
export async function runColonyQuery(conn: DuckDBConnection, sql: string, bounds: { maxRows: number; timeoutMs: number; maxBytes?: number }): Promise<QueryResult> {
  const started = performance.now();
  const maxBytes = bounds.maxBytes ?? queryLimits.maxResultBytes;
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.interrupt();
  }, bounds.timeoutMs);
  await conn.run("BEGIN TRANSACTION READ ONLY");
  try {
    await checkQuery(conn, sql);
    const prepared = await conn.prepare(sql);
    if (prepared.statementType !== StatementType.SELECT) throw new QueryRefusedError("coral query is read-only: only one SELECT statement runs");
    const result = await prepared.stream();
    const names = result.columnNames();
    const types = result.columnTypes().map((t) => t.toString());
    const rows: Array<Array<string | null>> = [];
    let bytes = 0;
    let truncatedBy: QueryResult["truncatedBy"] = "";
    reading: for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) break;
      for (const values of chunk.getRows()) {
        if (rows.length === bounds.maxRows) {
          truncatedBy = "rows";
          break reading;
        }
        const row = values.map(cellText);
        for (const cell of row) bytes += cell?.length ?? 0;
        if (bytes > maxBytes) {
          truncatedBy = "bytes";
          break reading;
        }
        rows.push(row);
      }
    }
    return {
      columns: names.map((name, i) => ({ name, type: types[i] ?? "" })),
      rows,
      truncated: truncatedBy !== "",
      truncatedBy,
      elapsedMs: Math.round(performance.now() - started),
    };
  } catch (err) {
    if (timedOut && !(err instanceof QueryRefusedError)) throw new QueryTimeoutError(bounds.timeoutMs);
    throw err;
  } finally {
    clearTimeout(timer);
    await conn.run("ROLLBACK").catch(() => undefined);
  }
}

/** The queryable tables and their columns, in the order tables.ts lists them. */
export async function colonyQuerySchema(conn: DuckDBConnection): Promise<Array<{ name: string; columns: Array<{ name: string; type: string }> }>> {
  // The names are this module's constants, not input.
  const reader = await conn.runAndReadAll(
    `SELECT table_name, column_name, data_type FROM duckdb_columns()
     WHERE database_name = current_database() AND schema_name = 'main'
       AND table_name IN (${queryableTables.map((t) => `'${t}'`).join(", ")})
     ORDER BY table_name, column_index`,
  );
  const byTable = new Map<string, Array<{ name: string; type: string }>>();
  for (const r of reader.getRowObjectsJS()) {
    const list = byTable.get(String(r.table_name)) ?? [];
    list.push({ name: String(r.column_name), type: String(r.data_type) });
    byTable.set(String(r.table_name), list);
  }
  return queryableTables.filter((t) => byTable.has(t)).map((name) => ({ name, columns: byTable.get(name)! }));
}
