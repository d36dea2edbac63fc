// A typed discovery client for colonies, agents and CLIs. It signs what it
// registers, verifies what it looks up against a pinned key, and retries
// outages with exponential backoff. Runtime-neutral: pass any Connect
// Transport (connect-node in Node, connect-web in a browser).
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Transport } from "@connectrpc/connect";
import {
  BootstrapIntent,
  DiscoveryService,
  HealthRequestSchema,
  SignatureSchema,
  type CreateBootstrapTokenResponse,
  type HealthResponse,
  type LookupAgentResponse,
  type LookupColonyResponse,
  type RedeemBootstrapTokenResponse,
  type RegisterAgentResponse,
  type RegisterColonyResponse,
} from "../gen/coral/discovery/v1/discovery_pb.ts";
import { agentFields, colonyFields } from "./discovery-fields.ts";
import {
  agentFieldsJson,
  bootstrapRequestJson,
  colonyFieldsJson,
  sign,
  verify,
  type AgentRegistrationFields,
  type ColonyRegistrationFields,
  type IdentityKey,
} from "./signing.ts";

export class DiscoveryUnreachableError extends Error {
  override name = "DiscoveryUnreachableError";
  constructor(url: string, options?: ErrorOptions) {
    super(`discovery service not reachable at ${url}; is it running? (start one with: npx coral-discovery --port 8080)`, options);
  }
}

export class ColonyNotFoundError extends Error {
  override name = "ColonyNotFoundError";
  constructor(readonly meshId: string, options?: ErrorOptions) {
    super(`colony not found: ${meshId}`, options);
  }
}

export class AgentNotFoundError extends Error {
  override name = "AgentNotFoundError";
  constructor(readonly meshId: string, readonly agentId: string, options?: ErrorOptions) {
    super(`agent not found: ${agentId} in mesh ${meshId}`, options);
  }
}

/** The answer was not signed by the key the caller pinned: refuse it. */
export class UnverifiedAnswerError extends Error {
  override name = "UnverifiedAnswerError";
}

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface DiscoveryClientOptions {
  transport: Transport;
  /** Shown in error messages. */
  url: string;
  retry?: Partial<RetryPolicy>;
  /** Per-call timeout. */
  timeoutMs?: number;
}

const retryable = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Unknown, Code.Aborted]);

export class DiscoveryClient {
  private readonly client: Client<typeof DiscoveryService>;
  private readonly retry: RetryPolicy;
  private readonly url: string;
  private readonly timeoutMs: number;

  constructor(options: DiscoveryClientOptions) {
    this.client = createClient(DiscoveryService, options.transport);
    this.retry = { attempts: 4, baseDelayMs: 200, maxDelayMs: 5000, ...options.retry };
    this.url = options.url;
    this.timeoutMs = options.timeoutMs ?? 10_000;
  }

  health(signal?: AbortSignal): Promise<HealthResponse> {
    return this.call((o) => this.client.health(create(HealthRequestSchema), o), signal);
  }

  /** Signs with `identity` (a fresh timestamp on every attempt) and registers. */
  registerColony(fields: ColonyRegistrationFields, identity: IdentityKey, signal?: AbortSignal): Promise<RegisterColonyResponse> {
    return this.call(async (o) => {
      const signature = await sign("colony-registration", colonyFieldsJson(fields), identity);
      return this.client.registerColony({ ...fields, endpoints: [...fields.endpoints], metadata: { ...fields.metadata }, signature: create(SignatureSchema, signature) }, o);
    }, signal);
  }

  registerAgent(fields: AgentRegistrationFields, identity: IdentityKey, signal?: AbortSignal): Promise<RegisterAgentResponse> {
    return this.call(async (o) => {
      const signature = await sign("agent-registration", agentFieldsJson(fields), identity);
      return this.client.registerAgent({ ...fields, endpoints: [...fields.endpoints], metadata: { ...fields.metadata }, signature: create(SignatureSchema, signature) }, o);
    }, signal);
  }

  /**
   * Looks up a mesh's colony. With `pinnedKey` (the colony identity key from a
   * join token) the answer must be signed by exactly that key.
   */
  async lookupColony(meshId: string, options: { pinnedKey?: string; signal?: AbortSignal } = {}): Promise<LookupColonyResponse> {
    const answer = await this.call((o) => this.client.lookupColony({ meshId }, o), options.signal).catch((err: unknown) => {
      if (ConnectError.from(err).code === Code.NotFound) throw new ColonyNotFoundError(meshId, { cause: err });
      throw err;
    });
    if (answer.meshId !== meshId) throw new UnverifiedAnswerError(`discovery answered for mesh ${answer.meshId}, not ${meshId}; refusing it`);
    if (options.pinnedKey !== undefined) {
      const fields = colonyFields(answer);
      await this.requireSigned(`colony of mesh ${meshId}`, "colony-registration", colonyFieldsJson(fields), answer, options.pinnedKey);
    }
    return answer;
  }

