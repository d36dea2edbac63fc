import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ValidationError, base64ByteLength, checkAgentId, checkBase64Key, tryDecodeBase64, checkKeptTraceIds, checkMeshId, checkMetadata, maxKeptTraceIds, parseEndpoint } from "./validation.ts";

describe("parseEndpoint", () => {
  it.each([
    ["203.0.113.42:41820", { host: "203.0.113.42", port: 41820, kind: "ipv4" }],
    ["[fd42::1]:41820", { host: "fd42::1", port: 41820, kind: "ipv6" }],
    ["[2001:db8::7]:1", { host: "2001:db8::7", port: 1, kind: "ipv6" }],
    ["colony.example.com:443", { host: "colony.example.com", port: 443, kind: "hostname" }],
    ["localhost:9000", { host: "localhost", port: 9000, kind: "hostname" }],
    [":41820", { host: "", port: 41820, kind: "observed" }],
    ["host.:65535", { host: "host.", port: 65535, kind: "hostname" }],
  ])("accepts %s", (input, expected) => {
    expect(parseEndpoint(input)).toEqual({ endpoint: expected });
  });

  it.each([
    ["203.0.113.42", /has no port/],
    ["203.0.113.42:0", /port "0"/],
    ["203.0.113.42:65536", /port "65536"/],
    ["203.0.113.42:80a", /port "80a"/],
    ["999.0.0.1:80", /not an IPv4 address/],
    ["1.2.3:80", /not an IPv4 address/],
    ["fd42::1:80", /brackets/],
    ["[fd42::1]80", /must look like/],
    ["[not-v6]:80", /not an IPv6 address/],
    ["[fe80::1%eth0]:80", /not an IPv6 address/],
    ["-x.example.com:80", /not a valid hostname/],
    ["under_score.example.com:80", /not a valid hostname/],
    [`${"a".repeat(64)}.com:80`, /not a valid hostname/],
    ["", /has no port/],
  ])("rejects %s", (input, message) => {
    const result = parseEndpoint(input);
    expect(result).toHaveProperty("error");
    expect((result as { error: string }).error).toMatch(message);
  });
});

describe("ids", () => {
  it.each(["my-shop-dev-a1b2c3", "abc", "a".repeat(63), "0-0"])("accepts mesh id %s", (id) => {
    expect(checkMeshId(id)).toBe(id);
  });
  it.each(["", "ab", "a".repeat(64), "-abc", "abc-", "My-Shop", "a_b_c", "a.b.c", "shop dev"])("rejects mesh id %j", (id) => {
    expect(() => checkMeshId(id)).toThrow(ValidationError);
  });
  it.each(["api", "api-1", "frontend.pod_7", "A"])("accepts agent id %s", (id) => {
    expect(checkAgentId(id)).toBe(id);
  });
  it.each(["", "-api", "api/1", "x".repeat(129)])("rejects agent id %j", (id) => {
    expect(() => checkAgentId(id)).toThrow(/agent_id/);
  });
});

describe("checkMetadata", () => {
  it("accepts ordinary labels", () => {
    expect(() => checkMetadata({ application: "shop", "k8s.io/namespace": "prod" })).not.toThrow();
  });
  it.each([
    [{ "": "x" }, /keys must be/],
    [{ "bad key": "x" }, /keys must be/],
    [{ k: "v".repeat(257) }, /at most 256/],
    [Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])), /at most 32 entries/],
    [Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, "é".repeat(120)])), /at most 4096 bytes/],
  ])("rejects %#", (metadata, message) => {
    expect(() => checkMetadata(metadata)).toThrow(message);
  });
});

describe("checkKeptTraceIds", () => {
  const id = "0af7651916cd43dd8448eb211c80319c";
  it("accepts up to the cap of 32-hex-digit ids", () => {
    expect(checkKeptTraceIds([])).toEqual([]);
    expect(checkKeptTraceIds([id, "f".repeat(32)])).toEqual([id, "f".repeat(32)]);
    expect(checkKeptTraceIds(Array(maxKeptTraceIds).fill(id))).toHaveLength(1000);
  });

  it.each([
    [[id, "xyz"], /^trace_ids\[1\]: "xyz" must be a trace id: 32 lowercase hex digits$/],
    [[id.toUpperCase()], /trace_ids\[0\]: .* 32 lowercase hex digits/],
    [[id + "0"], /trace_ids\[0\]/],
    [[""], /trace_ids\[0\]: "" must be/],
    [Array(maxKeptTraceIds + 1).fill(id), /^trace_ids: at most 1000 per call \(got 1001\)$/],
  ])("refuses %#", (ids, message) => {
    expect(() => checkKeptTraceIds(ids)).toThrow(ValidationError);
    expect(() => checkKeptTraceIds(ids)).toThrow(message);
  });
});

describe("base64 keys", () => {
  /** What atob makes of a padded base64 text, byte for byte: the reference. */
  const atobBytes = (value: string) => {
    if (value.length % 4 !== 0) return undefined; // unpadded: refused whatever atob says
    try {
      return Uint8Array.from(atob(value), (c) => c.charCodeAt(0));
    } catch {
      return undefined;
    }
  };

  it("sizes and decodes exactly what atob decodes from a padded text, and refuses the rest", () => {
    const alphabet = [..."ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", "=", "-", "_", " ", "\n", "é"];
    const texts = fc.oneof(
      fc.uint8Array({ maxLength: 70 }).map((bytes) => Buffer.from(bytes).toString("base64")),
      fc.array(fc.constantFrom(...alphabet), { maxLength: 90 }).map((chars) => chars.join("")),
    );
    fc.assert(
      fc.property(texts, (text) => {
        const expected = /^[A-Za-z0-9+/=]*$/.test(text) ? atobBytes(text) : undefined;
        expect(tryDecodeBase64(text)).toEqual(expected);
        expect(base64ByteLength(text)).toBe(expected?.length);
      }),
      { numRuns: 3000 },
    );
  });

  it("takes a 32-byte key and refuses one of another size or not base64", () => {
    const key = Buffer.alloc(32, 7).toString("base64");
    expect(checkBase64Key(key, "pubkey")).toBe(key);
    expect(checkBase64Key(Buffer.alloc(64, 1).toString("base64"), "signature", 64)).toHaveLength(88);
    for (const bad of [Buffer.alloc(31).toString("base64"), Buffer.alloc(33).toString("base64"), key.slice(0, -1), `${key.slice(0, -2)}-=`, key.replace("=", "")])
      expect(() => checkBase64Key(bad, "pubkey"), bad).toThrow(/must be a base64 encoded 32-byte key/);
    expect(() => checkBase64Key("", "pubkey")).toThrow(/is required/);
  });
});
