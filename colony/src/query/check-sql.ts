// Which statements `coral query` runs on the colony: exactly one SELECT that
// names only queryable tables (tables.ts). DuckDB's own parser decides
// (json_serialize_sql serializes SELECT statements only and gives their
// syntax tree), not a keyword filter; the runner adds a READ ONLY transaction
// and the database has no file system access, so this check is one layer of three.
import { all, type Conn } from "@coral/common/duckdb";
import { queryableTableFunctions, queryableTables } from "./tables.ts";

/** A statement coral query will not run; the message says why, for a person. */
export class QueryRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "QueryRefusedError";
  }
}

const allowedTables = new Set(queryableTables);
const allowedFunctions = new Set(queryableTableFunctions);

interface SerializedSql {
  error: boolean;
  error_message?: string;
  error_type?: string;
  statements?: unknown[];
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * Checks `sql` with the database's parser; throws QueryRefusedError. `catalogNames`
 * are every table and view name the database knows (a CTE may not borrow one).
 */
export async function checkQuery(conn: Conn, sql: string): Promise<void> {
  const [row] = await all(conn, "SELECT json_serialize_sql($1::VARCHAR) AS tree", [sql]);
  const parsed = JSON.parse(String(row?.tree)) as SerializedSql;
  if (parsed.error) {
    if (/only select/i.test(parsed.error_message ?? ""))
      throw new QueryRefusedError("coral query is read-only: only one SELECT statement runs (no INSERT, UPDATE, DELETE, CREATE, DROP, ATTACH, COPY, INSTALL, PRAGMA or SET)");
    throw new QueryRefusedError(`the SQL does not parse: ${parsed.error_message ?? parsed.error_type ?? "unknown error"}`);
  }
  const statements = parsed.statements ?? [];
  if (statements.length !== 1) throw new QueryRefusedError(`coral query runs exactly one statement; got ${statements.length}`);
  walk(statements[0] as Json, new Set(), await catalogOf(conn));
}

interface Catalog {
  /** Every table and view name the database knows (a CTE may not borrow one). */
  names: ReadonlySet<string>;
  /** The database's own name ("colony" for colony.duckdb): "colony.main.events" is events. */
  database: string;
}

async function catalogOf(conn: Conn): Promise<Catalog> {
  const rows = await all(conn, "SELECT lower(table_name) AS n FROM duckdb_tables() UNION SELECT lower(view_name) FROM duckdb_views()");
  const [db] = await all(conn, "SELECT lower(current_database()) AS d");
  return { names: new Set(rows.map((r) => String(r.n))), database: String(db?.d) };
}

/** Walks the syntax tree; `ctes` are the CTE names in scope. */
function walk(node: Json, ctes: ReadonlySet<string>, catalog: Catalog): void {
  if (Array.isArray(node)) {
    for (const child of node) walk(child, ctes, catalog);
    return;
  }
  if (node === null || typeof node !== "object") return;
  let scope = ctes;
  const cteMap = (node.cte_map as { map?: Array<{ key: string }> } | undefined)?.map;
  if (Array.isArray(cteMap) && cteMap.length > 0) {
    const added = new Set(ctes);
    for (const { key } of cteMap) {
      const name = key.toLowerCase();
      // A non-recursive CTE that reads a table of its own name reads the table: no borrowing names.
      if (catalog.names.has(name) && !allowedTables.has(name)) throw new QueryRefusedError(`a CTE may not be named ${JSON.stringify(key)} (a table of the colony that coral query cannot read)`);
      added.add(name);
    }
    scope = added;
  }
  switch (node.type) {
    case "BASE_TABLE":
      checkTable(node, scope, catalog.database);
      break;
    case "TABLE_FUNCTION": {
      const fn = node.function as { function_name?: string } | null;
      const name = (fn?.function_name ?? "").toLowerCase();
      if (!allowedFunctions.has(name))
        throw new QueryRefusedError(`coral query does not run table functions such as ${name || "this one"}() (only ${[...allowedFunctions].join(", ")}); read the colony's tables (coral query --schema)`);
      break;
    }
    case "SHOW_REF":
      throw new QueryRefusedError("DESCRIBE, SHOW and SUMMARIZE are not run by coral query; coral query --schema lists the tables and their columns");
  }
  for (const value of Object.values(node)) if (value !== null && typeof value === "object") walk(value, scope, catalog);
}

function checkTable(node: { [key: string]: Json }, ctes: ReadonlySet<string>, database: string): void {
  const name = String(node.table_name ?? "").toLowerCase();
  const schema = String(node.schema_name ?? "").toLowerCase();
  const catalog = String(node.catalog_name ?? "").toLowerCase();
  if (schema === "" && catalog === "" && ctes.has(name)) return;
  // events, main.events, colony.events and colony.main.events are the same
  // table; other catalogs and schemas (system, temp, information_schema, pg_catalog) are not read.
  const inMain = catalog === "" ? ["", "main", database].includes(schema) : catalog === database && schema === "main";
  if (inMain && allowedTables.has(name)) return;
  const shown = [node.catalog_name, node.schema_name, node.table_name].filter(Boolean).join(".");
  throw new QueryRefusedError(`coral query cannot read ${JSON.stringify(shown)}: it reads only the colony's data tables (coral query --schema lists them)`);
}
