import { fromJson, type JsonValue } from "@bufbuild/protobuf";
import { DiscoveryService } from "@coral/proto";
import { describe, expect, it } from "vitest";
import { meshIdFromBody } from "./route-key.ts";

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
