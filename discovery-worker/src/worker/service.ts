// The DiscoveryService methods. Shared by the Connect routes and the REST
// routes: both hand in a validated request message and the caller's address.
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import {
  BootstrapIntent,
  DiscoveryService,
  ValidationError,
  bootstrapRequestJson,
  checkAgentId,
  checkMeshId,
  defaultBootstrapTtlSeconds,
  discoveryPb as pb,
  validateCreateBootstrapToken,
  validateRegisterAgent,
  validateRegisterColony,
} from "@coral/proto";
import { refreshedHeader, withExpiry, type RefreshNote } from "./answer-expiry.ts";
import { issueBootstrapToken, verifyBootstrapToken } from "./bootstrap.ts";
import { readConfig } from "./config.ts";
import type { AgentRecord, ColonyRecord, RegisterOutcome, Stored } from "./mesh-registry.ts";
import { LookupCache } from "./lookup-cache.ts";
import { meshObject } from "./mesh-object.ts";
import { registerAlone, type Registrar } from "./registry-batch.ts";
import { unwrap } from "./result.ts";

export interface CallContext {
  env: DiscoveryEnv;
  clientIp: string;
  /** How a registration reaches its mesh's object: alone, or with the others of its batch (registry-batch.ts). */
  register?: Registrar | undefined;
}

export const callContextKey = createContextKey<CallContext | undefined>(undefined, { description: "discovery call" });

function callContext(ctx: HandlerContext): CallContext {
  const call = ctx.values.get(callContextKey);
  if (!call) throw new ConnectError("discovery call context missing", Code.Internal);
  return call;
}

/** Runs validation, turning a ValidationError into invalid_argument. */
function validated<T>(check: () => T): T {
  try {
    return check();
  } catch (err) {
    if (err instanceof ValidationError) throw new ConnectError(err.message, Code.InvalidArgument);
    throw err;
  }
}

/** The Durable Object that holds the mesh: its own, or its bucket's (MESH_BUCKETS, see mesh-hash.ts). */
function mesh(env: DiscoveryEnv, meshId: string) {
  return meshObject(env, meshId).stub;
}

async function enforceRateLimit(call: CallContext): Promise<void> {
  const perMinute = readConfig(call.env).registerRatePerMinute;
  if (perMinute === 0) return;
  const limiter = call.env.RATE_LIMITER.get(call.env.RATE_LIMITER.idFromName(call.clientIp || "unknown"));
  const decision = await limiter.take(perMinute);
  if (!decision.allowed)
    throw new ConnectError(
      `too many registrations from ${call.clientIp}: the limit is ${perMinute} per minute; retry in ${decision.retryAfterSeconds}s`,
      Code.ResourceExhausted,
    );
}

function signatureMessage(record: ColonyRecord | AgentRecord): pb.Signature {
  return create(pb.SignatureSchema, record.signature);
}

export function colonyAnswer(stored: Stored<ColonyRecord>): pb.LookupColonyResponse {
  const r = stored.record;
  return create(pb.LookupColonyResponseSchema, {
    meshId: r.meshId,
    pubkey: r.pubkey,
    endpoints: [...r.endpoints],
    meshIpv4: r.meshIpv4,
    meshIpv6: r.meshIpv6,
    connectPort: r.connectPort,
    metadata: { ...r.metadata },
    publicEndpoint: r.publicEndpoint ? create(pb.PublicEndpointSchema, r.publicEndpoint) : undefined,
    signature: signatureMessage(r),
    lastSeen: timestampFromMs(stored.lastSeenMs),
    expiresAt: timestampFromMs(stored.expiresAtMs),
    observedEndpoint: r.observedIp,
  });
}

export function agentAnswer(stored: Stored<AgentRecord>): pb.LookupAgentResponse {
  const r = stored.record;
  return create(pb.LookupAgentResponseSchema, {
    meshId: r.meshId,
    agentId: r.agentId,
    pubkey: r.pubkey,
    endpoints: [...r.endpoints],
    metadata: { ...r.metadata },
    signature: signatureMessage(r),
    lastSeen: timestampFromMs(stored.lastSeenMs),
    expiresAt: timestampFromMs(stored.expiresAtMs),
    observedEndpoint: r.observedIp,
  });
}

