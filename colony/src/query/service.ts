// QueryService: `coral query`, read-only SQL over the colony's DuckDB or, with
// a service name, over that service's raw store on its agent (forwarded, as
// traffic queries are). Every attempt, refused ones too, is audited with the
// caller, the SQL and the outcome.
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { IdentityKey } from "@coral/proto";
import { AgentQueryService, type QueryRow } from "@coral/proto/gen/coral/agent/v1/query_pb";
import type { QueryService } from "@coral/proto/gen/coral/colony/v1/query_pb";
import { callerKey } from "../auth/index.ts";
import { agentServiceClient } from "../agents/transport.ts";
import { agentError, type DebugSessions } from "../debug/sessions.ts";
import type { ColonyStore } from "../store/index.ts";
import { QueryRefusedError } from "./check-sql.ts";
import { queryBounds } from "@coral/common/query-limits";
import { colonyQuerySchema, QueryTimeoutError, runColonyQuery, type QueryResult } from "./run.ts";

export interface QueryDeps {
  store: Pick<ColonyStore, "adHocRead">;
  /** Finds a service's live agent (the same choice as debug sessions and traffic); absent: only the colony is queried. */
  debug?: Pick<DebugSessions, "agentFor">;
  identity: IdentityKey;
  audit(actor: string, action: string, target: string, details: Record<string, unknown>): Promise<void>;
}

/** Time the agent gets beyond the query's own timeout to answer. */
const agentSlackMs = 10_000;
const auditedSqlChars = 2000;

/** DuckDB's errors about the statement itself (the person's to fix), by their class prefix. */
const userErrorClasses = /^(Binder|Parser|Catalog|Conversion|Invalid Input|Out of Range|Not implemented|Constraint|Invalid type|Syntax) Error/i;

function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  if (err instanceof QueryRefusedError) return new ConnectError(err.message, Code.InvalidArgument);
  if (err instanceof QueryTimeoutError) return new ConnectError(err.message, Code.DeadlineExceeded);
  const message = (err as Error).message ?? String(err);
  if (/^Out of Memory Error/i.test(message)) return new ConnectError(`the query needs more memory than the colony allows: ${message}`, Code.ResourceExhausted);
  if (userErrorClasses.test(message)) return new ConnectError(message, Code.InvalidArgument);
  return new ConnectError(message, Code.Internal);
}

const protoRows = (rows: QueryResult["rows"]) => rows.map((row) => ({ cells: row.map((text) => (text === null ? {} : { text })) }));

export function queryService(deps: QueryDeps): ServiceImpl<typeof QueryService> {
  const who = (ctx: HandlerContext) => ctx.values.get(callerKey)?.name ?? "unknown";
  const agentClient = async (serviceName: string) => {
    if (serviceName.length > 128) throw new ConnectError("service_name: at most 128 characters", Code.InvalidArgument);
    if (!deps.debug) throw new ConnectError("this colony does not reach agents (no agent transport); query the colony without a service", Code.Unavailable);
    const agent = await deps.debug.agentFor(serviceName);
    return { agent, client: agentServiceClient(AgentQueryService, agent.agentUrl, agent.agentId, deps.identity) };
  };
  /** An agent's own answer (a refused statement, its timeout) passes as it is; a transport failure says the agent is unreachable. */
  const fromAgent = (err: unknown, agent: { agentId: string; agentUrl: string }) => {
    const ce = ConnectError.from(err);
    return [Code.InvalidArgument, Code.DeadlineExceeded, Code.ResourceExhausted, Code.NotFound].includes(ce.code) && ce.rawMessage !== "" ? new ConnectError(ce.rawMessage, ce.code) : agentError(err, agent);
  };

  return {
    async query(req, ctx) {
      const actor = who(ctx);
      const target = req.serviceName || "colony";
      const audited = { sql: req.sql.slice(0, auditedSqlChars) };
      try {
        let bounds: ReturnType<typeof queryBounds>;
        try {
          bounds = queryBounds(req);
        } catch (err) {
          throw new ConnectError((err as Error).message, Code.InvalidArgument);
        }
        let answer: { columns: Array<{ name: string; type: string }>; rows: QueryRow[] | ReturnType<typeof protoRows>; truncated: boolean; truncatedBy: string; elapsedMs: number; engine: string; agentId: string };
        if (!req.serviceName) {
          const r = await deps.store.adHocRead((c) => runColonyQuery(c, req.sql, bounds)).catch((err: unknown) => Promise.reject(toConnectError(err)));
          answer = { ...r, rows: protoRows(r.rows), engine: "duckdb", agentId: "" };
        } else {
          const { agent, client } = await agentClient(req.serviceName);
          try {
            const r = await client.query({ sql: req.sql, maxRows: bounds.maxRows, timeoutMs: bounds.timeoutMs, serviceName: req.serviceName }, { timeoutMs: bounds.timeoutMs + agentSlackMs, signal: ctx.signal });
            answer = { columns: r.columns, rows: r.rows, truncated: r.truncated, truncatedBy: r.truncatedBy, elapsedMs: r.elapsedMs, engine: r.engine, agentId: agent.agentId };
          } catch (err) {
            throw fromAgent(err, agent);
          }
        }
        await deps.audit(actor, "query", target, { ...audited, outcome: "ok", rows: answer.rows.length, truncated: answer.truncated, elapsedMs: answer.elapsedMs });
        return { ...answer, source: target };
      } catch (err) {
        const ce = toConnectError(err);
        await deps.audit(actor, "query", target, { ...audited, outcome: ce.code === Code.InvalidArgument ? "refused" : Code[ce.code], error: ce.rawMessage.slice(0, 500) });
        throw ce;
      }
    },

    async getQuerySchema(req) {
      if (!req.serviceName) return { tables: await deps.store.adHocRead((c) => colonyQuerySchema(c)), engine: "duckdb", source: "colony" };
      const { agent, client } = await agentClient(req.serviceName);
      try {
        const r = await client.getQuerySchema({ serviceName: req.serviceName }, { timeoutMs: 15_000 });
        return { tables: r.tables, engine: r.engine, source: req.serviceName };
      } catch (err) {
        throw fromAgent(err, agent);
      }
    },
  };
}
