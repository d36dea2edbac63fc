// Request-level validation and the signed views of discovery messages, shared
// by the worker (which enforces them) and the clients (which fail early).
import type {
  CreateBootstrapTokenRequest,
  LookupAgentResponse,
  LookupColonyResponse,
  RegisterAgentRequest,
  RegisterColonyRequest,
  Signature as SignatureMessage,
} from "../gen/coral/discovery/v1/discovery_pb.ts";
import {
  ValidationError,
  checkAgentId,
  checkBase64Key,
  checkEndpoints,
  checkMeshId,
  checkMetadata,
  checkOptionalIp,
  checkPort,
  checkPublicEndpoint,
} from "./validation.ts";
import {
  type AgentRegistrationFields,
  type BootstrapTokenRequestFields,
  type ColonyRegistrationFields,
  type Signature,
} from "./signing.ts";

export const maxBootstrapTtlSeconds = 3600;
export const defaultBootstrapTtlSeconds = 300;

export function checkSignature(sig: SignatureMessage | undefined, field = "signature"): Signature {
  if (!sig) throw new ValidationError(field, "is required: registrations must be signed with the identity key");
  checkBase64Key(sig.identityPubkey, `${field}.identity_pubkey`);
  checkBase64Key(sig.signature, `${field}.signature`, 64);
  if (sig.signedAtMs <= 0n) throw new ValidationError(`${field}.signed_at_ms`, "is required");
  return { identityPubkey: sig.identityPubkey, signedAtMs: sig.signedAtMs, signature: sig.signature };
}

export function colonyFields(m: ColonyRegistrationFields): ColonyRegistrationFields {
  return {
    meshId: m.meshId,
    pubkey: m.pubkey,
    endpoints: m.endpoints,
    meshIpv4: m.meshIpv4,
    meshIpv6: m.meshIpv6,
    connectPort: m.connectPort,
    metadata: m.metadata,
    publicEndpoint: m.publicEndpoint?.url
      ? { url: m.publicEndpoint.url, caCertSha256: m.publicEndpoint.caCertSha256 }
      : undefined,
  };
}

export function agentFields(m: AgentRegistrationFields): AgentRegistrationFields {
  return { meshId: m.meshId, agentId: m.agentId, pubkey: m.pubkey, endpoints: m.endpoints, metadata: m.metadata };
}

/** Throws ValidationError naming the first bad field. */
export function validateRegisterColony(req: RegisterColonyRequest): { fields: ColonyRegistrationFields; signature: Signature } {
  checkMeshId(req.meshId);
  checkBase64Key(req.pubkey, "pubkey");
  checkEndpoints(req.endpoints);
  checkOptionalIp(req.meshIpv4, 4, "mesh_ipv4");
  checkOptionalIp(req.meshIpv6, 6, "mesh_ipv6");
  checkPort(req.connectPort, "connect_port");
  checkMetadata(req.metadata);
  if (req.publicEndpoint && (req.publicEndpoint.url || req.publicEndpoint.caCertSha256))
    checkPublicEndpoint(req.publicEndpoint.url, req.publicEndpoint.caCertSha256);
  return { fields: colonyFields(req), signature: checkSignature(req.signature) };
}

export function validateRegisterAgent(req: RegisterAgentRequest): { fields: AgentRegistrationFields; signature: Signature } {
  checkMeshId(req.meshId);
  checkAgentId(req.agentId);
  checkBase64Key(req.pubkey, "pubkey");
  checkEndpoints(req.endpoints);
  checkMetadata(req.metadata);
  return { fields: agentFields(req), signature: checkSignature(req.signature) };
}

export function validateCreateBootstrapToken(req: CreateBootstrapTokenRequest): {
  fields: BootstrapTokenRequestFields;
  signature: Signature;
} {
  checkMeshId(req.meshId);
  checkAgentId(req.agentId);
  if (req.intent !== 1 && req.intent !== 2)
    throw new ValidationError("intent", "must be BOOTSTRAP_INTENT_REGISTER or BOOTSTRAP_INTENT_RENEW");
  if (req.ttlSeconds > maxBootstrapTtlSeconds)
    throw new ValidationError("ttl_seconds", `must be at most ${maxBootstrapTtlSeconds} (got ${req.ttlSeconds})`);
  return {
    fields: { meshId: req.meshId, agentId: req.agentId, intent: req.intent, ttlSeconds: req.ttlSeconds },
    signature: checkSignature(req.signature),
  };
}

/** The signed part of a lookup answer, for verification by clients. */
export function lookupColonyFields(res: LookupColonyResponse): ColonyRegistrationFields {
  return colonyFields(res);
}

export function lookupAgentFields(res: LookupAgentResponse): AgentRegistrationFields {
  return agentFields(res);
}