  async lookupAgent(meshId: string, agentId: string, options: { pinnedKey?: string; signal?: AbortSignal } = {}): Promise<LookupAgentResponse> {
    const answer = await this.call((o) => this.client.lookupAgent({ meshId, agentId }, o), options.signal).catch((err: unknown) => {
      if (ConnectError.from(err).code === Code.NotFound) throw new AgentNotFoundError(meshId, agentId, { cause: err });
      throw err;
    });
    if (answer.meshId !== meshId || answer.agentId !== agentId)
      throw new UnverifiedAnswerError(`discovery answered for agent ${answer.agentId} of ${answer.meshId}; refusing it`);
    if (options.pinnedKey !== undefined) {
      const fields = agentFields(answer);
      await this.requireSigned(`agent ${agentId}`, "agent-registration", agentFieldsJson(fields), answer, options.pinnedKey);
    }
    return answer;
  }

  createBootstrapToken(
    request: { meshId: string; agentId: string; intent?: BootstrapIntent; ttlSeconds?: number },
    colonyIdentity: IdentityKey,
    signal?: AbortSignal,
  ): Promise<CreateBootstrapTokenResponse> {
    const fields = {
      meshId: request.meshId,
      agentId: request.agentId,
      intent: request.intent ?? BootstrapIntent.REGISTER,
      ttlSeconds: request.ttlSeconds ?? 0,
    };
    return this.call(async (o) => {
      const signature = await sign("bootstrap-token-request", bootstrapRequestJson(fields), colonyIdentity);
      return this.client.createBootstrapToken({ ...fields, signature: create(SignatureSchema, signature) }, o);
    }, signal);
  }

  redeemBootstrapToken(token: string, signal?: AbortSignal): Promise<RedeemBootstrapTokenResponse> {
    // Not retried: a lost answer to a redemption that went through would make
    // the retry fail as "already used".
    return this.call((o) => this.client.redeemBootstrapToken({ token }, o), signal, 1);
  }

  private async requireSigned(
    what: string,
    domain: "colony-registration" | "agent-registration",
    fields: Parameters<typeof verify>[1],
    answer: { signature?: { identityPubkey: string; signedAtMs: bigint; signature: string } },
    pinnedKey: string,
  ): Promise<void> {
    const sig = answer.signature;
    if (!sig || sig.identityPubkey !== pinnedKey)
      throw new UnverifiedAnswerError(`discovery's answer for the ${what} is not signed by the pinned key; refusing it (possible tampering)`);
    if (!(await verify(domain, fields, sig)))
      throw new UnverifiedAnswerError(`discovery's answer for the ${what} does not match its signature; refusing it (possible tampering)`);
  }

  private async call<T>(fn: (options: { signal: AbortSignal; timeoutMs: number }) => Promise<T>, signal?: AbortSignal, attempts = this.retry.attempts): Promise<T> {
    let lastError: unknown;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      signal?.throwIfAborted();
      try {
        return await fn({ signal: signal ?? new AbortController().signal, timeoutMs: this.timeoutMs });
      } catch (err) {
        lastError = err;
        const code = ConnectError.from(err).code;
        if (!retryable.has(code) || attempt === attempts) break;
        const delay = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
        await sleep(delay / 2 + Math.random() * (delay / 2), signal);
      }
    }
    const connectError = ConnectError.from(lastError);
    if (connectError.code === Code.Unavailable || connectError.code === Code.Unknown && !(lastError instanceof ConnectError))
      throw new DiscoveryUnreachableError(this.url, { cause: lastError });
    throw connectError;
  }
}

/**
 * Endpoints registered as ":port" mean "at the address discovery saw me
 * from"; lookups return them as signed, and this resolves them for dialing.
 */
export function resolveEndpoints(answer: { endpoints: readonly string[]; observedEndpoint: string }): string[] {
  if (!answer.observedEndpoint) return [...answer.endpoints];
  const host = answer.observedEndpoint.includes(":") ? `[${answer.observedEndpoint}]` : answer.observedEndpoint;
  return answer.endpoints.map((e) => (e.startsWith(":") ? `${host}${e}` : e));
}

// The retry wait. @coral/common/async has Coral's one sleep and backoff, but
// proto is runtime-neutral and may not import common, so this client keeps its
// own (its delay is backoffMs's "equal" jitter). Unlike common's sleep, an
// abort rejects, ending the call. The listener is removed when the wait ends:
// callers (the colony's registration loop) pass one long-lived signal.
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
