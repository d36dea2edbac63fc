import { describe, expect, it } from "vitest";
import { decodeJoinToken, encodeJoinToken, type JoinToken } from "./join-token.ts";

const base: JoinToken = {
  colonyId: "shop-dev-a1b2c3",
  discoveryUrl: "http://10.0.0.1:8080",
  colonyPubkey: "A".repeat(43) + "=",
  colonyUrl: "http://127.0.0.1:9000",
  invitationId: "k3j9x2m4p8q1",
  invitationSecret: "ab".repeat(32),
};

describe("join tokens", () => {
  it("round-trip, with the bootstrap CA fingerprint when there is one", () => {
    const caFingerprint = `sha256:${"0f".repeat(32)}`;
    expect(decodeJoinToken(encodeJoinToken({ ...base, caFingerprint }))).toEqual({ token: { ...base, caFingerprint } });
    const decoded = decodeJoinToken(encodeJoinToken(base));
    expect(decoded).toEqual({ token: base });
    expect("token" in decoded && "caFingerprint" in decoded.token).toBe(false);
  });

  it("refuse a damaged fingerprint, saying so", () => {
    const decoded = decodeJoinToken(encodeJoinToken({ ...base, caFingerprint: "md5:1234" }));
    expect(decoded).toEqual({ error: expect.stringMatching(/damaged CA fingerprint/) });
  });

  it("refuse an old token that carries the colony secret, saying what to do", () => {
    const legacy = "coral-join-v1." + Buffer.from(JSON.stringify({ c: "x", k: "y", s: "ab".repeat(32), u: "" })).toString("base64url");
    expect(decodeJoinToken(legacy)).toEqual({ error: expect.stringMatching(/older Coral.*coral colony invite/) });
  });

  it("refuse a token without a well-formed invitation", () => {
    expect(decodeJoinToken(encodeJoinToken({ ...base, invitationSecret: "short" }))).toEqual({ error: expect.stringMatching(/incomplete or damaged/) });
    expect(decodeJoinToken(encodeJoinToken({ ...base, invitationId: "../x" }))).toEqual({ error: expect.stringMatching(/incomplete or damaged/) });
  });
});
