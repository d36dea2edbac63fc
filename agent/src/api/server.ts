// The agent's Connect server: the colony's detail queries against the local
// store, read-only SQL over it (coral query --agent), its control calls, live
// debugging and CPU profiles. Only the colony gets an answer: every call
// carries a signature by the colony's identity key over this agent, the
// method, the body and the time (colony-guard.ts checks it before reading the
// body; colony-handler.ts checks the body against it).
import { telemetryHandlers } from "./telemetry-handlers.ts";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { AgentService } from "@coral/proto/gen/coral/agent/v1/agent_pb";
import { FeatureFlagControlService } from "@coral/proto/gen/coral/control/v1/flags_pb";
import { RollbackControlService, RollbackPlanService } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { DescService } from "@bufbuild/protobuf";
import { AgentDebugService } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import { AgentProfileService } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { AgentTrafficService } from "@coral/proto/gen/coral/agent/v1/traffic_pb";
import { AgentQueryService } from "@coral/proto/gen/coral/agent/v1/query_pb";
import type { TrafficPuller } from "../traffic/puller.ts";
import { agentTrafficService } from "./traffic-service.ts";
import { AgentExecService } from "@coral/proto/gen/coral/agent/v1/exec_pb";
import { AgentShellService } from "@coral/proto/gen/coral/agent/v1/shell_pb";
import type { AgentExecOptions } from "./exec-service.ts";
import type { UprobeCollectors } from "../debug/collectors.ts";
import type { CpuProfiler, HeapProfiler } from "../profile/index.ts";
import type { AgentStore } from "../storage/index.ts";
import { colonyGuard } from "./colony-guard.ts";
import { colonyCallHandler } from "./colony-handler.ts";

const maxLimit = 100_000;
/** Requests are small (queries, flags, intents); the largest flag set fits well under this. */
export const defaultMaxBodyBytes = 1024 * 1024;
// Timestamps a query may name: 1970 to 9999.
const maxSeconds = 253_402_300_799n;

function date(name: string, t?: Timestamp): Date | undefined {
  if (!t) return undefined;
  if (t.seconds < 0n || t.seconds > maxSeconds || t.nanos < 0 || t.nanos > 999_999_999)
    throw new ConnectError(`${name}: must be a time between 1970 and 9999`, Code.InvalidArgument);
  return timestampDate(t);
}

function range(since?: Timestamp, until?: Timestamp, limit = 0) {
  if (limit > maxLimit) throw new ConnectError(`limit: must be at most ${maxLimit}`, Code.InvalidArgument);
  const s = date("since", since);
  const u = date("until", until);
  if (s && u && s > u) throw new ConnectError("since: must be before until", Code.InvalidArgument);
  return { since: s, until: u, limit: limit || 1000 };
}

export interface AgentApiServer extends AsyncDisposable {
  url: string;
  close(): Promise<void>;
}

/** The colony's flag and rollback calls (see ../control). */
export interface AgentControlHandlers {
  flags: ServiceImpl<typeof FeatureFlagControlService>;
  rollback: ServiceImpl<typeof RollbackControlService>;
  rollbackPlan: ServiceImpl<typeof RollbackPlanService>;
}

