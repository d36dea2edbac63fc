// The agent's Connect server: the colony's detail queries against the local
// DuckDB. Only a caller holding the colony secret (an HMAC proof in the
// x-coral-proof header, fresh and used once) gets an answer.
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { checkSecretProof, decodeProof, proofHeader } from "@coral/proto";
import { AgentService } from "@coral/proto/gen/coral/agent/v1/agent_pb";
import { FeatureFlagControlService } from "@coral/proto/gen/coral/control/v1/flags_pb";
import { RollbackControlService } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import type { ServiceImpl } from "@connectrpc/connect";
import { AgentDebugService } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import type { UprobeCollectors } from "../debug/collectors.ts";
import type { AgentStore } from "../storage/index.ts";
import { agentDebugService } from "./debug-service.ts";

const proofWindowMs = 5 * 60_000;
const maxLimit = 100_000;

function proofInterceptor(secret: string, agentId: string): Interceptor {
  const seen = new Map<string, number>();
  return (next) => async (req) => {
    const proof = decodeProof(req.header.get(proofHeader));
    if (!proof) throw new ConnectError(`missing or malformed ${proofHeader} header`, Code.Unauthenticated);
    const now = Date.now();
    if (Math.abs(Number(proof.timestampMs) - now) > proofWindowMs)
      throw new ConnectError("proof timestamp is outside the 5 minute window; check the clocks", Code.Unauthenticated);
    if (!(await checkSecretProof(secret, agentId, proof))) throw new ConnectError("proof does not match this agent's colony", Code.Unauthenticated);
    for (const [nonce, at] of seen) if (at < now - 2 * proofWindowMs) seen.delete(nonce);
    if (seen.has(proof.nonce)) throw new ConnectError("proof was already used", Code.Unauthenticated);
    seen.set(proof.nonce, now);
    return next(req);
  };
}

function range(since?: Timestamp, until?: Timestamp, limit = 0) {
  if (limit > maxLimit) throw new ConnectError(`limit: must be at most ${maxLimit}`, Code.InvalidArgument);
  const s = since ? timestampDate(since) : undefined;
  const u = until ? timestampDate(until) : undefined;
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
}

export async function startAgentApi(options: {
  store: AgentStore;
  secret: string;
  agentId: string;
  host?: string;
  port?: number;
  control?: AgentControlHandlers;
  /** Live debugging (AgentDebugService); absent = not served. */
  debug?: UprobeCollectors;
}): Promise<AgentApiServer> {
  const { store } = options;
  const handler = connectNodeAdapter({
    interceptors: [proofInterceptor(options.secret, options.agentId)],
    routes: (router) => {
      if (options.control) {
        router.service(FeatureFlagControlService, options.control.flags);
        router.service(RollbackControlService, options.control.rollback);
      }
      if (options.debug) router.service(AgentDebugService, agentDebugService(options.debug));
      router.service(AgentService, {
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
  const server = http.createServer(handler);
  server.listen(options.port ?? 0, options.host ?? "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }));
  return { url: `http://${options.host ?? "127.0.0.1"}:${port}`, close, [Symbol.asyncDispose]: close };
}
