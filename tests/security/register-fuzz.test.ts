// Property-based fuzzing of the colony's agent-facing decoders (issue 17):
// MeshService.Register over a real colony API (JSON and binary, random and
// structurally valid requests), and the WireGuard bootstrap endpoint's
// request parser. Whatever arrives: a 4xx with a message, never a 5xx, never
// a crash, and the colony still answers afterwards.
import { create, toBinary } from "@bufbuild/protobuf";
import { RegisterRequestSchema } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EnrollRequestError, parseEnrollRequest } from "@coral/colony/testing";
import { createTestProject } from "../helpers/colony.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";

const registerPath = "/coral.mesh.v1.MeshService/Register";

async function post(url: string, body: Uint8Array | string, contentType: string): Promise<{ status: number; code: string }> {
  const res = await fetch(url + registerPath, { method: "POST", headers: { "content-type": contentType }, body: typeof body === "string" ? body : Buffer.from(body) });
  const text = await res.text();
  let code = "";
  try {
    code = (JSON.parse(text) as { code?: string }).code ?? "";
  } catch {
    // A binary answer to a binary request that succeeded.
  }
  return { status: res.status, code };
}

describe("fuzzing the agent-facing decoders", () => {
  it("Register answers every malformed or forged request with a 4xx", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.json(), fc.jsonValue().map((v) => JSON.stringify({ agentId: "a-1", serviceName: "api", signature: v }))), async (body) => {
        const { status, code } = await post(colony.url, body, "application/json");
        seen.add(code);
        expect(status, `${code} for ${body.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
        expect(status).toBeLessThan(500);
      }),
      { numRuns: 150 },
    );
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 2048 }), async (bytes) => {
        const { status } = await post(colony.url, bytes, "application/proto");
        expect(status).toBeGreaterThanOrEqual(400);
        expect(status).toBeLessThan(500);
      }),
      { numRuns: 150 },
    );
    // Structurally valid requests with random contents: still refused clearly.
    const fields = fc.record({
      agentId: fc.string({ maxLength: 200 }),
      serviceName: fc.string({ maxLength: 80 }),
      port: fc.nat(),
      agentPubkey: fc.oneof(fc.string({ maxLength: 60 }), fc.base64String({ minLength: 44, maxLength: 44 })),
      agentUrl: fc.string({ maxLength: 300 }),
      signature: fc.record({ timestampMs: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), nonce: fc.string({ maxLength: 80 }), signature: fc.string({ maxLength: 120 }) }),
      invitation: fc.option(fc.record({ invitationId: fc.string({ maxLength: 40 }), hmac: fc.string({ maxLength: 80 }) }), { nil: undefined }),
    });
    await fc.assert(
      fc.asyncProperty(fields, async (f) => {
        const { status, code } = await post(colony.url, toBinary(RegisterRequestSchema, create(RegisterRequestSchema, f)), "application/proto");
        expect(status).toBeGreaterThanOrEqual(400);
        expect(status).toBeLessThan(500);
        expect(["invalid_argument", "unauthenticated", "permission_denied"]).toContain(code);
      }),
      { numRuns: 150 },
    );
    expect(seen.has("invalid_argument")).toBe(true);
    // Still serving: a real agent registers.
    await using agent = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "after-1", serviceName: "after", port: 1 });
    expect((await agent.register()).colonyId).toBe(project.colonyId);
  }, 240_000);

  it("the bootstrap endpoint's parser turns any JSON into a request or a field error", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          const parsed = parseEnrollRequest(value);
          expect(typeof parsed.agentId).toBe("string");
        } catch (err) {
          expect(err).toBeInstanceOf(EnrollRequestError);
        }
      }),
      { numRuns: 2000 },
    );
    const wg = Buffer.alloc(32, 7).toString("base64");
    const near = fc.record({
      agent_id: fc.oneof(fc.constant("api-1"), fc.string()),
      wireguard_pubkey: fc.oneof(fc.constant(wg), fc.string()),
      agent_pubkey: fc.oneof(fc.string(), fc.jsonValue()),
      signature: fc.oneof(fc.record({ timestamp_ms: fc.oneof(fc.string(), fc.nat().map(String)), nonce: fc.string(), signature: fc.string() }), fc.jsonValue()),
      invitation: fc.oneof(fc.constant(undefined), fc.jsonValue(), fc.record({ invitation_id: fc.string(), hmac: fc.string() })),
    });
    fc.assert(
      fc.property(near, (value) => {
        try {
          parseEnrollRequest(value);
        } catch (err) {
          expect(err).toBeInstanceOf(EnrollRequestError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
