// ColonyService.QueryTraces and QueryLogs: the same filter to every live
// agent that serves detail queries (OpenTelemetry's service.name need not be
// a component's name, so no agent is skipped), each answering from its own
// raw window; the answers merged oldest first and cut to the newest `limit`.
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { checkLogFilter, checkSpanFilter } from "@coral/common/telemetry-filters";
import { AgentService } from "@coral/proto/gen/coral/agent/v1/agent_pb";
import { LogFilterSchema, SpanFilterSchema, type LogFilter, type OtelLogRecord, type OtelSpan, type SpanFilter } from "@coral/proto/gen/coral/agent/v1/telemetry_pb";
import type { QueryLogsRequest, QueryLogsResponseSchema, QueryTracesRequest, QueryTracesResponseSchema } from "@coral/proto/gen/coral/colony/v1/telemetry_pb";
import type { ApiDeps } from "../api/deps.ts";
import { agentServiceClient } from "./transport.ts";

const agentTimeoutMs = 10_000;

function invalid<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw new ConnectError((err as Error).message, Code.InvalidArgument);
  }
}

const dates = (f: SpanFilter | LogFilter) => ({ since: f.since && timestampDate(f.since), until: f.until && timestampDate(f.until) });

/** Asks every live agent; what each returned (with its id) and who did not answer. */
async function fromAgents<T>(deps: Pick<ApiDeps, "store" | "agents" | "identity">, ask: (client: ReturnType<typeof agentServiceClient<typeof AgentService>>) => Promise<{ items: T[]; truncated: boolean }>, tag: (item: T, agentId: string) => void) {
  const agents = (await deps.store.listAgents()).filter((a) => deps.agents.get(a.agentId)?.state !== "expired");
  const out = { items: [] as T[], truncated: false, unavailable: [] as string[] };
  await Promise.all(
    agents.map(async (agent) => {
      if (!agent.agentUrl) return; // serves no detail queries
      try {
        const res = await ask(agentServiceClient(AgentService, agent.agentUrl, agent.agentId, deps.identity));
        out.truncated ||= res.truncated;
        for (const item of res.items) {
          tag(item, agent.agentId);
          out.items.push(item);
        }
      } catch (err) {
        out.unavailable.push(`${agent.serviceName} (${agent.agentId}): ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
  );
  return out;
}

/** The newest `limit` of `items` (sorted oldest first by `key`). */
function newest<T>(items: T[], limit: number, key: (x: T) => bigint): { items: T[]; cut: boolean } {
  items.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return items.length > limit ? { items: items.slice(items.length - limit), cut: true } : { items, cut: false };
}

export function telemetryQueryHandlers(deps: Pick<ApiDeps, "store" | "agents" | "identity">) {
  return {
    async queryTraces(req: QueryTracesRequest): Promise<MessageInitShape<typeof QueryTracesResponseSchema>> {
      const filter = req.filter ?? create(SpanFilterSchema);
      const checked = invalid(() => checkSpanFilter({ ...filter, ...dates(filter) }));
      const got = await fromAgents<OtelSpan>(
        deps,
        async (c) => {
          const r = await c.querySpans({ filter }, { timeoutMs: agentTimeoutMs });
          return { items: r.spans, truncated: r.truncated };
        },
        (s, agentId) => (s.agentId = agentId),
      );
      const { items, cut } = newest(got.items, checked.limit, (s) => s.startUnixNano);
      return { spans: items, truncated: got.truncated || cut, unavailable: got.unavailable };
    },
    async queryLogs(req: QueryLogsRequest): Promise<MessageInitShape<typeof QueryLogsResponseSchema>> {
      const filter = req.filter ?? create(LogFilterSchema);
      const checked = invalid(() => checkLogFilter({ ...filter, ...dates(filter) }));
      const got = await fromAgents<OtelLogRecord>(
        deps,
        async (c) => {
          const r = await c.queryLogs({ filter }, { timeoutMs: agentTimeoutMs });
          return { items: r.records, truncated: r.truncated };
        },
        (l, agentId) => (l.agentId = agentId),
      );
      const { items, cut } = newest(got.items, checked.limit, (l) => l.timeUnixNano);
      return { records: items, truncated: got.truncated || cut, unavailable: got.unavailable };
    },
  };
}
