// MeshService: agents join, heartbeat and leave, and report the traces they
// keep for an error or slow span (passed on to the other agents, ./trace-keeps.ts).
import { randomBytes } from "node:crypto";
import { clone, toBinary } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { ValidationError, bearerToken, checkAgentId, checkKeptTraceIds, sha256Hex } from "@coral/proto";
import {
  HealthStatus,
  MeshService,
  RegisterRequestSchema,
  type DeregisterRequest,
  type HeartbeatRequest,
  type RegisterRequest,
  type ReportKeptTracesRequest,
} from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { TraceKeepRelay } from "./trace-keeps.ts";
import type { AgentHealth } from "./machine.ts";
import { IdentityError } from "../identity/identities.ts";
import { hashToken, peerAddressKey } from "../auth/index.ts";
import type { ApiDeps } from "../api/deps.ts";
import { agentInboxPrefix, agentSubjectPrefix } from "../nats/index.ts";

const serviceNamePattern = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

const healthNames: Record<HealthStatus, AgentHealth> = {
  [HealthStatus.UNSPECIFIED]: "unknown",
  [HealthStatus.HEALTHY]: "healthy",
  [HealthStatus.DEGRADED]: "degraded",
  [HealthStatus.UNHEALTHY]: "unhealthy",
};

const identityCodes: Record<IdentityError["kind"], Code> = { invalid: Code.InvalidArgument, unauthenticated: Code.Unauthenticated, permission_denied: Code.PermissionDenied, unavailable: Code.Unavailable };

function invalid(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}

