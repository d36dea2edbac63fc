import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { generateKeyPair, generatePrivateKey, isKey, keyBytes, keyFromHex, keyToHex, publicKeyOf } from "./keys.ts";
import { findExecutable } from "./interface.ts";

// RFC 7748 §6.1 test vector (Alice).
const ALICE_PRIVATE_HEX = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
const ALICE_PUBLIC_HEX = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

describe("wireguard keys", () => {
  it("derives the RFC 7748 public key", () => {
    const priv = keyFromHex(ALICE_PRIVATE_HEX);
    expect(keyToHex(publicKeyOf(priv))).toBe(ALICE_PUBLIC_HEX);
  });

  it("generates clamped 32-byte keys whose public half matches publicKeyOf", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const { privateKey, publicKey } = generateKeyPair();
      expect(isKey(privateKey)).toBe(true);
      expect(isKey(publicKey)).toBe(true);
      expect(publicKeyOf(privateKey)).toBe(publicKey);
      const raw = keyBytes(privateKey);
      expect(raw.length).toBe(32);
      expect(raw[0]! & 7).toBe(0);
      expect(raw[31]! & 0xc0).toBe(0x40);
      seen.add(privateKey);
    }
    expect(seen.size).toBe(20);
  });

  it("round-trips base64 and lowercase hex", () => {
    const priv = generatePrivateKey();
    const hex = keyToHex(priv);
    expect(hex).toMatch(/^[0-9a-f]{64}$/);
    expect(keyFromHex(hex)).toBe(priv);
    expect(keyFromHex(hex.toUpperCase())).toBe(priv);
  });

  it.each([
    ["empty", ""],
    ["too short", "AAAA"],
    ["31 bytes", Buffer.alloc(31, 1).toString("base64")],
    ["33 bytes", Buffer.alloc(33, 1).toString("base64")],
    ["base64url alphabet", Buffer.alloc(32, 0xfb).toString("base64url") + "="],
    ["non-canonical last char", Buffer.alloc(32, 0).toString("base64").slice(0, 42) + "B="],
  ])("rejects a malformed base64 key (%s)", (_name, value) => {
    expect(() => keyBytes(value, "private key")).toThrow(/private key must be 32 bytes in base64/);
    expect(isKey(value)).toBe(false);
  });

  it.each([["short", "abcd"], ["non-hex", "z".repeat(64)], ["65 digits", "a".repeat(65)]])("rejects a malformed hex key (%s)", (_n, hex) => {
    expect(() => keyFromHex(hex)).toThrow(/must be 64 hex digits/);
  });

  it.skipIf(!findExecutable("wg"))("agrees with `wg pubkey` when wireguard-tools is installed", () => {
    const { privateKey, publicKey } = generateKeyPair();
    const out = execFileSync("wg", ["pubkey"], { input: `${privateKey}\n`, encoding: "utf8" }).trim();
    expect(out).toBe(publicKey);
    const fromWg = execFileSync("wg", ["genkey"], { encoding: "utf8" }).trim();
    expect(publicKeyOf(fromWg)).toBe(execFileSync("wg", ["pubkey"], { input: `${fromWg}\n`, encoding: "utf8" }).trim());
  });
});
