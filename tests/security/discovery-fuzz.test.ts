// Property-based fuzzing of discovery's decoders (issue 17: every decoder at
// a trust boundary), against the real worker in workerd behind the
// self-hosted front: REST bodies and paths, Connect requests (JSON, binary,
// GET), whatever their shape. Every answer is a real answer or a clear 4xx
// Connect error (`{"code", "message"}`), never a 5xx, and discovery keeps
// serving.
import { create, toBinary } from "@bufbuild/protobuf";
import { DiscoveryService, discoveryPb as pb } from "@coral/proto";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyFields, discoveryClient, generateIdentityKey, restColonyRegistration, startTestDiscovery, uniqueMeshId, type TestDiscovery } from "../helpers/discovery.ts";

const connectCodes = new Set([
  "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied",
  "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "unavailable", "data_loss", "unauthenticated",
]);

let discovery: TestDiscovery;
let meshId = "";
let goodRegistration: Record<string, unknown>;

beforeAll(async () => {
  discovery = await startTestDiscovery({ ttlSeconds: 300, shards: 2 });
  meshId = uniqueMeshId();
  const identity = await generateIdentityKey();
  await discoveryClient(discovery.url).registerColony(colonyFields(meshId), identity);
  goodRegistration = await restColonyRegistration(colonyFields(meshId), identity);
});
afterAll(async () => {
  await discovery?.[Symbol.asyncDispose]();
});

async function send(method: string, path: string, contentType: string | undefined, body: string | Uint8Array | undefined) {
  const res = await fetch(`${discovery.url}${path}`, {
    method,
    headers: contentType ? { "content-type": contentType } : {},
    body: method === "GET" || method === "HEAD" || body === undefined ? undefined : typeof body === "string" ? body : new Uint8Array(body),
  });
  return { status: res.status, contentType: res.headers.get("content-type") ?? "", text: await res.text() };
}

function expectClearAnswer(answer: { status: number; contentType: string; text: string }, method: string): void {
  expect(answer.status).toBeLessThan(500);
  if (answer.status < 400 || method === "HEAD") return;
  const body = JSON.parse(answer.text) as { code: string; message: string };
  expect(connectCodes.has(body.code)).toBe(true);
  expect(typeof body.message).toBe("string");
}

/** Path segments: any text, percent-encoded, or raw escapes that do not decode. */
const meshIds = fc.oneof(
  fc.oneof(fc.constant("MESH"), fc.string({ maxLength: 80 }), fc.constantFrom("a", "shop-dev", "x".repeat(70), "..", "/")).map(encodeURIComponent),
  fc.constantFrom("%ZZ", "%", "%E0%A4%A", "%C0%AF", "%2F", "%00", "a%20b"),
);
/** REST registration bodies: the valid one with fields dropped, retyped or broken, and arbitrary JSON. */
const restBodies = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
  fc.string(),
  fc
    .tuple(
      fc.dictionary(
        fc.constantFrom("type", "pubkey", "endpoints", "mesh_ipv4", "mesh_ipv6", "connect_port", "metadata", "signature", "agent_id", "mesh_id", "public_endpoint"),
        fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom("agent", "colony", -1, 70000, 2 ** 53, "AAAA", { signed_at_ms: "99999999999999999999999" })),
        { maxKeys: 4 },
      ),
      fc.subarray(["type", "pubkey", "endpoints", "signature", "metadata"]),
    )
    .map(([changes, dropped]) => {
      const body: Record<string, unknown> = { ...goodRegistration, ...changes };
      for (const k of dropped) delete body[k];
      return JSON.stringify(body);
    }),
);

const restRequest = fc.record({
  method: fc.constantFrom("POST", "GET", "PUT", "DELETE", "HEAD"),
  path: fc.oneof(
    meshIds.map((m) => `/v1/mesh/${m}/register`),
    meshIds.map((m) => `/v1/mesh/${m}/colony`),
    fc.tuple(meshIds, meshIds).map(([m, a]) => `/v1/mesh/${m}/agents/${a}`),
    fc.webPath().map((p) => (p.startsWith("/") ? p : `/${p}`)),
    fc.constantFrom("/health", "/.well-known/jwks.json", "/", "/v1/mesh//register"),
  ),
  contentType: fc.constantFrom("application/json", "text/plain", undefined),
  body: restBodies,
});

const methods = DiscoveryService.methods.map((m) => m.name);
const binaryBodies = fc.oneof(
  fc.uint8Array({ maxLength: 300 }),
  // A valid registration, then cut or with bytes appended.
  fc.tuple(fc.uint8Array({ maxLength: 12 }), fc.nat(80)).map(([tail, cut]) => {
    const valid = toBinary(pb.RegisterColonyRequestSchema, create(pb.RegisterColonyRequestSchema, { meshId, endpoints: ["203.0.113.1:1"], connectPort: 9000 }));
    const joined = new Uint8Array([...valid, ...tail]);
    return joined.subarray(0, Math.max(0, joined.length - cut));
  }),
);
const connectRequest = fc.record({
  method: fc.constantFrom("POST", "POST", "POST", "GET"),
  name: fc.oneof(fc.constantFrom(...methods), fc.string({ maxLength: 30 })),
  contentType: fc.constantFrom("application/json", "application/proto", "application/json; charset=utf-8", "application/connect+json", "text/plain", undefined),
  body: fc.oneof(
    fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v)),
    fc.record({ meshId: fc.oneof(fc.string(), fc.constant(meshId)), agentId: fc.string(), token: fc.string(), intent: fc.oneof(fc.integer(), fc.string()), ttlSeconds: fc.oneof(fc.integer(), fc.double()) }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
    binaryBodies,
  ),
  query: fc.oneof(fc.constant(""), fc.string().map((m) => `?encoding=json&message=${encodeURIComponent(m)}`), fc.string().map((m) => `?encoding=proto&base64=1&message=${encodeURIComponent(m)}`)),
});

describe("fuzzing discovery's decoders", () => {
  it("answers any REST request with a real answer or a clear 4xx", async () => {
    await fc.assert(
      fc.asyncProperty(restRequest, async (r) => {
        expectClearAnswer(await send(r.method, r.path, r.contentType, r.body), r.method);
      }),
      { numRuns: 400 },
    );
    expect((await discoveryClient(discovery.url).lookupColony(meshId)).meshId).toBe(meshId);
  }, 240_000);

  it("answers any Connect request with a real answer or a clear 4xx Connect error", async () => {
    await fc.assert(
      fc.asyncProperty(connectRequest, async (r) => {
        const path = `/coral.discovery.v1.DiscoveryService/${encodeURIComponent(r.name)}${r.method === "GET" ? r.query : ""}`;
        expectClearAnswer(await send(r.method, path, r.contentType, r.body), r.method);
      }),
      { numRuns: 400 },
    );
    expect((await discoveryClient(discovery.url).health()).status).toBe("ok");
  }, 240_000);
});
