// WireGuard keys: X25519 from node:crypto, as the 32-byte base64 strings that
// `wg genkey`/`wg pubkey` print, plus the lowercase hex form the UAPI speaks.
import { createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";

export const KEY_LENGTH = 32;

export interface WireguardKeyPair {
  /** base64 of the 32 raw (clamped) private key bytes. */
  privateKey: string;
  /** base64 of the 32 raw public key bytes. */
  publicKey: string;
}

// DER prefix of a PKCS#8 X25519 private key; the 32 raw bytes follow.
const PKCS8_X25519_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const BASE64_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;
const HEX_KEY = /^[0-9a-fA-F]{64}$/;

/** Decodes a base64 WireGuard key to its 32 bytes; throws a clear error otherwise. */
export function keyBytes(base64: string, what = "key"): Buffer {
  if (typeof base64 !== "string" || !BASE64_KEY.test(base64)) {
    throw new TypeError(`${what} must be 32 bytes in base64 (44 characters ending in "="), got ${describe(base64)}`);
  }
  return Buffer.from(base64, "base64");
}

/** True when value is a well-formed base64 WireGuard key. */
export function isKey(value: unknown): value is string {
  return typeof value === "string" && BASE64_KEY.test(value);
}

/** Applies the X25519 clamping that `wg genkey` applies; returns a copy. */
function clamp(raw: Buffer): Buffer {
  const out = Buffer.from(raw);
  out[0] = out[0]! & 248;
  out[31] = (out[31]! & 127) | 64;
  return out;
}

/** A new X25519 key pair in WireGuard's base64 form. */
export function generateKeyPair(): WireguardKeyPair {
  const { privateKey } = generateKeyPairSync("x25519");
  const jwk = privateKey.export({ format: "jwk" });
  if (typeof jwk.d !== "string") throw new Error("node:crypto returned an X25519 JWK without d");
  const priv = clamp(Buffer.from(jwk.d, "base64url")).toString("base64");
  return { privateKey: priv, publicKey: publicKeyOf(priv) };
}

/** A new private key in WireGuard's base64 form (like `wg genkey`). */
export function generatePrivateKey(): string {
  return generateKeyPair().privateKey;
}

/** The public key of a base64 private key (like `wg pubkey`). */
export function publicKeyOf(privateKeyBase64: string): string {
  const raw = keyBytes(privateKeyBase64, "private key");
  const key = createPrivateKey({ key: Buffer.concat([PKCS8_X25519_PREFIX, raw]), format: "der", type: "pkcs8" });
  const jwk = createPublicKey(key).export({ format: "jwk" });
  if (typeof jwk.x !== "string") throw new Error("node:crypto returned an X25519 public JWK without x");
  return Buffer.from(jwk.x, "base64url").toString("base64");
}

/** base64 key → lowercase hex, as the UAPI expects. */
export function keyToHex(base64: string, what = "key"): string {
  return keyBytes(base64, what).toString("hex");
}

/** UAPI hex key → base64. */
export function keyFromHex(hex: string, what = "key"): string {
  if (typeof hex !== "string" || !HEX_KEY.test(hex)) {
    throw new TypeError(`${what} must be 64 hex digits, got ${describe(hex)}`);
  }
  return Buffer.from(hex, "hex").toString("base64");
}

function describe(value: unknown): string {
  if (typeof value !== "string") return typeof value;
  return value.length > 80 ? `a ${value.length}-character string` : JSON.stringify(value);
}
