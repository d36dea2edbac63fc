// The self-hosted front's answer cache, against the real worker in workerd:
// repeats are served from the front, and no kept answer outlives a
// registration of its mesh or the registration's expiry.
import { create, toBinary, toJson } from "@bufbuild/protobuf";
import { sleep } from "@coral/common/async";
import { ColonyNotFoundError, colonyFieldsJson, discoveryPb, sign, type ColonyRegistrationFields, type IdentityKey } from "@coral/proto";
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

const lookupPath = "/coral.discovery.v1.DiscoveryService/LookupColony";

let discovery: TestDiscovery;

beforeAll(async () => {
  discovery = await startTestDiscovery({ ttlSeconds: 300 });
});
afterAll(async () => {
  await discovery?.[Symbol.asyncDispose]();
});

function hits(d: TestDiscovery = discovery): number {
  return d.server.answerCacheStats()?.hits ?? 0;
}

async function connectJsonLookup(meshId: string) {
  const res = await fetch(discovery.url + lookupPath, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ meshId }),
  });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

/** A signed REST registration (the seed's POST /v1/mesh/:id/register). */
async function restRegister(fields: ColonyRegistrationFields, identity: IdentityKey): Promise<number> {
  const res = await fetch(`${discovery.url}/v1/mesh/${fields.meshId}/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(await restColonyRegistration(fields, identity)),
  });
  await res.text();
  return res.status;
}

/** A request to the front, answered with its exact bytes. */
async function raw(path: string, headers: Record<string, string> = {}, body?: string | Uint8Array) {
  const res = await fetch(discovery.url + path, body === undefined ? { headers } : { method: "POST", headers, body: typeof body === "string" ? body : new Uint8Array(body) });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

function lookupColonyProto(meshId: string): Uint8Array {
  return toBinary(discoveryPb.LookupColonyRequestSchema, create(discoveryPb.LookupColonyRequestSchema, { meshId }));
}

/** A RegisterColony request in Connect JSON, signed now by `identity`. */
async function signedColonyRegistration(fields: ColonyRegistrationFields, identity: IdentityKey) {
  const signature = await sign("colony-registration", colonyFieldsJson(fields), identity);
  return toJson(
    discoveryPb.RegisterColonyRequestSchema,
    create(discoveryPb.RegisterColonyRequestSchema, { ...fields, endpoints: [...fields.endpoints], signature: create(discoveryPb.SignatureSchema, signature) }),
  );
}

describe("answer cache of the self-hosted front", () => {
  it("answers a repeated lookup from the front with the worker's bytes and the registration's expiry", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const registered = await discoveryClient(discovery.url).registerColony(colonyFields(meshId), identity);
    const expiresAtMs = Number(registered.expiresAt!.seconds) * 1000 + Math.round(registered.expiresAt!.nanos / 1e6);

    const before = hits();
    const first = await connectJsonLookup(meshId);
    const second = await connectJsonLookup(meshId);
    expect(hits() - before).toBe(1);
    expect(second.status).toBe(200);
    expect(second.text).toBe(first.text);
    expect(JSON.parse(second.text)).toMatchObject({ meshId, connectPort: 9000 });
    expect(Number(second.headers.get("coral-expires-at-ms"))).toBe(expiresAtMs);
    expect(second.headers.get("content-type")).toBe(first.headers.get("content-type"));
    expect(second.headers.get("date")).not.toBeNull();

    // The binary encoding and the REST path are kept apart from the JSON answer.
    const binary = discoveryClient(discovery.url, true);
    expect((await binary.lookupColony(meshId, { pinnedKey: identity.publicKey })).connectPort).toBe(9000);
    const binaryHit = hits();
    expect((await binary.lookupColony(meshId, { pinnedKey: identity.publicKey })).connectPort).toBe(9000);
    expect(hits()).toBe(binaryHit + 1);
    const rest = async () => (await fetch(`${discovery.url}/v1/mesh/${meshId}/colony`)).json() as Promise<Record<string, unknown>>;
    expect((await rest()).connect_port).toBe(9000);
    expect((await rest()).connect_port).toBe(9000);
    expect(hits()).toBe(binaryHit + 2);
  });

  it("shows a re-registration at once, over Connect or REST, in every encoding", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const json = discoveryClient(discovery.url);
    const binary = discoveryClient(discovery.url, true);
    const restPort = async () => ((await (await fetch(`${discovery.url}/v1/mesh/${meshId}/colony`)).json()) as { connect_port: number }).connect_port;
    const ports = async () => [
      (await json.lookupColony(meshId)).connectPort,
      (await binary.lookupColony(meshId)).connectPort,
      await restPort(),
    ];

    await json.registerColony(colonyFields(meshId, { connectPort: 9001 }), identity);
    await ports();
    expect(await ports()).toEqual([9001, 9001, 9001]); // the second round came from the cache
    await json.registerColony(colonyFields(meshId, { connectPort: 9002 }), identity);
    expect(await ports()).toEqual([9002, 9002, 9002]);

    // A mesh that is being looked up has its answers asked for again after a
    // registration, so its next lookups are hits that show the registration.
    const fills = discovery.server.answerCacheStats()!.fills;
    await json.registerColony(colonyFields(meshId, { connectPort: 9004 }), identity);
    await waitFor("the front to refresh the three dropped answers", () => discovery.server.answerCacheStats()!.fills >= fills + 3 || undefined);
    const before = hits();
    expect(await ports()).toEqual([9004, 9004, 9004]);
    expect(hits() - before).toBe(3);
    expect(await restRegister(colonyFields(meshId, { connectPort: 9003 }), identity)).toBe(200);
    expect(await ports()).toEqual([9003, 9003, 9003]);
  });

  it("shows an agent's re-registration at once", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const client = discoveryClient(discovery.url, true);
    const agent = (endpoint: string) => ({ meshId, agentId: "api-1", pubkey: randomWireguardKey(), endpoints: [endpoint], metadata: {} });
    // Agent registrations are signed by the mesh's colony.
    await client.registerColony(colonyFields(meshId), identity);
    await client.registerAgent(agent("203.0.113.1:51820"), identity);
    expect((await client.lookupAgent(meshId, "api-1")).endpoints).toEqual(["203.0.113.1:51820"]);
    expect((await client.lookupAgent(meshId, "api-1")).endpoints).toEqual(["203.0.113.1:51820"]);
    await client.registerAgent(agent("203.0.113.2:51820"), identity);
    expect((await client.lookupAgent(meshId, "api-1")).endpoints).toEqual(["203.0.113.2:51820"]);
    // Signed by another identity: refused, and the pinned registration keeps serving.
    await expect(client.registerAgent(agent("203.0.113.3:51820"), await generateIdentityKey())).rejects.toThrow(/permission|pinned/i);
    expect((await client.lookupAgent(meshId, "api-1")).endpoints).toEqual(["203.0.113.2:51820"]);
  });

  it("never serves a lookup racing a re-registration an answer older than that registration", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const client = discoveryClient(discovery.url);
    await client.registerColony(colonyFields(meshId, { connectPort: 10_000 }), identity);
    for (let round = 1; round <= 15; round++) {
      const port = 10_000 + round;
      // Lookups in flight before, during and after the registration fill the cache as they can.
      const lookups = Array.from({ length: 8 }, () => connectJsonLookup(meshId));
      await client.registerColony(colonyFields(meshId, { connectPort: port }), identity);
      await Promise.all(lookups);
      const after = await Promise.all(Array.from({ length: 3 }, () => connectJsonLookup(meshId)));
      expect(after.map((a) => (JSON.parse(a.text) as { connectPort: number }).connectPort)).toEqual([port, port, port]);
    }
  });

  it("updates kept answers on a refresh to exactly what the worker answers, without asking it again", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const fields = colonyFields(meshId);
    const client = discoveryClient(discovery.url);
    const agent = { meshId, agentId: "api-1", pubkey: randomWireguardKey(), endpoints: ["203.0.113.9:51820"], metadata: {} };
    await client.registerColony(fields, identity);
    await client.registerAgent(agent, identity);
    // Each lookup in three encodings; `spelling` makes a request the front has
    // not kept (the worker ignores the difference), to read the worker's own answer.
    const lookups = (spelling: boolean) => [
      raw(lookupPath, { "content-type": "application/json" }, spelling ? `{ "meshId": "${meshId}" }` : JSON.stringify({ meshId })),
      raw(lookupPath, { "content-type": "application/proto", ...(spelling ? { "accept-encoding": "identity" } : {}) }, lookupColonyProto(meshId)),
      raw(`/v1/mesh/${meshId}/colony${spelling ? "?fresh" : ""}`),
      raw(`/v1/mesh/${meshId}/agents/api-1${spelling ? "?fresh" : ""}`),
    ];
    await Promise.all(lookups(false));
    const kept = await Promise.all(lookups(false));

    const stats = discovery.server.answerCacheStats()!;
    await sleep(2); // a new signature timestamp
    const refreshed = await fetch(discovery.url + "/coral.discovery.v1.DiscoveryService/RegisterColony", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(await signedColonyRegistration(fields, identity)),
    });
    const { expiresAt } = (await refreshed.json()) as { expiresAt: string };
    expect(refreshed.status).toBe(200);
    expect(refreshed.headers.get("coral-refreshed")).toBeNull(); // for the front only
    const expiresAtMs = Date.parse(expiresAt);

    const after = await Promise.all(lookups(false));
    const worker = await Promise.all(lookups(true));
    const now = discovery.server.answerCacheStats()!;
    expect(now.restored - stats.restored).toBe(4);
    expect(now.hits - stats.hits).toBe(4); // the four kept answers, updated: no workerd round trip
    expect(now.fills - stats.fills).toBe(4); // the worker's own answers, asked for by the other spellings
    for (const [i, answer] of after.entries()) {
      expect(answer.status).toBe(200);
      expect(answer.body.equals(worker[i]!.body)).toBe(true);
      expect(answer.headers.get("content-length")).toBe(String(answer.body.byteLength));
    }
    // The colony's answers show the refresh; the agent's answer is unchanged.
    for (const i of [0, 1, 2]) {
      expect(after[i]!.body.equals(kept[i]!.body)).toBe(false);
      expect(Number(after[i]!.headers.get("coral-expires-at-ms"))).toBe(expiresAtMs);
    }
    expect(JSON.parse(after[0]!.body.toString()).expiresAt).toBe(expiresAt);
    expect(after[3]!.body.equals(kept[3]!.body)).toBe(true);

    // An agent's refresh updates its answer and puts the colony's back as it was.
    const beforeAgent = discovery.server.answerCacheStats()!;
    await sleep(2);
    await client.registerAgent(agent, identity);
    const agentAfter = await Promise.all(lookups(false));
    const agentWorker = await Promise.all(lookups(true));
    for (const [i, answer] of agentAfter.entries()) expect(answer.body.equals(agentWorker[i]!.body)).toBe(true);
    expect(agentAfter[3]!.body.equals(after[3]!.body)).toBe(false);
    expect(agentAfter[0]!.body.equals(after[0]!.body)).toBe(true);
    expect(discovery.server.answerCacheStats()!.restored - beforeAgent.restored).toBe(8); // both spellings of all four

    // A refresh over REST updates them the same way.
    const beforeRest = discovery.server.answerCacheStats()!;
    await sleep(2);
    expect(await restRegister(fields, identity)).toBe(200);
    const restAfter = await Promise.all(lookups(false));
    const restWorker = await Promise.all(lookups(true));
    for (const [i, answer] of restAfter.entries()) expect(answer.body.equals(restWorker[i]!.body)).toBe(true);
    expect(restAfter[0]!.body.equals(agentAfter[0]!.body)).toBe(false);
    expect(discovery.server.answerCacheStats()!.restored - beforeRest.restored).toBe(8);
  });

  it("never serves a refreshed answer past the refresh's expiry", async () => {
    await using short = await startTestDiscovery({ ttlSeconds: 2, cleanupIntervalSeconds: 60 });
    const client = discoveryClient(short.url);
    const meshId = uniqueMeshId();
    const fields = colonyFields(meshId);
    const identity = await generateIdentityKey();
    await client.registerColony(fields, identity);
    await client.lookupColony(meshId);
    await sleep(1_000);
    const refreshed = await client.registerColony(fields, identity);
    const expiresAtMs = Number(refreshed.expiresAt!.seconds) * 1000 + refreshed.expiresAt!.nanos / 1e6;
    const before = hits(short);
    expect((await client.lookupColony(meshId)).expiresAt).toEqual(refreshed.expiresAt);
    expect(hits(short)).toBe(before + 1);
    expect(short.server.answerCacheStats()!.restored).toBe(1);
    await waitFor("the refreshed TTL to pass", () => Date.now() > expiresAtMs + 20 || undefined);
    await expect(client.lookupColony(meshId)).rejects.toBeInstanceOf(ColonyNotFoundError);
    expect(hits(short)).toBe(before + 1);
  });

  it("never serves a kept answer past the registration's expiry, even while the alarm is late", async () => {
    await using short = await startTestDiscovery({ ttlSeconds: 2, cleanupIntervalSeconds: 60 });
    const client = discoveryClient(short.url);
    const meshId = uniqueMeshId();
    const registered = await client.registerColony(colonyFields(meshId), await generateIdentityKey());
    const expiresAtMs = Number(registered.expiresAt!.seconds) * 1000 + registered.expiresAt!.nanos / 1e6;
    await client.lookupColony(meshId);
    await client.lookupColony(meshId);
    expect(hits(short)).toBe(1);
    await waitFor("the TTL to pass", () => Date.now() > expiresAtMs + 20 || undefined);
    await expect(client.lookupColony(meshId)).rejects.toBeInstanceOf(ColonyNotFoundError);
    expect(hits(short)).toBe(1);
  });

  it("can be turned off", async () => {
    await using uncached = await startTestDiscovery({ answerCacheEntries: 0 });
    const client = discoveryClient(uncached.url);
    const meshId = uniqueMeshId();
    await client.registerColony(colonyFields(meshId, { connectPort: 9100 }), await generateIdentityKey());
    expect((await client.lookupColony(meshId)).connectPort).toBe(9100);
    expect((await client.lookupColony(meshId)).connectPort).toBe(9100);
    expect(uncached.server.answerCacheStats()).toBeUndefined();
  });
});
