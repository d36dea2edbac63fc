import { generateKeyPairSync, webcrypto } from "node:crypto";
import { chmod, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { fromBase64 } from "@coral/proto";
import {
  KEY_FILES,
  KeyError,
  createColonyKeys,
  createLocalToken,
  generateWireguardKeyPair,
  keysDir,
  loadColonyKeys,
  localTokenPath,
  readLocalToken,
  wireguardPublicKey,
} from "./keys.ts";
import { tempDir } from "./testing.ts";

let dir: string;
beforeEach(async () => {
  dir = await tempDir();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const mode = async (path: string) => (await stat(path)).mode & 0o777;

describe("createColonyKeys", () => {
  it("writes the keys folder 0700 and every key 0600", async () => {
    const created = await createColonyKeys(dir);
    expect(created.dir).toBe(keysDir(dir));
    expect(await mode(keysDir(dir))).toBe(0o700);
    for (const name of Object.values(KEY_FILES)) expect(await mode(join(keysDir(dir), name))).toBe(0o600);
  });

  it("loads back as usable keys", async () => {
    const created = await createColonyKeys(dir);
    const keys = await loadColonyKeys(dir);
    expect(keys.identity.publicKey).toBe(created.identityPublicKey);
    expect(keys.wireguard.publicKey).toBe(created.wireguardPublicKey);
    expect(Object.keys(keys)).not.toContain("secret");
    expect(fromBase64(keys.wireguard.privateKey)).toHaveLength(32);
    // The identity signs, and its public key verifies.
    const data = new TextEncoder().encode("coral");
    const signature = await webcrypto.subtle.sign("Ed25519", keys.identity.privateKey, data);
    const publicKey = await webcrypto.subtle.importKey("raw", fromBase64(keys.identity.publicKey), "Ed25519", true, ["verify"]);
    expect(await webcrypto.subtle.verify("Ed25519", publicKey, signature, data)).toBe(true);
  });

  it("refuses to replace keys unless asked", async () => {
    const first = await createColonyKeys(dir);
    const err = await createColonyKeys(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyError);
    expect((err as Error).message).toContain("identity.key: already exists; pass --force to replace the colony's keys");
    expect((await loadColonyKeys(dir)).identity.publicKey).toBe(first.identityPublicKey);

    await chmod(join(keysDir(dir), KEY_FILES.wireguard), 0o644);
    const second = await createColonyKeys(dir, { overwrite: true });
    expect(second.identityPublicKey).not.toBe(first.identityPublicKey);
    expect(await mode(join(keysDir(dir), KEY_FILES.wireguard))).toBe(0o600);
  });
});

describe("loadColonyKeys refuses", () => {
  it.each([
    [KEY_FILES.identity, 0o644],
    [KEY_FILES.wireguard, 0o640],
    [KEY_FILES.wireguard, 0o604],
    [KEY_FILES.identity, 0o620],
  ])("%s with mode %o", async (name, fileMode) => {
    await createColonyKeys(dir);
    const path = join(keysDir(dir), name);
    await chmod(path, fileMode);
    const err = await loadColonyKeys(dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyError);
    expect((err as KeyError).file).toBe(path);
    expect((err as Error).message).toBe(
      `${path}: other users can access it (mode 0${fileMode.toString(8)}); it must be 0600: chmod 600 ${path}`,
    );
  });

  it.each([
    [KEY_FILES.identity, "bm90IGEga2V5", "is not an Ed25519 PKCS#8 key in base64"],
    [KEY_FILES.wireguard, "abc", "is not a WireGuard private key: must be base64 of 32 bytes (the wg genkey format)"],
  ])("a malformed %s", async (name, content, message) => {
    await createColonyKeys(dir);
    const path = join(keysDir(dir), name);
    await writeFile(path, content);
    await expect(loadColonyKeys(dir)).rejects.toThrow(`${path}: ${message}`);
  });

  it("a missing key", async () => {
    await createColonyKeys(dir);
    const path = join(keysDir(dir), KEY_FILES.wireguard);
    await rm(path);
    await expect(loadColonyKeys(dir)).rejects.toThrow(`${path}: is missing; create the colony's keys with: coral init`);
  });
});

describe("WireGuard keys", () => {
  it("derive the same public key as node's X25519", () => {
    for (let i = 0; i < 5; i++) {
      const { privateKey, publicKey } = generateKeyPairSync("x25519");
      const jwkPrivate = privateKey.export({ format: "jwk" });
      const jwkPublic = publicKey.export({ format: "jwk" });
      const b64 = (s: string | undefined) => Buffer.from(s!, "base64url").toString("base64");
      expect(wireguardPublicKey(b64(jwkPrivate.d))).toBe(b64(jwkPublic.x));
    }
  });

  it("are clamped like wg genkey", () => {
    const pair = generateWireguardKeyPair();
    const raw = Buffer.from(pair.privateKey, "base64");
    expect(raw).toHaveLength(32);
    expect(raw[0]! & 7).toBe(0);
    expect(raw[31]! & 0xc0).toBe(0x40);
    expect(wireguardPublicKey(pair.privateKey)).toBe(pair.publicKey);
  });
});

describe("local token", () => {
  it("is written 0600 and read back", async () => {
    const token = await createLocalToken(dir);
    expect(token).toMatch(/^coral_local_[A-Za-z0-9_-]{43}$/);
    expect(await mode(localTokenPath(dir))).toBe(0o600);
    expect((await readFile(localTokenPath(dir), "utf8")).trim()).toBe(token);
    expect(await readLocalToken(dir)).toBe(token);
  });

  it("is not replaced unless asked, and refused when others can read it", async () => {
    const token = await createLocalToken(dir);
    await expect(createLocalToken(dir)).rejects.toThrow("local.token: already exists; pass --force to replace it");
    expect(await createLocalToken(dir, { overwrite: true })).not.toBe(token);
    await chmod(localTokenPath(dir), 0o644);
    await expect(readLocalToken(dir)).rejects.toThrow("other users can access it (mode 0644)");
  });
});
