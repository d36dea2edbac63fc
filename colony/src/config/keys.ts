// The colony's secrets, in <project>/.coral/ (folder .coral/keys is 0700,
// every file 0600; loading refuses files other users can read):
//
//   keys/identity.key   Ed25519 identity, PKCS#8 base64. Signs discovery
//                       registrations; agents and CLIs pin its public key.
//   keys/wireguard.key  X25519 WireGuard private key, base64 of the raw 32
//                       bytes (the `wg genkey` format). The public key goes to
//                       discovery and to agents as the mesh peer key.
//   (keys/colony.secret of older versions is no longer used: agents enroll
//   with invitations and their own keys; see colony/src/identity.)
//   local.token         A random bearer token for the coral CLI on this
//                       machine. The colony accepts it as an ADMIN token, but
//                       ONLY from loopback callers (127.0.0.0/8, ::1): it lets
//                       `coral status` etc. work locally without
//                       `coral token create`, and is useless from elsewhere.
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { chmod, mkdir, open, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { base64UrlToBase64, generateIdentityKey, importIdentityKey, type IdentityKey } from "@coral/proto";
import { displayPath } from "./errors.ts";

export const KEY_FILES = { identity: "identity.key", wireguard: "wireguard.key" } as const;

/** A missing, unreadable, malformed or too-open key file. */
export class KeyError extends Error {
  override name = "KeyError";
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`${displayPath(file)}: ${detail}`);
  }
}

export function keysDir(projectDir: string): string {
  return join(resolve(projectDir), ".coral", "keys");
}

export function localTokenPath(projectDir: string): string {
  return join(resolve(projectDir), ".coral", "local.token");
}

export interface WireguardKeyPair {
  /** base64 of the raw 32-byte X25519 private key. */
  privateKey: string;
  /** base64 of the raw 32-byte X25519 public key. */
  publicKey: string;
}

export interface ColonyKeys {
  /** Absolute .coral/keys folder. */
  dir: string;
  /** The Ed25519 identity, ready to sign (publicKey is base64). */
  identity: IdentityKey;
  /** The identity's PKCS#8, base64, as stored. */
  identityPkcs8: string;
  wireguard: WireguardKeyPair;
}

// PKCS#8 wrapping of a raw X25519 private key (RFC 8410): node imports it, and
// derives the public key from it.
const x25519Pkcs8Prefix = Buffer.from("302e020100300506032b656e04220420", "hex");

/** The public key for a base64 raw X25519 private key. Throws on anything else. */
export function wireguardPublicKey(privateKeyBase64: string): string {
  const raw = Buffer.from(privateKeyBase64.trim(), "base64");
  if (raw.length !== 32 || raw.toString("base64") !== privateKeyBase64.trim())
    throw new Error("must be base64 of 32 bytes (the wg genkey format)");
  const key = createPrivateKey({ key: Buffer.concat([x25519Pkcs8Prefix, raw]), format: "der", type: "pkcs8" });
  const jwk = createPublicKey(key).export({ format: "jwk" });
  if (!jwk.x) throw new Error("X25519 key has no public part");
  return base64UrlToBase64(jwk.x);
}

/** A new WireGuard key pair, clamped like `wg genkey` (X25519 clamps anyway, so the public key is the same). */
export function generateWireguardKeyPair(): WireguardKeyPair {
  const raw = randomBytes(32);
  raw[0]! &= 248;
  raw[31]! = (raw[31]! & 127) | 64;
  const privateKey = raw.toString("base64");
  return { privateKey, publicKey: wireguardPublicKey(privateKey) };
}

/** Writes a file readable by its owner only; with overwrite false it fails if the file exists. */
export async function writePrivateFile(path: string, content: string, overwrite: boolean): Promise<void> {
  const handle = await open(path, overwrite ? "w" : "wx", 0o600);
  try {
    await handle.writeFile(content);
  } finally {
    await handle.close();
  }
  await chmod(path, 0o600); // an existing file keeps its old mode otherwise
}

