// coral query: read-only SQL over the colony's DuckDB, or over one service's
// raw store on its agent (SQLite), through the colony. Audited there.
//   coral query "<sql>" [--agent <service>] [--json | --csv] [--max-rows 1000] [--timeout 10s]
//   coral query --schema [--agent <service>] [--json]
import { Code, ConnectError } from "@connectrpc/connect";
import { QueryService } from "@coral/proto/gen/coral/colony/v1/query_pb";
import { queryLimits } from "@coral/common/query-limits";
import { Command, Option } from "commander";
import { UsageError, durationRangeOption, intOption } from "./options.ts";
import { unaryClient } from "./read-client.ts";
import { explainError, resolveTarget, withRemoteOptions, type ColonyTarget, type RemoteOptions } from "./remote.ts";
import { formatQuerySchema, formatQueryTable, queryCsv, queryJson } from "../format/query.ts";

interface QueryOptions extends RemoteOptions {
  agent?: string;
  csv?: boolean;
  schema?: boolean;
  maxRows: number;
  timeout: number;
}

/** The statement's own problems and the agent's are said as they are, without the colony's advice. */
function explain(err: unknown, target: ColonyTarget): Error {
  const ce = err instanceof ConnectError ? err : undefined;
  if (ce && [Code.InvalidArgument, Code.DeadlineExceeded, Code.ResourceExhausted].includes(ce.code)) return new Error(ce.rawMessage);
  if (ce?.code === Code.Unavailable && /agent/.test(ce.rawMessage)) return new Error(ce.rawMessage);
  return explainError(err, target);
}

export function queryCommand(): Command {
  return withRemoteOptions(
    new Command("query").description(
      "run one read-only SQL statement (SELECT) on the colony's database, or with --agent on a service's raw store on its agent; audited",
    ),
  )
    .argument("[sql]", 'one SELECT statement, e.g. "SELECT service_id, count(*) FROM events GROUP BY ALL"')
    .option("--agent <service>", "query this component's raw store on its agent (SQLite) instead of the colony (DuckDB)")
    .option("--schema", "list the tables and columns a query can read")
    .option("--csv", "print CSV (a header row, then the rows; NULL is an empty field)")
    .addOption(new Option("--max-rows <n>", `at most this many rows (1-${queryLimits.maxRows})`).argParser(intOption(1, queryLimits.maxRows)).default(queryLimits.defaultRows))
    .addOption(
      new Option("--timeout <duration>", "stop the query after this long (1s-60s)")
        .argParser(durationRangeOption(queryLimits.maxTimeoutMs, "must be from 1s to 60s", "10s or 30s"))
        .default(queryLimits.defaultTimeoutMs, "10s"),
    )
    .addHelpText(
      "after",
      `
Read-only by construction: the colony runs one SELECT in a read-only transaction
over its data tables (never its credentials), with no file access; an agent opens
its store read-only. Row cap, 4 MiB result cap and the timeout apply to every query.

Examples:
  coral query --schema
  coral query "SELECT service_id, event_type, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC"
  coral query --agent api "SELECT * FROM sqlite_schema" --csv`,
    )
    .action(async (sql: string | undefined, opts: QueryOptions) => {
      if (opts.json && opts.csv) throw new UsageError("--json and --csv: choose one");
      if (opts.schema && sql) throw new UsageError("--schema lists the tables; give either --schema or a SQL statement");
      if (!opts.schema && (sql === undefined || sql.trim() === "")) throw new UsageError('a SQL statement is required, e.g. coral query "SELECT count(*) FROM events" (coral query --schema lists the tables)');
      if (sql && sql.length > queryLimits.maxSqlLength) throw new UsageError(`the SQL is longer than ${queryLimits.maxSqlLength} characters`);
      const target = await resolveTarget(opts);
      const client = unaryClient(QueryService, target);
      try {
        if (opts.schema) {
          const res = await client.getQuerySchema({ serviceName: opts.agent ?? "" });
          if (opts.json) console.log(JSON.stringify({ source: res.source, engine: res.engine, tables: res.tables.map((t) => ({ name: t.name, columns: t.columns.map((c) => ({ name: c.name, type: c.type })) })) }, null, 2));
          else console.log(formatQuerySchema(res.tables, `${res.source} (${res.engine})`));
          return;
        }
        const res = await client.query({ sql: sql!, serviceName: opts.agent ?? "", maxRows: opts.maxRows, timeoutMs: opts.timeout });
        if (opts.json) console.log(JSON.stringify(queryJson(res.columns, res.rows), null, 2));
        else if (opts.csv) process.stdout.write(queryCsv(res.columns, res.rows));
        else console.log(formatQueryTable(res.columns, res.rows, { source: res.source, elapsedMs: res.elapsedMs, truncated: res.truncated, truncatedBy: res.truncatedBy, maxRows: opts.maxRows }));
        // Scripts learn that rows are missing from stderr; the rows printed are whole.
        if (res.truncated && (opts.json || opts.csv)) console.error(`coral query: result truncated (${res.truncatedBy === "bytes" ? "4 MiB result cap" : `--max-rows ${opts.maxRows}`})`);
      } catch (err) {
        throw explain(err, target);
      }
    });
}
