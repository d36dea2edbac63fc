// The agent's Connect link to its colony: Register (signed with the agent's
// own key; the first time with its invitation), Heartbeat, Deregister, and
// ReportKeptTraces (traces kept here for an error or slow span).
// Register is retried with backoff until the colony answers; a heartbeat the
// colony refuses (unknown or expired agent) leads to a new registration. The
// colony's identity key is pinned: from the join token, or vouched for by the
// colony's proof over the invitation, then kept in the identity file.
import { hostname } from "node:os";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { backoffMs, sleep } from "@coral/common/async";
import { checkColonyProof, signRegisterRequest } from "@coral/proto";
import { HealthStatus, MeshService, RegisterRequestSchema, type RegisterResponse } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import type { SdkReport } from "../control/index.ts";
import { saveAgentIdentity, type AgentIdentity } from "./identity.ts";

export interface Invitation {
  invitationId: string;
  /** 64 hex characters, from the join token. */
  invitationSecret: string;
}

export interface ColonyLinkOptions {
  colonyUrl: string;
  identity: AgentIdentity;
  /** Where the identity file lives (the pinned colony key is saved there). */
  dataDir: string;
  /** Needed until the colony has enrolled this agent. */
  invitation?: Invitation;
  agentId: string;
  serviceName: string;
  port: number;
  version: string;
  tags: Record<string, string>;
  agentUrl: string;
  /** Where the colony reaches the agent (default 127.0.0.1). */
  address?: string;
  /** Called once the colony's key is known (pinned), for the agent API's checks. */
  onColonyKey?: (publicKey: string) => void;
}

/** The colony's answer cannot be trusted; registering again will not help. */
export class UntrustedColonyError extends Error {
  override name = "UntrustedColonyError";
}

export interface HeartbeatInfo {
  health: "healthy" | "degraded" | "unhealthy" | "unknown";
  pid: number;
  startedAt: Date | null;
  restartCount: number;
  cpuPercent: number;
  memoryBytes: number;
  fdCount: number;
  threadCount: number;
  /** Processes in the observed set (listener and descendants). */
  processCount?: number;
  /** What the app's Coral SDK answered, if the agent reaches one. */
  sdk?: SdkReport | null;
}

const healthCodes = {
  healthy: HealthStatus.HEALTHY,
  degraded: HealthStatus.DEGRADED,
  unhealthy: HealthStatus.UNHEALTHY,
  unknown: HealthStatus.UNSPECIFIED,
} as const;

export class ColonyLink {
  private token = "";
  private readonly client;

  constructor(private readonly options: ColonyLinkOptions) {
    const auth: Interceptor = (next) => (req) => {
      if (this.token) req.header.set("authorization", `Bearer ${this.token}`);
      return next(req);
    };
    this.client = createClient(MeshService, createConnectTransport({ baseUrl: options.colonyUrl, httpVersion: "1.1", interceptors: [auth] }));
  }

  async register(signal?: AbortSignal): Promise<RegisterResponse> {
    const { identity, invitation } = this.options;
    if (!identity.enrolled && !invitation)
      throw new ConnectError("this agent has not joined its colony yet and has no invitation: pass a join token (coral colony invite)", Code.Unauthenticated);
    const request = create(RegisterRequestSchema, {
      agentId: this.options.agentId,
      serviceName: this.options.serviceName,
      port: this.options.port,
      version: this.options.version,
      tags: this.options.tags,
      hostname: hostname(),
      address: this.options.address ?? "127.0.0.1",
      agentUrl: this.options.agentUrl,
    });
    const { invitationKey: key, context } = await signRegisterRequest(request, identity.key, invitation);
    const res = await this.client.register(request, { signal, timeoutMs: 15_000 });
    await this.trustColony(res, key, context);
    this.token = res.agentToken;
    return res;
  }