/** Throws KeyError unless `path` exists and only its owner may read or write it. */
export async function checkPrivateFile(path: string): Promise<void> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new KeyError(path, "is missing; create the colony's keys with: coral init");
    throw new KeyError(path, `cannot be read: ${(err as Error).message}`);
  }
  if (process.platform !== "win32" && (mode & 0o077) !== 0)
    throw new KeyError(
      path,
      `other users can access it (mode ${(mode & 0o777).toString(8).padStart(4, "0")}); it must be 0600: chmod 600 ${path}`,
    );
}

async function readPrivateFile(path: string): Promise<string> {
  await checkPrivateFile(path);
  return (await readFile(path, "utf8")).trim();
}

export interface CreatedKeys {
  dir: string;
  identityPublicKey: string;
  wireguardPublicKey: string;
}

/**
 * Creates .coral/keys (0700) with a new identity and WireGuard key (0600 each). Fails when a key exists unless `overwrite`.
 */
export async function createColonyKeys(projectDir: string, options: { overwrite?: boolean } = {}): Promise<CreatedKeys> {
  const dir = keysDir(projectDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  const overwrite = options.overwrite ?? false;
  const identity = await generateIdentityKey();
  const wireguard = generateWireguardKeyPair();
  const files: Array<[string, string]> = [
    [KEY_FILES.identity, identity.pkcs8],
    [KEY_FILES.wireguard, wireguard.privateKey],
  ];
  for (const [name, content] of files) {
    const path = join(dir, name);
    try {
      await writePrivateFile(path, `${content}\n`, overwrite);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new KeyError(path, "already exists; pass --force to replace the colony's keys");
      throw err;
    }
  }
  return { dir, identityPublicKey: identity.publicKey, wireguardPublicKey: wireguard.publicKey };
}

/** Reads and checks the colony's keys; throws KeyError naming the file that is missing, too open or malformed. */
export async function loadColonyKeys(projectDir: string): Promise<ColonyKeys> {
  const dir = keysDir(projectDir);
  const identityPath = join(dir, KEY_FILES.identity);
  const wireguardPath = join(dir, KEY_FILES.wireguard);
  const [identityPkcs8, wireguardPrivate] = await Promise.all([readPrivateFile(identityPath), readPrivateFile(wireguardPath)]);
  let identity: IdentityKey;
  try {
    identity = await importIdentityKey(identityPkcs8);
  } catch (err) {
    throw new KeyError(identityPath, `is not an Ed25519 PKCS#8 key in base64 (${(err as Error).message})`);
  }
  let wireguardPublic: string;
  try {
    wireguardPublic = wireguardPublicKey(wireguardPrivate);
  } catch (err) {
    throw new KeyError(wireguardPath, `is not a WireGuard private key: ${(err as Error).message}`);
  }
  return { dir, identity, identityPkcs8, wireguard: { privateKey: wireguardPrivate, publicKey: wireguardPublic } };
}

/** Writes a new .coral/local.token (0600) and returns it. See the top of this file for what it allows. */
export async function createLocalToken(projectDir: string, options: { overwrite?: boolean } = {}): Promise<string> {
  const path = localTokenPath(projectDir);
  await mkdir(join(resolve(projectDir), ".coral"), { recursive: true });
  const token = `coral_local_${randomBytes(32).toString("base64url")}`;
  try {
    await writePrivateFile(path, `${token}\n`, options.overwrite ?? false);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new KeyError(path, "already exists; pass --force to replace it");
    throw err;
  }
  return token;
}

/** Reads .coral/local.token, refusing it when other users can read it. */
export async function readLocalToken(projectDir: string): Promise<string> {
  const token = await readPrivateFile(localTokenPath(projectDir));
  if (!token) throw new KeyError(localTokenPath(projectDir), "is empty; recreate it with: coral init --force");
  return token;
}
