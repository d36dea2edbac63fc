// How the colony proves a call to an agent is its own: an Ed25519 signature
// by its identity key (the key agents pin) over the agent, the procedure, the
// time, a nonce and the request body's hash. A signature is good for one
// agent, one method and one body, within minutes, once.
//
// Header x-coral-colony-signature:
//   v1.<timestamp_ms>.<nonce: 32 hex>.<body sha256: 64 hex>.<signature: base64url>
// Signed bytes:
//   coral-colony-call-v1\n<agent_id>\n<procedure>\n<timestamp_ms>\n<nonce>\n<body sha256 hex>
// The body hash is SHA-256 of the protobuf binary encoding of the request
// message (toBinary(method.input, message)), so a JSON and a binary request
// sign alike. Runtime-neutral: WebCrypto only.
import { base64UrlToBase64, fromBase64, toBase64 } from "./base64.ts";
import type { IdentityKey } from "./signing.ts";

export const colonyCallHeader = "x-coral-colony-signature";
/** How far a signature's time may be from the agent's clock, either way. */
export const colonyCallWindowMs = 5 * 60_000;

export interface ColonyCallFields {
  agentId: string;
  /** The request path, e.g. /coral.agent.v1.AgentService/QueryMetrics. */
  procedure: string;
  /** SHA-256 (hex) of the request message's protobuf binary encoding. */
  bodySha256: string;
  timestampMs?: number;
  /** 32 hex characters; random when absent. */
  nonce?: string;
}

/** What a verified header claims: the agent still checks the body against bodySha256 and the nonce against replays. */
export interface ColonyCallClaim {
  timestampMs: number;
  nonce: string;
  bodySha256: string;
}

const headerPattern = /^v1\.(\d{1,16})\.([0-9a-f]{32})\.([0-9a-f]{64})\.([A-Za-z0-9_-]{86})$/;

function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

function signedBytes(agentId: string, procedure: string, timestampMs: number, nonce: string, bodySha256: string): Uint8Array<ArrayBuffer> {
  const text = `coral-colony-call-v1\n${agentId}\n${procedure}\n${timestampMs}\n${nonce}\n${bodySha256}`;
  return new TextEncoder().encode(text) as Uint8Array<ArrayBuffer>;
}

/** SHA-256 of `bytes`, hex: the body hash of a colony call. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  return hex(new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)));
}

/** The x-coral-colony-signature header value for one call. */
export async function signColonyCall(key: IdentityKey, fields: ColonyCallFields): Promise<string> {
  const timestampMs = fields.timestampMs ?? Date.now();
  const nonce = fields.nonce ?? hex(crypto.getRandomValues(new Uint8Array(16)));
  if (!/^[0-9a-f]{32}$/.test(nonce)) throw new Error("nonce: must be 32 hex characters");
  if (!/^[0-9a-f]{64}$/.test(fields.bodySha256)) throw new Error("bodySha256: must be 64 hex characters");
  const bytes = signedBytes(fields.agentId, fields.procedure, timestampMs, nonce, fields.bodySha256);
  const signature = new Uint8Array(await crypto.subtle.sign("Ed25519", key.privateKey, bytes));
  return `v1.${timestampMs}.${nonce}.${fields.bodySha256}.${toBase64Url(signature)}`;
}

// Agents verify against one pinned key: import it once.
const imported = new Map<string, Promise<CryptoKey>>();

function publicKey(base64: string): Promise<CryptoKey> {
  let key = imported.get(base64);
  if (!key) {
    key = crypto.subtle.importKey("raw", fromBase64(base64), "Ed25519", false, ["verify"]);
    if (imported.size >= 16) imported.clear();
    imported.set(base64, key);
    key.catch(() => imported.delete(base64));
  }
  return key;
}

/**
 * Checks a colony call's header: well formed, within the time window, signed
 * by `publicKeyBase64` for this agent and procedure. Returns the claim, or
 * an error a person can act on. The caller checks the nonce and the body.
 */
export async function verifyColonyCall(
  publicKeyBase64: string,
  headerValue: string | null | undefined,
  expect: { agentId: string; procedure: string; nowMs: number; windowMs?: number },
): Promise<ColonyCallClaim | { error: string }> {
  if (!headerValue) return { error: `missing ${colonyCallHeader} header: only this agent's colony may call it, signing each call with its identity key` };
  const match = headerPattern.exec(headerValue);
  if (!match) return { error: `malformed ${colonyCallHeader} header: expected v1.<timestamp_ms>.<nonce>.<body sha256>.<signature>` };
  const claim: ColonyCallClaim = { timestampMs: Number(match[1]), nonce: match[2]!, bodySha256: match[3]! };
  const skewMs = claim.timestampMs - expect.nowMs;
  if (Math.abs(skewMs) > (expect.windowMs ?? colonyCallWindowMs))
    return {
      error: `the colony's signature was made ${Math.round(Math.abs(skewMs) / 1000)}s ${skewMs > 0 ? "ahead of" : "before"} this agent's clock (at most ${Math.round((expect.windowMs ?? colonyCallWindowMs) / 1000)}s): check the clocks of both machines`,
    };
  let ok = false;
  try {
    const bytes = signedBytes(expect.agentId, expect.procedure, claim.timestampMs, claim.nonce, claim.bodySha256);
    ok = await crypto.subtle.verify("Ed25519", await publicKey(publicKeyBase64), fromBase64(base64UrlToBase64(match[4]!)), bytes);
  } catch {
    ok = false;
  }
  if (!ok) return { error: `the ${colonyCallHeader} signature is not this agent's colony's for this agent and method` };
  return claim;
}
