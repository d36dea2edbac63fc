import { describe, expect, it } from "vitest";
import { decodeJoinToken, encodeJoinToken, type JoinToken } from "./join-token.ts";

const base: JoinToken = {
  colonyId: "shop-dev-a1b2c3",
  discoveryUrl: "http://10.0.0.1:8080",
  colonyPubkey: "A".repeat(43) + "=",
  secret: "ab".repeat(32),
  colonyUrl: "http://127.0.0.1:9000",
};

describe("join tokens", () => {
  it("carry the bootstrap CA fingerprint when there is one", () => {
    const caFingerprint = `sha256:${"0f".repeat(32)}`;
    expect(decodeJoinToken(encodeJoinToken({ ...base, caFingerprint }))).toEqual({ token: { ...base, caFingerprint } });
  });

  it("still decode without it (tokens from colonies before the mesh)", () => {
    const decoded = decodeJoinToken(encodeJoinToken(base));
    expect(decoded).toEqual({ token: base });
    expect("token" in decoded && "caFingerprint" in decoded.token).toBe(false);
  });

  it("refuse a damaged fingerprint, saying so", () => {
    const decoded = decodeJoinToken(encodeJoinToken({ ...base, caFingerprint: "md5:1234" }));
    expect(decoded).toEqual({ error: expect.stringMatching(/damaged CA fingerprint/) });
  });
});
