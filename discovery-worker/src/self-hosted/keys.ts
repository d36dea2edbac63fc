// The Ed25519 key that signs bootstrap tokens, as a private JWK.
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname } from "node:path";

export async function generateSigningJwk(): Promise<string> {
  const pair = (await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"])) as CryptoKeyPair;
  const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
  return JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d });
}

/** Loads the key from `path`, creating it (mode 0600) on first start. */
export async function loadOrCreateSigningJwk(path: string): Promise<string> {
  if (existsSync(path)) return (await readFile(path, "utf8")).trim();
  await mkdir(dirname(path), { recursive: true });
  const jwk = await generateSigningJwk();
  await writeFile(path, jwk + "\n", { mode: 0o600 });
  await chmod(path, 0o600);
  return jwk;
}
