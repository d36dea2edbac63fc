// TrafficService: the sampled requests of a component, kept by the agent that
// observes it. The colony checks every field at the edge (the agent checks
// again), picks the service's live agent as debug sessions and profiles do,
// and forwards the call. Queries are read data; ConfigureTraffic changes what
// the app keeps, so it needs admin (see ../auth) and is audited.
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { IdentityKey } from "@coral/proto";
import { AgentTrafficService } from "@coral/proto/gen/coral/agent/v1/traffic_pb";
import type { TrafficService } from "@coral/proto/gen/coral/colony/v1/traffic_pb";
import { checkSampleRate, checkTrafficFilters, trafficSampleService } from "@coral/common/traffic-filters";
import { callerKey } from "../auth/index.ts";
import { agentServiceClient } from "../agents/transport.ts";
import { agentError, type DebugSessions } from "../debug/sessions.ts";

export interface TrafficDeps {
  /** Finds a service's live agent (the same choice as debug sessions and profiles). */
  debug: Pick<DebugSessions, "agentFor">;
  identity: IdentityKey;
  audit(actor: string, action: string, target: string, details: Record<string, unknown>): Promise<void>;
}

const agentTimeoutMs = 15_000;

function invalid<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    throw new ConnectError((err as Error).message, Code.InvalidArgument);
  }
}

function serviceNameRequired(name: string): void {
  if (!name) throw new ConnectError("service_name: required (a component name from coral status)", Code.InvalidArgument);
  if (name.length > 128) throw new ConnectError("service_name: at most 128 characters", Code.InvalidArgument);
}

export function trafficService(deps: TrafficDeps): ServiceImpl<typeof TrafficService> {
  const who = (ctx: HandlerContext) => ctx.values.get(callerKey)?.name ?? "unknown";
  async function forward<R>(serviceName: string, call: (client: ReturnType<typeof agentServiceClient<typeof AgentTrafficService>>) => Promise<R>) {
    const agent = await deps.debug.agentFor(serviceName);
    const client = agentServiceClient(AgentTrafficService, agent.agentUrl, agent.agentId, deps.identity);
    try {
      return { res: await call(client), agent };
    } catch (err) {
      throw agentError(err, agent);
    }
  }
  return {
    async queryTraffic(req, ctx) {
      serviceNameRequired(req.serviceName);
      const filters = invalid(() => checkTrafficFilters(req));
      const { res, agent } = await forward(req.serviceName, (c) =>
        c.queryTraffic(
          { pathPrefix: filters.pathPrefix ?? "", method: filters.method ?? "", status: req.status.trim(), since: req.since, limit: filters.limit },
          { timeoutMs: agentTimeoutMs, signal: ctx.signal },
        ),
      );
      return {
        samples: res.samples,
        truncated: res.truncated,
        storedSamples: res.storedSamples,
        storedBytes: res.storedBytes,
        sdkDropped: res.sdkDropped,
        pruned: res.pruned,
        sampleRate: res.sampleRate,
        serviceName: req.serviceName,
        agentId: agent.agentId,
      };
    },
    async getTrafficSample(req, ctx) {
      const serviceName = trafficSampleService(req.id);
      if (!serviceName) throw new ConnectError(`id: not a traffic sample id (<service>.<hex>, as coral traffic lists it), got ${JSON.stringify(req.id.slice(0, 60))}`, Code.InvalidArgument);
      const { res, agent } = await forward(serviceName, (c) => c.getTrafficSample({ id: req.id }, { timeoutMs: agentTimeoutMs, signal: ctx.signal }));
      return { sample: res.sample, serviceName, agentId: agent.agentId };
    },
    async configureTraffic(req, ctx) {
      serviceNameRequired(req.serviceName);
      const sampleRate = invalid(() => checkSampleRate(req.sampleRate));
      const by = who(ctx);
      const agent = await deps.debug.agentFor(req.serviceName);
      await deps.audit(by, "traffic.configure", req.serviceName, { agentId: agent.agentId, sampleRate });
      const client = agentServiceClient(AgentTrafficService, agent.agentUrl, agent.agentId, deps.identity);
      try {
        const res = await client.configureTraffic({ sampleRate }, { timeoutMs: agentTimeoutMs, signal: ctx.signal });
        await deps.audit(by, "traffic.configure.done", req.serviceName, { agentId: agent.agentId, sampleRate: res.sampleRate, deliveredToSdk: res.deliveredToSdk });
        return { sampleRate: res.sampleRate, deliveredToSdk: res.deliveredToSdk, serviceName: req.serviceName, agentId: agent.agentId };
      } catch (err) {
        const ce = agentError(err, agent);
        await deps.audit(by, "traffic.configure.failed", req.serviceName, { agentId: agent.agentId, code: Code[ce.code], message: ce.rawMessage.slice(0, 300) });
        throw ce;
      }
    },
  };
}
