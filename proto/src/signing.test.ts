import { describe, expect, it } from "vitest";
import { canonicalJson, colonyFieldsJson, generateIdentityKey, importIdentityKey, sign, signedBytes, verify } from "./signing.ts";

const fields = {
  meshId: "my-shop-dev-a1b2c3",
  pubkey: "k".repeat(43) + "=",
  endpoints: ["203.0.113.42:41820"],
  meshIpv4: "10.42.0.1",
  meshIpv6: "fd42::1",
  connectPort: 9000,
  metadata: { environment: "dev", application: "shop" },
};

describe("canonical encoding", () => {
  it("sorts keys at every level and writes no whitespace", () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[2,{"y":2,"z":1}]},"b":1}');
  });

  it("does not depend on the order metadata was built in", () => {
    const reordered = { ...fields, metadata: { application: "shop", environment: "dev" } };
    expect(signedBytes("colony-registration", colonyFieldsJson(fields), "key", 1n)).toEqual(
      signedBytes("colony-registration", colonyFieldsJson(reordered), "key", 1n),
    );
  });

  it("is the documented text", () => {
    const text = new TextDecoder().decode(signedBytes("colony-registration", colonyFieldsJson(fields), "KEY", 1700000000000n));
    expect(text).toBe(
      "coral-discovery-v1:colony-registration\n" +
        '{"fields":{"connect_port":9000,"endpoints":["203.0.113.42:41820"],"mesh_id":"my-shop-dev-a1b2c3","mesh_ipv4":"10.42.0.1","mesh_ipv6":"fd42::1","metadata":{"application":"shop","environment":"dev"},"pubkey":"' +
        fields.pubkey +
        '","public_endpoint":null},"identity_pubkey":"KEY","signed_at_ms":"1700000000000"}',
    );
  });
});

describe("sign and verify", () => {
  it("verifies its own signature and refuses any change", async () => {
    const key = await generateIdentityKey();
    const signature = await sign("colony-registration", colonyFieldsJson(fields), key);
    expect(await verify("colony-registration", colonyFieldsJson(fields), signature)).toBe(true);
    expect(await verify("colony-registration", colonyFieldsJson({ ...fields, connectPort: 9001 }), signature)).toBe(false);
    expect(await verify("agent-registration", colonyFieldsJson(fields), signature)).toBe(false);
    expect(await verify("colony-registration", colonyFieldsJson(fields), { ...signature, signedAtMs: signature.signedAtMs + 1n })).toBe(false);
    const other = await generateIdentityKey();
    expect(await verify("colony-registration", colonyFieldsJson(fields), { ...signature, identityPubkey: other.publicKey })).toBe(false);
    expect(await verify("colony-registration", colonyFieldsJson(fields), { ...signature, signature: "garbage" })).toBe(false);
  });

  it("round-trips a key through its PKCS#8 form", async () => {
    const key = await generateIdentityKey();
    const loaded = await importIdentityKey(key.pkcs8);
    expect(loaded.publicKey).toBe(key.publicKey);
    const signature = await sign("agent-registration", { a: 1 }, loaded);
    expect(await verify("agent-registration", { a: 1 }, signature)).toBe(true);
  });
});