export function meshService(deps: ApiDeps, traceKeeps = new TraceKeepRelay(deps)) {
  function validateRegister(req: RegisterRequest): void {
    try {
      checkAgentId(req.agentId);
      // The agent id is one NATS subject token.
      if (req.agentId.includes(".")) throw new ValidationError("agent_id", `"${req.agentId.slice(0, 40)}" may not contain "." (it names NATS subjects)`);
    } catch (err) {
      if (err instanceof ValidationError) throw invalid(err.message);
      throw err;
    }
    if (!serviceNamePattern.test(req.serviceName))
      throw invalid(`service_name: "${req.serviceName.slice(0, 40)}" must be 1-63 lowercase letters, digits or inner hyphens, e.g. "api"`);
    if (req.port > 65535) throw invalid(`port: must be a port from 1 to 65535 (got ${req.port})`);
    if (req.version.length > 128) throw invalid("version: must be at most 128 characters");
    if (Object.keys(req.tags).length > 32) throw invalid("tags: at most 32 tags");
    for (const [k, v] of Object.entries(req.tags))
      if (k.length > 63 || v.length > 256) throw invalid(`tags.${k.slice(0, 40)}: keys up to 63 and values up to 256 characters`);
    if (req.agentUrl.length > 256) throw invalid("agent_url: must be at most 256 characters");
    if (req.hostname.length > 253 || req.address.length > 64) throw invalid("hostname/address: too long");
    if (!req.signature) throw invalid("signature: is required: the agent signs its registration with its own key (upgrade the agent)");
  }

  /** The registration's signer: its key pinned to the agent id, or an invitation that enrolls it. */
  async function authenticateRegistration(req: RegisterRequest) {
    const unsigned = clone(RegisterRequestSchema, req);
    unsigned.signature = undefined;
    try {
      return await deps.identities.authenticate({
        agentId: req.agentId,
        agentPubkey: req.agentPubkey,
        timestampMs: req.signature!.timestampMs,
        nonce: req.signature!.nonce,
        signature: req.signature!.signature,
        digestHex: await sha256Hex(toBinary(RegisterRequestSchema, unsigned)),
        invitation: req.invitation,
      });
    } catch (err) {
      if (err instanceof IdentityError) throw new ConnectError(err.message, identityCodes[err.kind]);
      throw err;
    }
  }

  async function authenticateAgent(agentId: string, ctx: HandlerContext) {
    const token = bearerToken(ctx.requestHeader.get("authorization"));
    const view = deps.agents.get(agentId);
    if (deps.identities.isRevoked(agentId)) throw new ConnectError(`agent ${agentId} was revoked`, Code.PermissionDenied);
    if (!token || !view || view.tokenHash !== hashToken(token))
      throw new ConnectError(`unknown agent ${agentId} or wrong agent token; register again`, Code.Unauthenticated);
    return view;
  }

  const impl: ServiceImpl<typeof MeshService> = {
    async register(req, ctx) {
      validateRegister(req);
      const auth = await authenticateRegistration(req);
      const now = Date.now();

      // Fresh credentials on every registration: whatever an earlier run held stops working.
      const agentToken = randomBytes(32).toString("base64url");
      const prefix = agentSubjectPrefix(deps.colonyId, req.agentId);
      const nats = await deps.natsCredentials(req.agentId, prefix);
      const existing = await deps.store.getAgent(req.agentId);
      await deps.store.upsertAgent({
        agentId: req.agentId,
        serviceName: req.serviceName,
        port: req.port,
        address: req.address || ctx.values.get(peerAddressKey).replace(/^::ffff:/, ""),
        version: req.version,
        hostname: req.hostname,
        tags: { ...req.tags },
        agentUrl: req.agentUrl,
        registeredAt: new Date(now),
        lastSeen: new Date(now),
        health: existing?.health ?? "unknown",
        pid: existing?.pid ?? 0,
        processStartedAt: existing?.processStartedAt ?? null,
        restartCount: existing?.restartCount ?? 0,
        cpuPercent: existing?.cpuPercent ?? 0,
        memoryBytes: existing?.memoryBytes ?? 0,
        processCount: existing?.processCount ?? 0,
      });
      const view = await deps.agents.send(
        req.agentId,
        { type: "register", atMs: now, tokenHash: hashToken(agentToken), serviceName: req.serviceName },
        req.serviceName,
      );
      await deps.store.appendAudit({
        at: new Date(now),
        actor: `agent:${req.agentId}`,
        action: "agent.register",
        target: req.serviceName,
        details: { port: req.port, version: req.version, address: req.address, identity: auth.outcome, invitation: auth.identity.invitationId },
      });
      deps.log.info({ agent_id: req.agentId, service: req.serviceName, state: view.state }, "Agent registered");
      // After this response, so the agent knows its token before flags arrive.
      setImmediate(() => {
        deps.control?.agentRegistered(req.agentId);
        deps.debug?.agentRegistered(req.agentId);
      });
      return {
        colonyId: deps.colonyId,
        agentToken,
        nats: {
          url: nats.url,
          user: nats.user,
          password: nats.password,
          subjectPrefix: prefix,
          stream: deps.streamName,
          // Its own reply inbox: JetStream acks for one agent are not readable by another.
          inboxPrefix: agentInboxPrefix(deps.colonyId, req.agentId),
        },
        heartbeatIntervalSeconds: deps.heartbeatIntervalSeconds,
        assignedIp: "127.0.0.1",
        colonyPubkey: deps.identity.publicKey,
        colonyProof: auth.colonyProof,
      };
    },

    async heartbeat(req: HeartbeatRequest, ctx) {
      const view = await authenticateAgent(req.agentId, ctx);
      if (view.state === "expired") throw new ConnectError(`agent ${req.agentId} expired; register again`, Code.FailedPrecondition);
      const now = new Date();
      const row = await deps.store.getAgent(req.agentId);
      if (row) {
        await deps.store.upsertAgent({
          ...row,
          lastSeen: now,
          health: healthNames[req.health] ?? "unknown",
          pid: req.pid,
          processStartedAt: req.processStartedAt ? timestampDate(req.processStartedAt) : row.processStartedAt,
          restartCount: req.restartCount,
          version: req.version || row.version,
          cpuPercent: req.resources?.cpuPercent ?? 0,
          memoryBytes: Number(req.resources?.memoryBytes ?? 0n),
          processCount: req.resources?.processCount ?? 0,
        });
        await deps.control?.heartbeat(req, row.serviceName);
      }
      const next = await deps.agents.send(req.agentId, { type: "heartbeat", atMs: now.getTime(), health: healthNames[req.health] ?? "unknown" });
      return { ok: true, state: next.state };
    },

    async reportKeptTraces(req: ReportKeptTracesRequest, ctx) {
      const view = await authenticateAgent(req.agentId, ctx);
      if (view.state === "expired") throw new ConnectError(`agent ${req.agentId} expired; register again`, Code.FailedPrecondition);
      try {
        checkKeptTraceIds(req.traceIds);
      } catch (err) {
        if (err instanceof ValidationError) throw invalid(err.message);
        throw err;
      }
      return { agents: await traceKeeps.report(req.agentId, req.traceIds) };
    },

    async deregister(req: DeregisterRequest, ctx) {
      await authenticateAgent(req.agentId, ctx);
      await deps.agents.send(req.agentId, { type: "deregister", atMs: Date.now(), reason: req.reason.slice(0, 200) });
      deps.log.info({ agent_id: req.agentId, reason: req.reason }, "Agent deregistered");
      return {};
    },
  };
  return impl;
}
