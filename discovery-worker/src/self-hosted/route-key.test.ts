import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { DiscoveryService } from "@coral/proto";
import { describe, expect, it } from "vitest";
import { canonicalTarget, meshIdFromBody, parsedTarget } from "./route-key.ts";

const register = DiscoveryService.method.registerColony;
const json = (body: unknown) => meshIdFromBody(register, { contentType: "application/json" }, new TextEncoder().encode(JSON.stringify(body)));

describe("meshIdFromBody (JSON)", () => {
  it("reads the mesh id under either spelling, as the worker's protobuf JSON mapping does", () => {
    expect(json({ meshId: "shop-dev", pubkey: "x" })).toBe("shop-dev");
    expect(json({ mesh_id: "shop-dev", signature: { signed_at_ms: "1" } })).toBe("shop-dev");
    expect(json({ meshId: "" })).toBeUndefined();
    expect(json({ meshId: 7 })).toBeUndefined();
    expect(json([])).toBeUndefined();
    expect(json({ pubkey: "x" })).toBeUndefined();
  });

  it("leaves a message naming it twice or oddly to the protobuf JSON mapping", () => {
    const mapped = (body: unknown) => {
      try {
        return fromJson(register.input, body as JsonValue, { ignoreUnknownFields: true }).meshId || undefined;
      } catch {
        return undefined;
      }
    };
    for (const body of [{ meshId: "a-mesh", mesh_id: "b-mesh" }, { meshId: null, mesh_id: "b-mesh" }, { meshId: "a-mesh", mesh_id: null }])
      expect(json(body)).toBe(mapped(body));
  });
});

describe("canonicalTarget", () => {
  it("answers every target as WHATWG URL parsing does, plain or not", () => {
    const pieces = ["/", "a", "Z", "0", "-", "_", "~", ".", "..", "%2e", "%2E", "%41", "\\", "?x=1", "#f", " ", "é", "//", "coral.discovery.v1.DiscoveryService", "LookupColony"];
    // A fixed seed: the same targets on every run.
    let seed = 7;
    const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const targets = ["/", "/a", "/a/", "/a//b", "/./a", "/a/../b", "/.well-known/x", "/a/.b", "/a/b.", "/a/b..", "/...", "/a/%2e%2e/b"];
    for (let i = 0; i < 5000; i++) {
      let target = "/";
      for (let n = 1 + Math.floor(random() * 6); n > 0; n--) target += pieces[Math.floor(random() * pieces.length)];
      targets.push(target);
    }
    for (const target of targets) expect(canonicalTarget(target), target).toBe(parsedTarget(target));
  });

  it("keeps a Connect method's path as it is, and resolves the spellings that differ", () => {
    expect(canonicalTarget("/coral.discovery.v1.DiscoveryService/LookupColony")).toBe("/coral.discovery.v1.DiscoveryService/LookupColony");
    expect(canonicalTarget("/coral.discovery.v1.DiscoveryService//LookupColony/")).toBe("/coral.discovery.v1.DiscoveryService/LookupColony");
    expect(canonicalTarget("/x/../v1/mesh/m%2Dx/colony")).toBe("/v1/mesh/m%2Dx/colony");
    expect(canonicalTarget("http://elsewhere/v1/mesh/m/colony?x=1")).toBe("/v1/mesh/m/colony?x=1");
    expect(canonicalTarget("*")).toBeUndefined();
  });
});