export async function startAgentApi(options: {
  store: AgentStore;
  agentId: string;
  /** The colony identity key (base64) the agent pinned; undefined until it is known (then every call gets unavailable). */
  colonyPublicKey: () => string | undefined;
  /** Larger request bodies are refused before they are read (default 1 MiB). */
  maxBodyBytes?: number;
  host?: string;
  port?: number;
  control?: AgentControlHandlers;
  /** Live debugging (AgentDebugService), loaded on its first call; absent = not served. */
  debug?: () => Promise<UprobeCollectors>;
  /** CPU profiles on demand (AgentProfileService), loaded on its first call; absent = not served. */
  profile?: () => Promise<CpuProfiler>;
  /** Heap profiles on demand (AgentProfileService.ProfileHeap, with profile), loaded with it; absent = unimplemented. */
  heapProfile?: () => Promise<HeapProfiler>;
  /** Traffic samples from the app's SDK (AgentTrafficService); absent = not served. */
  traffic?: TrafficPuller;
  /** coral exec (AgentExecService), loaded on its first call; absent = not served. */
  exec?: AgentExecOptions;
  /** Other agents keep these traces (AgentService.KeepTraces): keep this agent's spans of them; returns the waiting spans kept now. */
  keepTraces?: (traceIds: readonly string[]) => number;
  /** Read-only SQL over the store's file (AgentQueryService) for the service it observes, loaded on its first call; absent = not served. */
  query?: { serviceName: string };
}): Promise<AgentApiServer> {
  const { store } = options;
  const maxBodyBytes = options.maxBodyBytes ?? defaultMaxBodyBytes;
  // Loaded on the first query; its reader process ends with the server.
  let queries: Promise<AsyncDisposable> | undefined;
  const handler = colonyCallHandler({
    maxBodyBytes,
    routes: (router) => {
      if (options.control) {
        router.service(FeatureFlagControlService, options.control.flags);
        router.service(RollbackControlService, options.control.rollback);
        router.service(RollbackPlanService, options.control.rollbackPlan);
      }
      const { debug } = options;
      if (debug) router.service(AgentDebugService, onFirstCall(AgentDebugService, async () => (await import("./debug-service.ts")).agentDebugService(await debug())));
      const { profile, heapProfile } = options;
      if (profile)
        router.service(
          AgentProfileService,
          onFirstCall(AgentProfileService, async () => (await import("./profile-service.ts")).agentProfileService(await profile(), await heapProfile?.())),
        );
      if (options.traffic) router.service(AgentTrafficService, agentTrafficService(store, options.traffic));
      const { query } = options;
      if (query)
        router.service(
          AgentQueryService,
          onFirstCall(AgentQueryService, () => {
            const loaded = import("./query-service.ts").then((m) => m.agentQueryService({ ...query, storePath: store.path, flush: () => store.flush() }));
            queries = loaded;
            return loaded;
          }),
        );
      const { exec } = options;
      if (exec) {
        router.service(AgentExecService, onFirstCall(AgentExecService, async () => (await import("./exec-service.ts")).agentExecService(exec)));
        // One service instance (it holds the open sessions), loaded at the first call of any of its methods.
        router.service(AgentShellService, onFirstCall(AgentShellService, async () => (await import("./shell-service.ts")).agentShellService(exec)));
      }
      router.service(AgentService, {
        ...telemetryHandlers(store, options.keepTraces),
        async queryMetrics(req) {
          const page = await store.queryMetrics({ metricName: req.metricName || undefined, ...range(req.since, req.until, req.limit) });
          return {
            truncated: page.truncated,
            points: page.rows.map((p) => ({ timestamp: timestampFromDate(p.timestamp), metricName: p.name, value: p.value, labels: p.labels })),
          };
        },
        async getEvents(req) {
          const page = await store.queryEvents({ eventType: req.eventType || undefined, ...range(req.since, req.until, req.limit) });
          return {
            events: page.rows.map((e) => ({
              eventId: e.eventId,
              timestamp: timestampFromDate(e.timestamp),
              eventType: e.eventType,
              detailsJson: JSON.stringify(e.details ?? {}),
            })),
          };
        },
        async getProcessSnapshots(req) {
          const page = await store.querySnapshots(range(req.since, req.until, req.limit));
          return {
            snapshots: page.rows.map((s) => ({
              timestamp: timestampFromDate(s.timestamp),
              pid: s.pid,
              cpuPercent: s.cpuPercent,
              memoryBytes: BigInt(Math.round(s.memoryBytes)),
              fdCount: s.fdCount ?? 0,
              threadCount: s.threadCount,
            })),
          };
        },
      });
    },
  });
  const guarded = colonyGuard({ agentId: options.agentId, colonyPublicKey: options.colonyPublicKey, maxBodyBytes }, handler);
  const server = http.createServer(guarded);
  // Expect: 100-continue goes through the guard too, so a refused client never sends its body.
  server.on("checkContinue", guarded);
  server.listen(options.port ?? 0, options.host ?? "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }).then(async () => {
      await (await queries?.catch(() => undefined))?.[Symbol.asyncDispose]();
    }));
  return { url: `http://${options.host ?? "127.0.0.1"}:${port}`, close, [Symbol.asyncDispose]: close };
}

/**
 * A service whose implementation (and the code behind it) is loaded on its
 * first call: live debugging is for the rare moment someone debugs, and the
 * agent's resident memory is for observing. Unary methods only.
 */
function onFirstCall<S extends DescService>(service: S, load: () => Promise<ServiceImpl<S>>): ServiceImpl<S> {
  let loaded: Promise<ServiceImpl<S>> | undefined;
  const impl: Record<string, (req: unknown, ctx: HandlerContext) => unknown> = {};
  const target = async () => (await (loaded ??= load())) as unknown as Record<string, (req: unknown, ctx: HandlerContext) => unknown>;
  for (const method of service.methods) {
    if (method.methodKind === "unary") impl[method.localName] = async (req, ctx) => (await target())[method.localName]!(req, ctx);
    else if (method.methodKind === "server_streaming")
      impl[method.localName] = async function* (req, ctx) {
        yield* (await target())[method.localName]!(req, ctx) as AsyncIterable<unknown>;
      };
    else throw new Error(`${service.typeName}.${method.name} streams requests: it cannot be loaded on first call`);
  }
  return impl as unknown as ServiceImpl<S>;
}