let colonyCache: LookupCache<Stored<ColonyRecord>> | undefined;
let agentCache: LookupCache<Stored<AgentRecord>> | undefined;
function caches(env: DiscoveryEnv) {
  const ttl = readConfig(env).lookupCacheMs;
  colonyCache ??= new LookupCache(ttl);
  agentCache ??= new LookupCache(ttl);
  return { colonies: colonyCache, agents: agentCache };
}

/** What the mesh's object now holds for this registration, as its lookup would return it. */
function storedFrom<R extends ColonyRecord | AgentRecord>(record: R, outcome: RegisterOutcome): Stored<R> {
  return { record, lastSeenMs: outcome.lastSeenMs, expiresAtMs: outcome.expiresAtMs };
}

/** Tells the self-hosted front what a pure refresh changed (see refreshedHeader); hosted, nothing. */
function announceRefresh(call: CallContext, headers: Headers | undefined, key: string, record: ColonyRecord | AgentRecord, outcome: RegisterOutcome): void {
  if (!headers || !outcome.refresh || !call.env.FRONT_SECRET) return;
  const sig = record.signature;
  const note: RefreshNote = {
    key,
    identityPubkey: sig.identityPubkey,
    signedAtMs: sig.signedAtMs.toString(),
    signature: sig.signature,
    observedIp: record.observedIp,
    lastSeenMs: outcome.lastSeenMs,
    expiresAtMs: outcome.expiresAtMs,
  };
  headers.set(refreshedHeader, JSON.stringify(note));
}

/** The mesh's object accepts only ever newer signatures for a key, so the newer signature is the current answer. */
function newerThan(record: ColonyRecord | AgentRecord) {
  return (cached: Stored<ColonyRecord | AgentRecord>) => cached.record.signature.signedAtMs > record.signature.signedAtMs;
}

/**
 * Answers from the cache, else from the mesh's object. Only a miss fills the
 * cache, so an entry ages out after the ttl however often it is read.
 */
async function cachedLookup<V extends { expiresAtMs: number }>(
  cache: LookupCache<V>,
  key: string,
  read: () => Promise<V | null>,
): Promise<V | null> {
  const hit = cache.get(key);
  if (hit) return hit;
  const generation = cache.generation;
  const stored = await read();
  if (stored) cache.set(key, stored, Date.now(), generation);
  return stored;
}

