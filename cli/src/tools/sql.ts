// coral_query_sql and coral_get_sql_schema: read-only SQL over the colony's
// DuckDB (or one component's raw store on its agent), as `coral query` runs
// it, so an assistant can ask its own questions. The colony checks and
// audits every statement; only its data tables are readable.
import { queryLimits } from "@coral/common/query-limits";
import { z } from "zod";
import { queryJson } from "../format/query.ts";
import { clip, defineTool, fitLines, textBudgetChars, toolArgs } from "./common.ts";
import { ToolError, type ToolContext } from "./types.ts";

function queryClient(ctx: ToolContext) {
  if (!ctx.query) throw new ToolError("SQL queries are not available through this connection", "unavailable");
  return ctx.query;
}

const serviceOption = () =>
  z.string().min(1).max(128).optional().describe("Query this component's raw store on its agent (SQLite: per-second samples, raw events) instead of the colony's DuckDB");

/** Rows the tool asks for by default: an assistant's answer stays short. */
const toolDefaultRows = 100;

export const querySqlTool = defineTool({
  name: "coral_query_sql",
  title: "Read-only SQL",
  description:
    "Run one read-only SELECT on the colony's DuckDB (1-minute metric summaries and rollups, events, insights, topology, flags, rollbacks, debug sessions, audit) " +
    "or, with service, on that component's raw store on its agent (SQLite). Use it for questions the other tools do not answer; " +
    "list tables and columns first with coral_get_sql_schema. Writes, files and credentials are refused; rows and time are capped.",
  inputSchema: toolArgs({
    sql: z.string().min(1, "Required: one SELECT statement").max(queryLimits.maxSqlLength).describe("One SELECT statement (DuckDB SQL on the colony, SQLite on an agent)"),
    service: serviceOption(),
    max_rows: z.number().int().min(1).max(queryLimits.maxRows).default(toolDefaultRows).describe(`At most this many rows (1-${queryLimits.maxRows}, default ${toolDefaultRows})`),
  }),
  readOnly: true,
  async run(ctx, args) {
    const res = await queryClient(ctx).query({ sql: args.sql, serviceName: args.service ?? "", maxRows: args.max_rows, timeoutMs: 0 });
    const rows = queryJson(res.columns, res.rows);
    const head = `${rows.length}${res.truncated ? "+" : ""} row(s) from ${res.source} (${res.engine}) in ${res.elapsedMs} ms; columns: ${res.columns.map((c) => `${c.name} ${c.type}`).join(", ")}.`;
    const { shown, omitted } = fitLines(
      rows.map((r) => clip(JSON.stringify(r), 600)),
      textBudgetChars - head.length - 200,
    );
    const lines = [head, ...shown];
    if (res.truncated || omitted > 0) lines.push(`More rows${omitted > 0 ? ` (${omitted} not shown to keep this short)` : ""}: aggregate (GROUP BY), filter (WHERE) or add a LIMIT.`);
    return { text: lines.join("\n"), data: { source: res.source, engine: res.engine, columns: res.columns.map((c) => ({ name: c.name, type: c.type })), rows, truncated: res.truncated } };
  },
});

export const getSqlSchemaTool = defineTool({
  name: "coral_get_sql_schema",
  title: "Tables for SQL",
  description: "The tables and columns coral_query_sql can read: on the colony (DuckDB) or, with service, on that component's agent store (SQLite).",
  inputSchema: toolArgs({ service: serviceOption() }),
  readOnly: true,
  async run(ctx, args) {
    const res = await queryClient(ctx).getQuerySchema({ serviceName: args.service ?? "" });
    const tables = res.tables.map((t) => ({ name: t.name, columns: t.columns.map((c) => ({ name: c.name, type: c.type })) }));
    const lines = [`Tables on ${res.source} (${res.engine}):`, ...tables.map((t) => `- ${t.name}(${t.columns.map((c) => `${c.name} ${c.type}`).join(", ")})`)];
    return { text: lines.join("\n"), data: { source: res.source, engine: res.engine, tables } };
  },
});
