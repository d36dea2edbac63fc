// AgentQueryService: read-only SQL over this agent's store for `coral query
// --agent` (see ../query). Every field is checked here (InvalidArgument
// naming it); QueryError kinds map to Connect codes in one place. Loaded on
// the first call (server.ts), so agents that are never queried load none of it.
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import type { AgentQueryService, QueryRequest } from "@coral/proto/gen/coral/agent/v1/query_pb";
import { QueryError, QueryRunner, type QueryErrorKind, type QueryRunnerOptions } from "../query/index.ts";

export const queryBounds = { maxSqlChars: 100_000, maxRows: 10_000, defaultRows: 1_000, maxTimeoutMs: 60_000, defaultTimeoutMs: 10_000 } as const;

/** The request's SQL and limits with defaults filled in, or what is wrong with it. */
export function parseQueryRequest(req: Pick<QueryRequest, "sql" | "maxRows" | "timeoutMs">): { sql: string; maxRows: number; timeoutMs: number } | { error: string } {
  const b = queryBounds;
  if (!req.sql.trim()) return { error: "sql: required (one read-only SQL statement)" };
  if (req.sql.length > b.maxSqlChars) return { error: `sql: ${req.sql.length} characters, over the limit of ${b.maxSqlChars}` };
  if (req.maxRows > b.maxRows) return { error: `max_rows: must be 1..${b.maxRows} (0 = ${b.defaultRows}), got ${req.maxRows}` };
  if (req.timeoutMs > b.maxTimeoutMs) return { error: `timeout_ms: must be 1..${b.maxTimeoutMs} (0 = ${b.defaultTimeoutMs}), got ${req.timeoutMs}` };
  return { sql: req.sql, maxRows: req.maxRows || b.defaultRows, timeoutMs: req.timeoutMs || b.defaultTimeoutMs };
}

const codes: Record<QueryErrorKind, Code> = {
  refused: Code.InvalidArgument,
  invalid: Code.InvalidArgument,
  timeout: Code.DeadlineExceeded,
  limit: Code.ResourceExhausted,
  cancelled: Code.Canceled,
  unavailable: Code.Unavailable,
};

export function queryConnectError(err: unknown): ConnectError {
  if (err instanceof QueryError) return new ConnectError(err.message, codes[err.kind], undefined, undefined, err);
  return ConnectError.from(err);
}

export interface AgentQueryServiceOptions extends QueryRunnerOptions {
  /** The observed service whose store this is: a request naming another gets NotFound. */
  serviceName: string;
  /** Writes the store's buffered samples, so a query sees every accepted one. */
  flush?: () => Promise<void>;
}

export function agentQueryService(options: AgentQueryServiceOptions): ServiceImpl<typeof AgentQueryService> & AsyncDisposable {
  const runner = new QueryRunner(options);
  const checkService = (name: string) => {
    if (name && name !== options.serviceName)
      throw new ConnectError(`this agent observes ${options.serviceName}, not ${name}: ask the agent of ${name}`, Code.NotFound);
  };
  return {
    async query(req, ctx) {
      checkService(req.serviceName);
      const parsed = parseQueryRequest(req);
      if ("error" in parsed) throw new ConnectError(parsed.error, Code.InvalidArgument);
      await options.flush?.();
      const r = await runner.query({ ...parsed, signal: ctx.signal }).catch((err: unknown) => {
        throw queryConnectError(err);
      });
      return {
        columns: r.columns,
        rows: r.rows.map((cells) => ({ cells: cells.map((text) => (text === null ? {} : { text })) })),
        truncated: r.truncated,
        truncatedBy: r.truncatedBy,
        elapsedMs: r.elapsedMs,
        engine: "sqlite",
      };
    },
    async getQuerySchema(req, ctx) {
      checkService(req.serviceName);
      const tables = await runner.schema({ signal: ctx.signal }).catch((err: unknown) => {
        throw queryConnectError(err);
      });
      return { tables, engine: "sqlite" };
    },
    [Symbol.asyncDispose]: () => runner.close(),
  };
}
