// Bootstrap tokens: short-lived, single-use EdDSA JWTs that let an agent join
// a colony. The signing key is a worker secret (an Ed25519 private JWK); the
// public half is served at /.well-known/jwks.json. Single use is enforced by
// the mesh's Durable Object, which remembers redeemed token ids until expiry.
import { Code, ConnectError } from "@connectrpc/connect";
import { SignJWT, calculateJwkThumbprint, importJWK, jwtVerify, type JWK, type JWTPayload } from "jose";

export const tokenIssuer = "coral-discovery";
export const tokenAudience = "coral-colony";

export interface BootstrapClaims {
  meshId: string;
  agentId: string;
  intent: "register" | "renew";
  jti: string;
  expiresAtMs: number;
}

interface SigningKey {
  kid: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
}

let cached: { source: string; key: Promise<SigningKey> } | null = null;

export function signingKey(env: DiscoveryEnv): Promise<SigningKey> {
  const source = env.BOOTSTRAP_SIGNING_KEY;
  if (!source)
    throw new ConnectError(
      "bootstrap tokens are not configured on this discovery service: set the BOOTSTRAP_SIGNING_KEY secret (coral-discovery keygen prints one)",
      Code.FailedPrecondition,
    );
  if (cached?.source !== source) cached = { source, key: loadKey(source) };
  return cached.key;
}

async function loadKey(source: string): Promise<SigningKey> {
  let jwk: JWK;
  try {
    jwk = JSON.parse(source) as JWK;
  } catch {
    throw new ConnectError("BOOTSTRAP_SIGNING_KEY is not a JSON Web Key", Code.Internal);
  }
  if (jwk.kty !== "OKP" || jwk.crv !== "Ed25519" || !jwk.d || !jwk.x)
    throw new ConnectError("BOOTSTRAP_SIGNING_KEY must be an Ed25519 private JWK (kty OKP, crv Ed25519)", Code.Internal);
  const publicJwk: JWK = { kty: "OKP", crv: "Ed25519", x: jwk.x };
  const kid = jwk.kid ?? (await calculateJwkThumbprint(publicJwk));
  const privateKey = (await importJWK(jwk, "EdDSA")) as CryptoKey;
  const publicKey = (await importJWK(publicJwk, "EdDSA")) as CryptoKey;
  return { kid, privateKey, publicKey, publicJwk: { ...publicJwk, kid, alg: "EdDSA", use: "sig" } };
}

export async function jwks(env: DiscoveryEnv): Promise<{ keys: JWK[] }> {
  if (!env.BOOTSTRAP_SIGNING_KEY) return { keys: [] };
  return { keys: [(await signingKey(env)).publicJwk] };
}

export async function issueBootstrapToken(
  env: DiscoveryEnv,
  claims: Omit<BootstrapClaims, "jti" | "expiresAtMs">,
  ttlSeconds: number,
): Promise<{ token: string; jti: string; expiresAtMs: number }> {
  const key = await signingKey(env);
  const jti = crypto.randomUUID();
  const nowSeconds = Math.floor(Date.now() / 1000);
  const exp = nowSeconds + ttlSeconds;
  const token = await new SignJWT({ colony_id: claims.meshId, agent_id: claims.agentId, intent: claims.intent })
    .setProtectedHeader({ alg: "EdDSA", kid: key.kid, typ: "JWT" })
    .setIssuer(tokenIssuer)
    .setAudience(tokenAudience)
    .setSubject(claims.agentId)
    .setJti(jti)
    .setIssuedAt(nowSeconds)
    .setExpirationTime(exp)
    .sign(key.privateKey);
  return { token, jti, expiresAtMs: exp * 1000 };
}

export async function verifyBootstrapToken(env: DiscoveryEnv, token: string): Promise<BootstrapClaims> {
  const key = await signingKey(env);
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, key.publicKey, {
      issuer: tokenIssuer,
      audience: tokenAudience,
      algorithms: ["EdDSA"],
    }));
  } catch (cause) {
    const reason = cause instanceof Error && "code" in cause && cause.code === "ERR_JWT_EXPIRED" ? "has expired" : "does not verify";
    throw new ConnectError(`bootstrap token ${reason}; ask the colony for a new one`, Code.PermissionDenied);
  }
  const { colony_id, agent_id, intent, jti, exp } = payload as JWTPayload & Record<string, unknown>;
  if (typeof colony_id !== "string" || typeof agent_id !== "string" || typeof jti !== "string" || typeof exp !== "number")
    throw new ConnectError("bootstrap token lacks colony_id, agent_id, jti or exp", Code.PermissionDenied);
  if (intent !== "register" && intent !== "renew")
    throw new ConnectError("bootstrap token has an unknown intent", Code.PermissionDenied);
  return { meshId: colony_id, agentId: agent_id, intent, jti, expiresAtMs: exp * 1000 };
}