export const discoveryOps = {
  async health(call: CallContext): Promise<pb.HealthResponse> {
    const directory = call.env.DIRECTORY.get(call.env.DIRECTORY.idFromName("directory"));
    const totals = await directory.totals();
    const startedAtMs = Number(call.env.STARTED_AT_MS) || totals.startedAtMs;
    return create(pb.HealthResponseSchema, {
      status: "ok",
      version: readConfig(call.env).version,
      uptimeSeconds: BigInt(Math.max(0, Math.floor((Date.now() - startedAtMs) / 1000))),
      registeredColonies: totals.colonies,
      registeredAgents: totals.agents,
    });
  },

  /** `responseHeaders`: where the answer's headers go, for announceRefresh. */
  async registerColony(call: CallContext, req: pb.RegisterColonyRequest, responseHeaders?: Headers): Promise<pb.RegisterColonyResponse> {
    const { fields, signature } = validated(() => validateRegisterColony(req));
    await enforceRateLimit(call);
    const record: ColonyRecord = { ...fields, signature, observedIp: call.clientIp };
    const outcome = unwrap(await (call.register ?? registerAlone)(call.env, req.meshId, { kind: "colony", record }));
    caches(call.env).colonies.put(req.meshId, storedFrom(record, outcome), newerThan(record));
    announceRefresh(call, responseHeaders, "colony", record, outcome);
    return create(pb.RegisterColonyResponseSchema, {
      success: true,
      ttl: outcome.ttlSeconds,
      expiresAt: timestampFromMs(outcome.expiresAtMs),
      observedEndpoint: call.clientIp,
    });
  },

  async lookupColony(call: CallContext, req: pb.LookupColonyRequest): Promise<pb.LookupColonyResponse> {
    validated(() => checkMeshId(req.meshId));
    const stored = await cachedLookup(caches(call.env).colonies, req.meshId, () => mesh(call.env, req.meshId).lookupColony(req.meshId));
    if (!stored) throw new ConnectError(`colony not found: ${req.meshId}`, Code.NotFound);
    return colonyAnswer(stored);
  },

  async registerAgent(call: CallContext, req: pb.RegisterAgentRequest, responseHeaders?: Headers): Promise<pb.RegisterAgentResponse> {
    const { fields, signature } = validated(() => validateRegisterAgent(req));
    await enforceRateLimit(call);
    const record: AgentRecord = { ...fields, signature, observedIp: call.clientIp };
    const outcome = unwrap(await (call.register ?? registerAlone)(call.env, req.meshId, { kind: "agent", record }));
    caches(call.env).agents.put(`${req.meshId}/${req.agentId}`, storedFrom(record, outcome), newerThan(record));
    announceRefresh(call, responseHeaders, `agent:${req.agentId}`, record, outcome);
    return create(pb.RegisterAgentResponseSchema, {
      success: true,
      ttl: outcome.ttlSeconds,
      expiresAt: timestampFromMs(outcome.expiresAtMs),
      observedEndpoint: call.clientIp,
    });
  },

  async lookupAgent(call: CallContext, req: pb.LookupAgentRequest): Promise<pb.LookupAgentResponse> {
    validated(() => {
      checkMeshId(req.meshId);
      checkAgentId(req.agentId);
    });
    const key = `${req.meshId}/${req.agentId}`;
    const stored = await cachedLookup(caches(call.env).agents, key, () => mesh(call.env, req.meshId).lookupAgent(req.meshId, req.agentId));
    if (!stored) throw new ConnectError(`agent not found: ${req.agentId} in mesh ${req.meshId}`, Code.NotFound);
    return agentAnswer(stored);
  },

  async createBootstrapToken(call: CallContext, req: pb.CreateBootstrapTokenRequest): Promise<pb.CreateBootstrapTokenResponse> {
    const { fields, signature } = validated(() => validateCreateBootstrapToken(req));
    unwrap(
      await mesh(call.env, req.meshId).verifyColonySignature(
        req.meshId,
        "bootstrap-token-request",
        bootstrapRequestJson(fields),
        signature,
      ),
    );
    const issued = await issueBootstrapToken(
      call.env,
      { meshId: req.meshId, agentId: req.agentId, intent: req.intent === BootstrapIntent.RENEW ? "renew" : "register" },
      req.ttlSeconds || defaultBootstrapTtlSeconds,
    );
    return create(pb.CreateBootstrapTokenResponseSchema, {
      token: issued.token,
      tokenId: issued.jti,
      expiresAt: timestampFromMs(issued.expiresAtMs),
    });
  },

  async redeemBootstrapToken(call: CallContext, req: pb.RedeemBootstrapTokenRequest): Promise<pb.RedeemBootstrapTokenResponse> {
    if (!req.token) throw new ConnectError("token: is required", Code.InvalidArgument);
    if (req.token.length > 4096) throw new ConnectError("token: is longer than any bootstrap token", Code.InvalidArgument);
    const claims = await verifyBootstrapToken(call.env, req.token);
    unwrap(await mesh(call.env, claims.meshId).redeemToken(claims.meshId, claims.jti, claims.expiresAtMs));
    return create(pb.RedeemBootstrapTokenResponseSchema, {
      meshId: claims.meshId,
      agentId: claims.agentId,
      intent: claims.intent === "renew" ? BootstrapIntent.RENEW : BootstrapIntent.REGISTER,
      tokenId: claims.jti,
      expiresAt: timestampFromMs(claims.expiresAtMs),
    });
  },
};

export const discoveryService = {
  health: (_req, ctx) => discoveryOps.health(callContext(ctx)),
  registerColony: (req, ctx) => discoveryOps.registerColony(callContext(ctx), req, ctx.responseHeader),
  lookupColony: async (req, ctx) => withExpiry(ctx, await discoveryOps.lookupColony(callContext(ctx), req)),
  registerAgent: (req, ctx) => discoveryOps.registerAgent(callContext(ctx), req, ctx.responseHeader),
  lookupAgent: async (req, ctx) => withExpiry(ctx, await discoveryOps.lookupAgent(callContext(ctx), req)),
  createBootstrapToken: (req, ctx) => discoveryOps.createBootstrapToken(callContext(ctx), req),
  redeemBootstrapToken: (req, ctx) => discoveryOps.redeemBootstrapToken(callContext(ctx), req),
} satisfies ServiceImpl<typeof DiscoveryService>;
