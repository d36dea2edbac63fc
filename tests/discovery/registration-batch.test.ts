// Registrations that reach the front together go to their shard's worker in
// one batch, and to each mesh object in one call (registration-batcher.ts,
// registration-batch.ts, registry-batch.ts). Every caller must still get
// exactly the answer a registration sent alone gets: the same requests go to
// a front that batches and to one that sends each alone, and the answers are
// compared.
import { create, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { agentFieldsJson, colonyFieldsJson, discoveryPb as pb, sign, type IdentityKey } from "@coral/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  colonyFields,
  discoveryClient,
  generateIdentityKey,
  randomWireguardKey,
  restColonyRegistration,
  startTestDiscovery,
  uniqueMeshId,
  type TestDiscovery,
} from "../helpers/discovery.ts";
import { waitFor } from "../helpers/wait.ts";
import { workerInMiniflare } from "./worker-in-miniflare.ts";

const connect = "/coral.discovery.v1.DiscoveryService";
const batchPath = "/_coral/registration-batch";
// As registration-batch-wire.ts sets it: 64 parts of a 16 KiB head and a 64 KiB body, each with two lengths.
const maxBatchBytes = 64 * (8 + 16 * 1024 + 64 * 1024);

interface Sent {
  path: string;
  headers: Record<string, string>;
  body: string | Uint8Array;
}

