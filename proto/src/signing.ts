// Ed25519 signatures over a canonical encoding of registrations.
//
// The signed bytes are `coral-discovery-v1:<domain>\n` followed by the JSON of
// the signed fields, keys sorted at every level, no whitespace, integers that
// may exceed 2^53 written as decimal strings. Any language can rebuild them
// from a lookup answer, which is why lookups return the signature as is.
import { base64UrlToBase64, fromBase64, toBase64 } from "./base64.ts";

export type SignedDomain = "colony-registration" | "agent-registration" | "bootstrap-token-request";

export interface Signature {
  identityPubkey: string;
  signedAtMs: bigint;
  signature: string;
}

export interface IdentityKey {
  /** Ed25519 public key, base64 (32 bytes). */
  publicKey: string;
  privateKey: CryptoKey;
}

export interface ColonyRegistrationFields {
  meshId: string;
  pubkey: string;
  endpoints: readonly string[];
  meshIpv4: string;
  meshIpv6: string;
  connectPort: number;
  metadata: Readonly<Record<string, string>>;
  publicEndpoint?: { url: string; caCertSha256: string } | undefined;
}

export interface AgentRegistrationFields {
  meshId: string;
  agentId: string;
  pubkey: string;
  endpoints: readonly string[];
  metadata: Readonly<Record<string, string>>;
}

export interface BootstrapTokenRequestFields {
  meshId: string;
  agentId: string;
  intent: number;
  ttlSeconds: number;
}

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

export function canonicalJson(value: Json): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k] as Json)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

function sortedRecord(record: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

export function colonyFieldsJson(f: ColonyRegistrationFields): Json {
  return {
    mesh_id: f.meshId,
    pubkey: f.pubkey,
    endpoints: [...f.endpoints],
    mesh_ipv4: f.meshIpv4,
    mesh_ipv6: f.meshIpv6,
    connect_port: f.connectPort,
    metadata: sortedRecord(f.metadata),
    public_endpoint: f.publicEndpoint?.url
      ? { url: f.publicEndpoint.url, ca_cert_sha256: f.publicEndpoint.caCertSha256 }
      : null,
  };
}

export function agentFieldsJson(f: AgentRegistrationFields): Json {
  return {
    mesh_id: f.meshId,
    agent_id: f.agentId,
    pubkey: f.pubkey,
    endpoints: [...f.endpoints],
    metadata: sortedRecord(f.metadata),
  };
}

export function bootstrapRequestJson(f: BootstrapTokenRequestFields): Json {
  return { mesh_id: f.meshId, agent_id: f.agentId, intent: f.intent, ttl_seconds: f.ttlSeconds };
}

/** The exact bytes an identity key signs. */
export function signedBytes(domain: SignedDomain, fields: Json, identityPubkey: string, signedAtMs: bigint): Uint8Array<ArrayBuffer> {
  const body = canonicalJson({ fields, identity_pubkey: identityPubkey, signed_at_ms: signedAtMs.toString() });
  return new TextEncoder().encode(`coral-discovery-v1:${domain}\n${body}`) as Uint8Array<ArrayBuffer>;
}

export async function sign(
  domain: SignedDomain,
  fields: Json,
  key: IdentityKey,
  signedAtMs: bigint = BigInt(Date.now()),
): Promise<Signature> {
  const bytes = signedBytes(domain, fields, key.publicKey, signedAtMs);
  const sig = new Uint8Array(await crypto.subtle.sign("Ed25519", key.privateKey, bytes));
  return { identityPubkey: key.publicKey, signedAtMs, signature: toBase64(sig) };
}

const publicKeyCache = new Map<string, Promise<CryptoKey>>();

function importPublicKey(publicKey: string): Promise<CryptoKey> {
  let key = publicKeyCache.get(publicKey);
  if (!key) {
    key = crypto.subtle.importKey("raw", fromBase64(publicKey), "Ed25519", false, ["verify"]);
    if (publicKeyCache.size > 1000) publicKeyCache.clear();
    publicKeyCache.set(publicKey, key);
    key.catch(() => publicKeyCache.delete(publicKey));
  }
  return key;
}

/** True when `signature` is a valid signature by its identity key over `fields`. */
export async function verify(domain: SignedDomain, fields: Json, signature: Signature): Promise<boolean> {
  try {
    const key = await importPublicKey(signature.identityPubkey);
    const bytes = signedBytes(domain, fields, signature.identityPubkey, signature.signedAtMs);
    return await crypto.subtle.verify("Ed25519", key, fromBase64(signature.signature), bytes);
  } catch {
    return false;
  }
}

export async function generateIdentityKey(): Promise<IdentityKey & { pkcs8: string }> {
  const pair = (await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"])) as CryptoKeyPair;
  const raw = new Uint8Array((await crypto.subtle.exportKey("raw", pair.publicKey)) as ArrayBuffer);
  const pkcs8 = new Uint8Array((await crypto.subtle.exportKey("pkcs8", pair.privateKey)) as ArrayBuffer);
  return { publicKey: toBase64(raw), privateKey: pair.privateKey, pkcs8: toBase64(pkcs8) };
}

/** Loads an identity key saved as base64 PKCS#8 (what generateIdentityKey returns). */
export async function importIdentityKey(pkcs8Base64: string): Promise<IdentityKey> {
  const privateKey = await crypto.subtle.importKey("pkcs8", fromBase64(pkcs8Base64.trim()), "Ed25519", true, ["sign"]);
  const jwk = (await crypto.subtle.exportKey("jwk", privateKey)) as JsonWebKey;
  if (!jwk.x) throw new Error("identity key has no public part");
  return { publicKey: base64UrlToBase64(jwk.x), privateKey };
}
