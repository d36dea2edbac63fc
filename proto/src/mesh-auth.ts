// How an agent proves it holds the colony secret without sending it:
// hex(HMAC-SHA256(secret, "coral-mesh-register\n" + agent_id + "\n" + timestamp_ms + "\n" + nonce)).
// The colony accepts a proof within its replay window and each nonce once.
function hex(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function hexToBytes(text: string): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

function proofMessage(agentId: string, timestampMs: bigint, nonce: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(`coral-mesh-register\n${agentId}\n${timestampMs}\n${nonce}`) as Uint8Array<ArrayBuffer>;
}

async function hmacKey(secretHex: string): Promise<CryptoKey> {
  return crypto.subtle.importKey("raw", hexToBytes(secretHex), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
}

export interface SecretProofFields {
  timestampMs: bigint;
  nonce: string;
  hmac: string;
}

export async function makeSecretProof(secretHex: string, agentId: string, timestampMs = BigInt(Date.now())): Promise<SecretProofFields> {
  const nonce = hex(crypto.getRandomValues(new Uint8Array(16)));
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secretHex), proofMessage(agentId, timestampMs, nonce));
  return { timestampMs, nonce, hmac: hex(mac) };
}

/** Constant-time check of a proof's HMAC (crypto.subtle.verify compares safely). */
export async function checkSecretProof(secretHex: string, agentId: string, proof: SecretProofFields): Promise<boolean> {
  if (!/^[0-9a-f]{64}$/.test(proof.hmac)) return false;
  return crypto.subtle.verify("HMAC", await hmacKey(secretHex), hexToBytes(proof.hmac), proofMessage(agentId, proof.timestampMs, proof.nonce));
}

/** The colony's proof header on calls to an agent: "<timestamp_ms>.<nonce>.<hmac>". */
export const proofHeader = "x-coral-proof";

export function encodeProof(proof: SecretProofFields): string {
  return `${proof.timestampMs}.${proof.nonce}.${proof.hmac}`;
}

export function decodeProof(text: string | null): SecretProofFields | null {
  const match = /^(\d{1,16})\.([0-9a-f]{32,64})\.([0-9a-f]{64})$/.exec(text ?? "");
  if (!match) return null;
  return { timestampMs: BigInt(match[1]!), nonce: match[2]!, hmac: match[3]! };
}