interface Got {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

async function send(url: string, s: Sent): Promise<Got> {
  const res = await fetch(url + s.path, { method: "POST", headers: s.headers, body: typeof s.body === "string" ? s.body : new Uint8Array(s.body) });
  const headers: Record<string, string> = {};
  res.headers.forEach((value, name) => {
    if (name !== "date") headers[name] = value;
  });
  return { status: res.status, headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** The answer with the instant the registration expires (it differs by when it was stored) left out. */
function comparable(sent: Sent, got: Got) {
  if (got.status !== 200) return { ...got, body: got.body.toString() };
  const rest = { ...got, headers: { ...got.headers, "content-length": "(varies)" } };
  if (sent.headers["content-type"] === "application/proto") {
    const answer = fromBinary(pb.RegisterColonyResponseSchema, got.body);
    return { ...rest, body: { ...(toJson(pb.RegisterColonyResponseSchema, answer) as Record<string, unknown>), expiresAt: answer.expiresAt ? "(set)" : "(unset)" } };
  }
  const body = JSON.parse(got.body.toString()) as Record<string, unknown>;
  for (const name of ["expiresAt", "expires_at"]) if (name in body) body[name] = "(set)";
  return { ...rest, body };
}

async function colonyRequest(meshId: string, identity: IdentityKey, binary: boolean, fields = colonyFields(meshId)): Promise<Sent> {
  const message = create(pb.RegisterColonyRequestSchema, {
    ...fields,
    endpoints: [...fields.endpoints],
    signature: create(pb.SignatureSchema, await sign("colony-registration", colonyFieldsJson(fields), identity)),
  });
  return binary
    ? { path: `${connect}/RegisterColony`, headers: { "content-type": "application/proto" }, body: toBinary(pb.RegisterColonyRequestSchema, message) }
    : { path: `${connect}/RegisterColony`, headers: { "content-type": "application/json" }, body: JSON.stringify(toJson(pb.RegisterColonyRequestSchema, message)) };
}

async function agentRequest(meshId: string, agentId: string, signer: IdentityKey): Promise<Sent> {
  const fields = { meshId, agentId, pubkey: randomWireguardKey(), endpoints: ["10.0.0.5:51820"], metadata: {} };
  const message = create(pb.RegisterAgentRequestSchema, {
    ...fields,
    signature: create(pb.SignatureSchema, await sign("agent-registration", agentFieldsJson(fields), signer)),
  });
  return { path: `${connect}/RegisterAgent`, headers: { "content-type": "application/json" }, body: JSON.stringify(toJson(pb.RegisterAgentRequestSchema, message)) };
}

function restRequest(meshId: string, body: unknown): Sent {
  return { path: `/v1/mesh/${meshId}/register`, headers: { "content-type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body) };
}

let batched: TestDiscovery;
let alone: TestDiscovery;

beforeAll(async () => {
  // One bucket object: every registration of a batch goes to the same object in one call.
  [batched, alone] = await Promise.all([
    startTestDiscovery({ shards: 1, meshBuckets: 1 }),
    startTestDiscovery({ shards: 1, meshBuckets: 1, registrationBatchWindowMs: 0 }),
  ]);
});
afterAll(async () => {
  await batched?.[Symbol.asyncDispose]();
  await alone?.[Symbol.asyncDispose]();
});

/** Sends the same requests, all at once, to both fronts; returns both answers of each. */
async function both(requests: Sent[]): Promise<Array<[Got, Got]>> {
  const before = batched.server.registrationBatchStats()!;
  const [b, a] = await Promise.all([Promise.all(requests.map((r) => send(batched.url, r))), Promise.all(requests.map((r) => send(alone.url, r)))]);
  const after = batched.server.registrationBatchStats()!;
  expect(after.registrations - before.registrations).toBe(requests.length);
  // Sent together, they shared batches.
  expect(after.batches - before.batches).toBeLessThan(requests.length);
  expect(alone.server.registrationBatchStats()).toBeUndefined();
  return b.map((got, i) => [got, a[i]!]);
}

describe("registrations sent together", () => {
  it("answer each caller as a registration sent alone is answered, accepted or refused, and one refused touches none of the others", async () => {
    const owner = await generateIdentityKey();
    const stranger = await generateIdentityKey();
    const meshes = Array.from({ length: 12 }, () => uniqueMeshId("batch"));
    const lonely = uniqueMeshId("batch-no-colony");
    const first: Sent[] = [
      ...(await Promise.all(meshes.slice(0, 4).map((m) => colonyRequest(m, owner, false)))),
      ...(await Promise.all(meshes.slice(4, 8).map((m) => colonyRequest(m, owner, true)))),
      ...(await Promise.all(meshes.slice(8).map(async (m) => restRequest(m, await restColonyRegistration(colonyFields(m), owner))))),
      { path: `${connect}/RegisterColony`, headers: { "content-type": "application/json" }, body: "{not json" },
      { path: `${connect}/RegisterColony`, headers: { "content-type": "application/json" }, body: JSON.stringify({ meshId: meshes[0], pubkey: "short" }) },
      { path: `${connect}/RegisterColony`, headers: { "content-type": "application/json; charset=utf-8" }, body: JSON.stringify({ meshId: "" }) },
      { path: `${connect}/RegisterColony`, headers: { "content-type": "application/proto" }, body: new Uint8Array([0xff, 0xff, 0xff]) },
      restRequest(meshes[9]!, "[]"),
      restRequest(meshes[10]!, { type: "robot" }),
      await agentRequest(lonely, "api", owner),
    ];
    const firstAnswers = await both(first);
    firstAnswers.forEach(([b, a], i) => expect(comparable(first[i]!, b), `request ${i}`).toEqual(comparable(first[i]!, a)));
    expect(firstAnswers.slice(0, 12).map(([b]) => b.status)).toEqual(Array(12).fill(200));
    expect(firstAnswers.slice(12).map(([b]) => b.status)).toEqual([400, 400, 400, 400, 400, 400, 400]);

    // Then together: refreshes, replays of the first, agents signed by the colony's key and by a stranger's.
    const again: Sent[] = [
      ...(await Promise.all(meshes.slice(0, 4).map((m) => colonyRequest(m, owner, false)))),
      ...first.slice(4, 8),
      ...(await Promise.all(meshes.slice(0, 3).map((m) => agentRequest(m, "api", owner)))),
      await agentRequest(meshes[3]!, "api", stranger),
      await colonyRequest(meshes[5]!, stranger, true),
    ];
    const againAnswers = await both(again);
    againAnswers.forEach(([b, a], i) => expect(comparable(again[i]!, b), `request ${i}`).toEqual(comparable(again[i]!, a)));
    expect(againAnswers.map(([b]) => b.status)).toEqual([200, 200, 200, 200, 403, 403, 403, 403, 200, 200, 200, 403, 403]);

    // Every accepted registration is held, whatever else its batch held.
    const client = discoveryClient(batched.url);
    for (const meshId of meshes) expect((await client.lookupColony(meshId, { pinnedKey: owner.publicKey })).meshId).toBe(meshId);
  });

  it("go alone when nothing else is on its way", async () => {
    const before = batched.server.registrationBatchStats()!;
    const got = await send(batched.url, await colonyRequest(uniqueMeshId("batch-alone"), await generateIdentityKey(), false));
    expect(got.status).toBe(200);
    const after = batched.server.registrationBatchStats()!;
    expect([after.batches - before.batches, after.registrations - before.registrations]).toEqual([1, 1]);
  });

  it("update the front's kept lookup answers of each pure refresh", async () => {
    const owner = await generateIdentityKey();
    const meshes = Array.from({ length: 6 }, () => uniqueMeshId("batch-refresh"));
    const fields = meshes.map((m) => colonyFields(m));
    await Promise.all(meshes.map(async (m, i) => expect((await send(batched.url, await colonyRequest(m, owner, false, fields[i]))).status).toBe(200)));
    const lookup = (m: string) => fetch(`${batched.url}/v1/mesh/${m}/colony`).then(async (r) => (await r.json()) as { signature: { signed_at_ms: string } });
    for (const m of meshes) await lookup(m);
    await waitFor("the lookups to be kept", async () => {
      const hits = batched.server.answerCacheStats()!.hits;
      await Promise.all(meshes.map(lookup));
      return batched.server.answerCacheStats()!.hits - hits === meshes.length;
    });
    const restored = batched.server.answerCacheStats()!.restored;
    const refreshes = await Promise.all(meshes.map((m, i) => colonyRequest(m, owner, false, fields[i])));
    const before = batched.server.registrationBatchStats()!;
    const answers = await Promise.all(refreshes.map((r) => send(batched.url, r)));
    expect(answers.map((a) => a.status)).toEqual(Array(meshes.length).fill(200));
    for (const a of answers) expect(a.headers["coral-refreshed"]).toBeUndefined();
    expect(batched.server.registrationBatchStats()!.batches - before.batches).toBeLessThan(meshes.length);
    expect(batched.server.answerCacheStats()!.restored - restored).toBe(meshes.length);
    const hits = batched.server.answerCacheStats()!.hits;
    const looked = await Promise.all(meshes.map(lookup));
    expect(batched.server.answerCacheStats()!.hits - hits).toBe(meshes.length);
    looked.forEach((answer, i) => {
      const sent = JSON.parse(refreshes[i]!.body as string) as { signature: { signedAtMs: string } };
      expect(answer.signature.signed_at_ms).toBe(sent.signature.signedAtMs);
    });
  });

  it("keep the rate limit: each takes a token on arrival, and one refused as invalid gives it back", async () => {
    await using limited = await startTestDiscovery({ rateLimitPerMinute: 3 });
    const invalid = () => send(limited.url, { path: `${connect}/RegisterColony`, headers: { "content-type": "application/json" }, body: "{}" });
    for (let round = 0; round < 3; round++) expect((await Promise.all([invalid(), invalid(), invalid()])).map((g) => g.status)).toEqual([400, 400, 400]);
    const owner = await generateIdentityKey();
    const valid = await Promise.all(Array.from({ length: 3 }, () => colonyRequest(uniqueMeshId("batch-limit"), owner, false)));
    expect((await Promise.all(valid.map((r) => send(limited.url, r)))).map((g) => g.status)).toEqual([200, 200, 200]);
    const refused = await send(limited.url, await colonyRequest(uniqueMeshId("batch-limit"), owner, false));
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body.toString())).toMatchObject({ code: "resource_exhausted" });
    expect(limited.server.registrationBatchStats()!.registrations).toBe(12);
  });
});

describe("the batch endpoint", () => {
  it("is refused to clients of the front", async () => {
    for (const path of [batchPath, batchPath.toUpperCase(), `${batchPath}/`, `/x/..${batchPath}?a=1`]) {
      const res = await fetch(batched.url + path, { method: "POST", body: "" });
      expect(res.status, path).toBe(403);
      expect(((await res.json()) as { code: string }).code).toBe("permission_denied");
    }
  });

  it("is refused by a worker without a front, with the reason", async () => {
    const mf = await workerInMiniflare();
    try {
      const res = await mf.dispatchFetch(`http://discovery${batchPath}`, { method: "POST", body: new Uint8Array(0) });
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({
        code: "permission_denied",
        message:
          "/_coral/registration-batch is coral-discovery's internal endpoint for its front's registration batches, and this worker runs without a front " +
          "(FRONT_SECRET is unset); register with RegisterColony or RegisterAgent, or POST /v1/mesh/:mesh_id/register",
      });
    } finally {
      await mf.dispose();
    }
  });

  it("behind a front, answers each part on its own and refuses what is not a registration or not a batch", async () => {
    const secret = "front-secret-of-this-test";
    const mf = await workerInMiniflare({ bindings: { FRONT_SECRET: secret, REGISTER_RATE_PER_MINUTE: "0", MESH_BUCKETS: "1" } });
    const post = (body: Uint8Array, headers: Record<string, string> = {}) =>
      mf.dispatchFetch(`http://discovery${batchPath}`, { method: "POST", headers: { "x-coral-front-secret": secret, ...headers }, body });
    const part = (head: unknown, body: string) => {
      const h = Buffer.from(JSON.stringify(head));
      const b = Buffer.from(body);
      const out = Buffer.alloc(8 + h.length + b.length);
      out.writeUInt32BE(h.length, 0);
      h.copy(out, 4);
      out.writeUInt32BE(b.length, 4 + h.length);
      b.copy(out, 8 + h.length);
      return out;
    };
    try {
      expect((await mf.dispatchFetch(`http://discovery${batchPath}`, { method: "POST", body: new Uint8Array(0) })).status).toBe(403);
      const malformed = await post(new Uint8Array([0, 0, 0, 9, 1]));
      expect(malformed.status).toBe(400);
      expect(((await malformed.json()) as { message: string }).message).toMatch(/^registration batch: /);
      const tooLarge = await post(new Uint8Array(maxBatchBytes + 1));
      expect(tooLarge.status).toBe(400);
      expect(((await tooLarge.json()) as { message: string }).message).toBe(`request body is more than ${maxBatchBytes} bytes; the limit is ${maxBatchBytes} bytes`);

      const meshId = uniqueMeshId("batch-wire");
      const owner = await generateIdentityKey();
      const registration = JSON.stringify(await restColonyRegistration(colonyFields(meshId), owner));
      const headers = [
        ["content-type", "application/json"],
        ["cf-connecting-ip", "192.0.2.9"],
      ];
      const answer = await post(
        Buffer.concat([
          part({ path: `${connect}/LookupColony`, headers }, JSON.stringify({ meshId })),
          part({ path: `/v1/mesh/${meshId}/register`, headers }, registration),
          part({ path: batchPath, headers }, ""),
          part({ nothing: true }, ""),
        ]),
      );
      expect(answer.status).toBe(200);
      const bytes = Buffer.from(await answer.arrayBuffer());
      const parts: Array<{ head: { status: number }; body: string }> = [];
      for (let at = 0; at < bytes.length; ) {
        const headLength = bytes.readUInt32BE(at);
        const head = JSON.parse(bytes.subarray(at + 4, at + 4 + headLength).toString()) as { status: number };
        at += 4 + headLength;
        const bodyLength = bytes.readUInt32BE(at);
        parts.push({ head, body: bytes.subarray(at + 4, at + 4 + bodyLength).toString() });
        at += 4 + bodyLength;
      }
      expect(parts.map((p) => p.head.status)).toEqual([400, 200, 400, 400]);
      expect(JSON.parse(parts[0]!.body)).toEqual({
        code: "invalid_argument",
        message: "registration batch: a part is not a registration (POST /v1/mesh/:mesh_id/register, RegisterColony or RegisterAgent)",
      });
      expect(JSON.parse(parts[1]!.body)).toMatchObject({ ok: true, observed_endpoint: "192.0.2.9" });
    } finally {
      await mf.dispose();
    }
  });
});
