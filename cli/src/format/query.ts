// coral query's output: an aligned table (the default), JSON (an array of
// objects, numbers as numbers where they fit) or CSV (RFC 4180, csv-stringify).
import { stringify } from "csv-stringify/sync";
import type { QueryColumn, QueryRow, QueryTable } from "@coral/proto/gen/coral/agent/v1/query_pb";
import { columns as alignedColumns, plural } from "./text.ts";

const numericTypes = /^(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT|UHUGEINT|FLOAT|DOUBLE|REAL|DECIMAL.*|NUMERIC.*|INT|INT2|INT4|INT8)$/i;
const booleanTypes = /^(BOOLEAN|BOOL)$/i;

const cellsOf = (row: QueryRow): Array<string | null> => row.cells.map((c) => c.text ?? null);

/** A cell as JSON: numbers that round-trip exactly stay numbers, others stay text. */
function jsonValue(text: string | null, type: string): unknown {
  if (text === null) return null;
  if (booleanTypes.test(type)) return text === "true";
  if (numericTypes.test(type)) {
    const n = Number(text);
    if (Number.isFinite(n) && (String(n) === text || (!/^-?\d+$/.test(text) && Math.abs(n) < 2 ** 53))) return n;
  }
  return text;
}

export function queryJson(cols: readonly QueryColumn[], rows: readonly QueryRow[]): Array<Record<string, unknown>> {
  return rows.map((row) => Object.fromEntries(cellsOf(row).map((text, i) => [cols[i]?.name ?? `column${i}`, jsonValue(text, cols[i]?.type ?? "")])));
}

export function queryCsv(cols: readonly QueryColumn[], rows: readonly QueryRow[]): string {
  // NULL is an empty field, as PostgreSQL's and DuckDB's CSV writers do.
  return stringify([cols.map((c) => c.name), ...rows.map((r) => cellsOf(r).map((c) => c ?? ""))]);
}

const maxCellWidth = 60;
const shown = (text: string | null) => {
  if (text === null) return "NULL";
  const line = text.replace(/\s*\n\s*/g, " ⏎ ");
  return line.length > maxCellWidth ? `${line.slice(0, maxCellWidth - 1)}…` : line;
};

export function formatQueryTable(cols: readonly QueryColumn[], rows: readonly QueryRow[], info: { source: string; elapsedMs: number; truncated: boolean; truncatedBy: string; maxRows: number }): string {
  const lines = cols.length === 0 ? [] : alignedColumns(cols.map((c) => c.name), rows.map((r) => cellsOf(r).map(shown)));
  const footer = [`${plural(rows.length, "row")} from ${info.source} in ${info.elapsedMs} ms`];
  if (info.truncated)
    footer.push(
      info.truncatedBy === "bytes"
        ? "cut at the result-size cap (4 MiB of text): select fewer columns or rows"
        : `more rows than --max-rows ${info.maxRows}: add a LIMIT or raise --max-rows`,
    );
  return [...lines, "", footer.join("; ")].join("\n");
}

export function formatQuerySchema(tables: readonly QueryTable[], source: string): string {
  const out: string[] = [`Tables coral query reads on ${source}:`];
  for (const t of tables) {
    out.push("", t.name);
    for (const line of alignedColumns(["  column", "type"], t.columns.map((c) => [`  ${c.name}`, c.type]))) out.push(line);
  }
  return out.join("\n");
}
