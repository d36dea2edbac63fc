// The bootstrap endpoint's one request body, checked field by field before
// anything else looks at it: whatever JSON arrives, the answer is a parsed
// request or a 400 saying which field is wrong.
import { isKey } from "@coral/common/wireguard";

export class EnrollRequestError extends Error {
  override name = "EnrollRequestError";
}

export interface EnrollRequest {
  agentId: string;
  wireguardPubkey: string;
  agentPubkey: string;
  timestampMs: bigint;
  nonce: string;
  signature: string;
  invitation?: { invitationId: string; hmac: string };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

export function parseEnrollRequest(body: unknown): EnrollRequest {
  if (!isObject(body)) throw new EnrollRequestError("the body must be a JSON object");
  const { agent_id, wireguard_pubkey, agent_pubkey, signature, invitation } = body;
  if (typeof agent_id !== "string" || !/^[A-Za-z0-9_-]{1,128}$/.test(agent_id)) throw new EnrollRequestError("agent_id: must be 1-128 letters, digits, - or _");
  if (!isKey(wireguard_pubkey)) throw new EnrollRequestError("wireguard_pubkey: must be a WireGuard public key (44 characters of base64)");
  if (typeof agent_pubkey !== "string" || agent_pubkey.length > 64 || !isObject(signature))
    throw new EnrollRequestError("agent_pubkey and signature (timestamp_ms, nonce, signature) are required: upgrade the agent");
  const { timestamp_ms, nonce, signature: sig } = signature;
  if (typeof timestamp_ms !== "string" || !/^\d{1,16}$/.test(timestamp_ms) || typeof nonce !== "string" || nonce.length > 64 || typeof sig !== "string" || sig.length > 128)
    throw new EnrollRequestError("signature: must have timestamp_ms (decimal string), nonce and signature");
  let parsedInvitation: EnrollRequest["invitation"];
  if (invitation !== undefined) {
    if (!isObject(invitation) || typeof invitation.invitation_id !== "string" || typeof invitation.hmac !== "string" || invitation.invitation_id.length > 32 || invitation.hmac.length > 64)
      throw new EnrollRequestError("invitation: must have invitation_id and hmac");
    parsedInvitation = { invitationId: invitation.invitation_id, hmac: invitation.hmac };
  }
  return { agentId: agent_id, wireguardPubkey: wireguard_pubkey as string, agentPubkey: agent_pubkey, timestampMs: BigInt(timestamp_ms), nonce, signature: sig, ...(parsedInvitation ? { invitation: parsedInvitation } : {}) };
}