  /** Pins the colony's key, or refuses an answer from a colony that is not the one we were invited to. */
  private async trustColony(res: RegisterResponse, invitationKeyHex: string, context: Parameters<typeof checkColonyProof>[1]): Promise<void> {
    const { identity } = this.options;
    if (identity.colonyPubkey) {
      if (res.colonyPubkey !== identity.colonyPubkey)
        throw new UntrustedColonyError(
          `the colony at ${this.options.colonyUrl} answered with identity key ${res.colonyPubkey.slice(0, 12)}…, not the pinned ${identity.colonyPubkey.slice(0, 12)}…; refusing it (another colony, or interception)`,
        );
    } else if (!invitationKeyHex || !res.colonyProof || !(await checkColonyProof(invitationKeyHex, context, res.colonyPubkey, res.colonyProof))) {
      throw new UntrustedColonyError(`the colony at ${this.options.colonyUrl} could not prove it issued this agent's invitation; refusing it`);
    }
    if (identity.colonyPubkey !== res.colonyPubkey || !identity.enrolled) {
      identity.colonyPubkey = res.colonyPubkey;
      identity.enrolled = true;
      await saveAgentIdentity(this.options.dataDir, identity);
    }
    this.options.onColonyKey?.(res.colonyPubkey);
  }

  /** Registers, retrying with backoff (up to 30 s apart) until it works or `signal` aborts. */
  async registerWithRetry(signal: AbortSignal, onRetry: (err: ConnectError, delayMs: number) => void): Promise<RegisterResponse> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.register(signal);
      } catch (err) {
        if (err instanceof UntrustedColonyError) throw err;
        const ce = ConnectError.from(err);
        // A refused identity, a spent invitation or a bad request will not fix itself.
        if (ce.code === Code.InvalidArgument || ce.code === Code.Unauthenticated || ce.code === Code.PermissionDenied) throw ce;
        signal.throwIfAborted();
        // 0.5 s doubling up to 30 s, each wait a random point in its upper half.
        const delay = backoffMs(attempt, 500, 30_000, { jitter: "equal" });
        onRetry(ce, delay);
        // A stop cuts the wait short; the next register() then sees the aborted signal.
        await sleep(delay, signal);
      }
    }
  }

  /** Returns the colony's state for this agent; throws ConnectError. */
  async heartbeat(info: HeartbeatInfo): Promise<string> {
    const res = await this.client.heartbeat(
      {
        agentId: this.options.agentId,
        health: healthCodes[info.health],
        pid: info.pid,
        processStartedAt: info.startedAt ? timestampFromDate(info.startedAt) : undefined,
        restartCount: info.restartCount,
        // The SDK knows the running version better than a --tags flag.
        version: info.sdk?.info.serviceVersion || this.options.version,
        sdkEnabled: Boolean(info.sdk),
        sdkInfo: info.sdk?.info,
        sdkHealth: info.sdk?.health,
        resources: {
          cpuPercent: info.cpuPercent,
          memoryBytes: BigInt(Math.max(0, Math.round(info.memoryBytes))),
          fdCount: info.fdCount,
          threadCount: info.threadCount,
          processCount: info.processCount ?? 0,
        },
      },
      { timeoutMs: 10_000 },
    );
    return res.state;
  }

  /** Tells the colony this agent keeps these traces (at most 1000 ids); throws before registration and on failure. */
  async reportKeptTraces(traceIds: string[]): Promise<void> {
    if (!this.token) throw new ConnectError("not registered with the colony yet", Code.FailedPrecondition);
    await this.client.reportKeptTraces({ agentId: this.options.agentId, traceIds }, { timeoutMs: 5000 });
  }

  async deregister(reason: string): Promise<void> {
    await this.client.deregister({ agentId: this.options.agentId, reason }, { timeoutMs: 5000 });
  }
}

/** The colony forgot us (expired, restarted without our actor): register again. */
export function needsReRegistration(err: unknown): boolean {
  const code = ConnectError.from(err).code;
  return code === Code.Unauthenticated || code === Code.FailedPrecondition;
}
