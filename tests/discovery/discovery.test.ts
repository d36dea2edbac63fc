// Discovery against the real worker in workerd (Miniflare), through the
// generic Connect client (JSON and binary), the REST API and raw HTTP.
import { getEventListeners } from "node:events";
import http from "node:http";
import { create, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import {
  ColonyNotFoundError,
  DiscoveryClient,
  DiscoveryService,
  DiscoveryUnreachableError,
  UnverifiedAnswerError,
  discoveryPb as pb,
  resolveEndpoints,
  sign,
  colonyFieldsJson,
} from "@coral/proto";
import { createLocalJWKSet, jwtVerify } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  colonyFields,
  discoveryClient,
  generateIdentityKey,
  randomWireguardKey,
  restColonyRegistration,
  startTestDiscovery,
  transport,
  uniqueMeshId,
  type TestDiscovery,
} from "../helpers/discovery.ts";
import { rejection, thrown } from "../helpers/errors.ts";
import { waitFor } from "../helpers/wait.ts";

let discovery: TestDiscovery;

beforeAll(async () => {
  discovery = await startTestDiscovery({ ttlSeconds: 300 });
});
afterAll(async () => {
  await discovery?.[Symbol.asyncDispose]();
});

async function postJson(url: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe("colony registration and lookup", () => {
  it.each([
    ["JSON", false],
    ["binary", true],
  ])("registers and looks up a colony over Connect %s", async (_name, binary) => {
    const client = discoveryClient(discovery.url, binary);
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const fields = colonyFields(meshId, {
      publicEndpoint: { url: "https://colony.example.com:9443", caCertSha256: "ab".repeat(32) },
    });
    const registered = await client.registerColony(fields, identity);
    expect(registered.success).toBe(true);
    expect(registered.ttl).toBe(300);
    expect(registered.observedEndpoint).toBe("127.0.0.1");

    const answer = await client.lookupColony(meshId, { pinnedKey: identity.publicKey });
    expect(answer.pubkey).toBe(fields.pubkey);
    expect(answer.endpoints).toEqual(fields.endpoints);
    expect(resolveEndpoints(answer)).toEqual(["203.0.113.42:41820", "127.0.0.1:41820", "[2001:db8::7]:41820"]);
    expect(answer.meshIpv4).toBe("10.42.0.1");
    expect(answer.meshIpv6).toBe("fd42::1");
    expect(answer.connectPort).toBe(9000);
    expect(answer.metadata).toEqual({ application: "shop", environment: "dev" });
    expect(answer.publicEndpoint?.url).toBe("https://colony.example.com:9443");
    expect(answer.publicEndpoint?.caCertSha256).toBe("ab".repeat(32));
    expect(answer.signature?.identityPubkey).toBe(identity.publicKey);
    expect(answer.observedEndpoint).toBe("127.0.0.1");
    const lastSeenMs = Number(answer.lastSeen!.seconds) * 1000;
    expect(Math.abs(lastSeenMs - Date.now())).toBeLessThan(60_000);
    expect(Number(answer.expiresAt!.seconds) - Number(answer.lastSeen!.seconds)).toBe(300);
  });

  it("answers the seed's curl shapes on the Connect JSON path", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    await discoveryClient(discovery.url).registerColony(colonyFields(meshId), identity);
    const { status, body } = await postJson(`${discovery.url}/coral.discovery.v1.DiscoveryService/LookupColony`, { mesh_id: meshId });
    expect(status).toBe(200);
    expect(body.meshId).toBe(meshId);
    expect(body.meshIpv4).toBe("10.42.0.1");
    expect(body.connectPort).toBe(9000);
    expect(typeof body.lastSeen).toBe("string");
  });

  it("refreshes the TTL when the colony registers again", async () => {
    const client = discoveryClient(discovery.url);
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const first = await client.registerColony(colonyFields(meshId), identity);
    await waitFor("the clock to move a second", () => Date.now() >= Number(first.expiresAt!.seconds) * 1000 - 299_000 + 1000 || undefined);
    const second = await client.registerColony(colonyFields(meshId), identity);
    expect(Number(second.expiresAt!.seconds)).toBeGreaterThan(Number(first.expiresAt!.seconds));
    const answer = await client.lookupColony(meshId);
    expect(answer.expiresAt!.seconds).toBe(second.expiresAt!.seconds);
  });

  it("says colony not found for an unknown mesh", async () => {
    const meshId = uniqueMeshId("nobody");
    await expect(discoveryClient(discovery.url).lookupColony(meshId)).rejects.toThrow(new ColonyNotFoundError(meshId));
    const { status, body } = await postJson(`${discovery.url}/coral.discovery.v1.DiscoveryService/LookupColony`, { meshId });
    expect(status).toBe(404);
    expect(body).toEqual({ code: "not_found", message: `colony not found: ${meshId}` });
  });
});

describe("signed registrations", () => {
  it("refuses a re-registration signed by another key and keeps serving the pinned one", async () => {
    const client = discoveryClient(discovery.url);
    const owner = await generateIdentityKey();
    const intruder = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const genuine = colonyFields(meshId);
    await client.registerColony(genuine, owner);

    const forged = colonyFields(meshId, { endpoints: ["198.51.100.66:41820"] });
    const err = await rejection(client.registerColony(forged, intruder));
    expect(err).toBeInstanceOf(ConnectError);
    expect((err as ConnectError).code).toBe(Code.PermissionDenied);
    expect((err as ConnectError).rawMessage).toMatch(/pinned to another identity key/);

    const answer = await client.lookupColony(meshId, { pinnedKey: owner.publicKey });
    expect(answer.endpoints).toEqual(genuine.endpoints);
    expect(answer.signature?.identityPubkey).toBe(owner.publicKey);
  });

  it("refuses a replayed registration", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const fields = colonyFields(meshId);
    const signature = await sign("colony-registration", colonyFieldsJson(fields), identity);
    const raw = createClient(DiscoveryService, transport(discovery.url));
    const request = { ...fields, endpoints: [...fields.endpoints], metadata: { ...fields.metadata }, signature };
    await raw.registerColony(request);
    const replay = await rejection(raw.registerColony(request));
    expect((replay as ConnectError).code).toBe(Code.PermissionDenied);
    expect((replay as ConnectError).rawMessage).toMatch(/not newer than the last accepted one/);
  });

  it("refuses a signature over other content and one outside the replay window", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const fields = colonyFields(meshId);
    const raw = createClient(DiscoveryService, transport(discovery.url));
    const signed = await sign("colony-registration", colonyFieldsJson(fields), identity);
    const tampered = await rejection(raw
      .registerColony({ ...fields, endpoints: ["198.51.100.1:1"], metadata: { ...fields.metadata }, signature: signed })
      );
    expect((tampered as ConnectError).code).toBe(Code.PermissionDenied);
    expect((tampered as ConnectError).rawMessage).toMatch(/does not verify/);

    const stale = await sign("colony-registration", colonyFieldsJson(fields), identity, BigInt(Date.now() - 3_600_000));
    const old = await rejection(raw
      .registerColony({ ...fields, endpoints: [...fields.endpoints], metadata: { ...fields.metadata }, signature: stale })
      );
    expect((old as ConnectError).code).toBe(Code.PermissionDenied);
    expect((old as ConnectError).rawMessage).toMatch(/behind discovery's clock/);
  });

  it("lets the client refuse a tampered lookup answer", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    await discoveryClient(discovery.url).registerColony(colonyFields(meshId), identity);

    // A man in the middle (a real HTTP proxy) that rewrites the endpoints.
    const upstream = new URL(discovery.url);
    const mitm = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        const r = await fetch(new URL(req.url!, upstream), {
          method: req.method,
          headers: { "content-type": req.headers["content-type"] ?? "application/json" },
          body: Buffer.concat(chunks),
        });
        const body = (await r.json()) as { endpoints?: string[] };
        if (body.endpoints) body.endpoints = ["198.51.100.66:41820"];
        res.writeHead(r.status, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      });
    });
    await new Promise<void>((done) => mitm.listen(0, "127.0.0.1", done));
    const mitmUrl = `http://127.0.0.1:${(mitm.address() as { port: number }).port}`;
    try {
      const viaMitm = discoveryClient(mitmUrl);
      const tampered = await thrown(viaMitm.lookupColony(meshId, { pinnedKey: identity.publicKey }));
      expect(tampered).toBeInstanceOf(UnverifiedAnswerError);
      expect(String(tampered)).toMatch(/does not match its signature/);
      // Without a pinned key the client cannot tell; that is why join tokens carry one.
      const unchecked = await viaMitm.lookupColony(meshId);
      expect(unchecked.endpoints).toEqual(["198.51.100.66:41820"]);
      const other = await generateIdentityKey();
      const wrongPin = await thrown(discoveryClient(discovery.url).lookupColony(meshId, { pinnedKey: other.publicKey }));
      expect(wrongPin).toBeInstanceOf(UnverifiedAnswerError);
      expect(String(wrongPin)).toMatch(/not signed by the pinned key/);
    } finally {
      mitm.close();
    }
  });
});

describe("agents", () => {
  it("registers and looks up an agent signed by its colony's key, verified against that key", async () => {
    const client = discoveryClient(discovery.url, true);
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    await client.registerColony(colonyFields(meshId), identity);
    const fields = { meshId, agentId: "api-1", pubkey: randomWireguardKey(), endpoints: [":51820"], metadata: { component: "api" } };
    const registered = await client.registerAgent(fields, identity);
    expect(registered.ttl).toBe(300);
    const answer = await client.lookupAgent(meshId, "api-1", { pinnedKey: identity.publicKey });
    expect(answer.pubkey).toBe(fields.pubkey);
    expect(answer.metadata).toEqual({ component: "api" });
    expect(resolveEndpoints(answer)).toEqual(["127.0.0.1:51820"]);
    const missing = await thrown(client.lookupAgent(meshId, "api-2"));
    expect(String(missing)).toMatch(/agent not found: api-2/);
  });

  it("takes agent registrations only signed by the key the mesh's colony pinned", async () => {
    const client = discoveryClient(discovery.url);
    const meshId = uniqueMeshId();
    const fields = { meshId, agentId: "worker", pubkey: randomWireguardKey(), endpoints: [], metadata: {} };
    const noColony = await rejection(client.registerAgent(fields, await generateIdentityKey()));
    expect(noColony.code).toBe(Code.FailedPrecondition);
    expect(noColony.rawMessage).toMatch(/has no registered colony; its colony registers first and signs its agents' registrations/);
    const colony = await generateIdentityKey();
    await client.registerColony(colonyFields(meshId), colony);
    const stranger = await rejection(client.registerAgent(fields, await generateIdentityKey()));
    expect(stranger.code).toBe(Code.PermissionDenied);
    expect(stranger.rawMessage).toMatch(/must be signed by the identity key its colony pinned/);
    expect((await client.registerAgent(fields, colony)).success).toBe(true);
    expect((await client.lookupAgent(meshId, "worker", { pinnedKey: colony.publicKey })).agentId).toBe("worker");
  });
});

describe("REST API", () => {
  it("registers a colony and an agent and looks them up", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const fields = colonyFields(meshId, { endpoints: ["203.0.113.42:41820"] });
    const reg = await postJson(`${discovery.url}/v1/mesh/${meshId}/register`, await restColonyRegistration(fields, identity));
    expect(reg.status).toBe(200);
    expect(reg.body.ok).toBe(true);
    expect(reg.body.ttl).toBe(300);
    expect(reg.body.observed_endpoint).toBe("127.0.0.1");

    const res = await fetch(`${discovery.url}/v1/mesh/${meshId}/colony`);
    const colony = (await res.json()) as Record<string, unknown>;
    expect(res.status).toBe(200);
    expect(colony.pubkey).toBe(fields.pubkey);
    expect(colony.endpoints).toEqual(["203.0.113.42:41820"]);
    expect(typeof colony.last_seen).toBe("string");

    const agent = { meshId, agentId: "db", pubkey: randomWireguardKey(), endpoints: ["10.0.0.5:51820"], metadata: {} };
    const { agentFieldsJson } = await import("@coral/proto");
    // Agents are registered by their colony, with its key.
    const asig = await sign("agent-registration", agentFieldsJson(agent), identity);
    const areg = await postJson(`${discovery.url}/v1/mesh/${meshId}/register`, {
      type: "agent",
      agent_id: "db",
      pubkey: agent.pubkey,
      endpoints: agent.endpoints,
      signature: { identity_pubkey: asig.identityPubkey, signed_at_ms: asig.signedAtMs.toString(), signature: asig.signature },
    });
    expect(areg.status).toBe(200);
    const ares = await fetch(`${discovery.url}/v1/mesh/${meshId}/agents/db`);
    expect(((await ares.json()) as Record<string, unknown>).endpoints).toEqual(["10.0.0.5:51820"]);
  });

  it("answers GET /health as plain HTTP and 404 for unknown colonies", async () => {
    const health = await fetch(`${discovery.url}/health`);
    expect(health.status).toBe(200);
    expect(((await health.json()) as Record<string, unknown>).status).toBe("ok");
    const missing = await fetch(`${discovery.url}/v1/mesh/no-such-mesh/colony`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ code: "not_found", message: "colony not found: no-such-mesh" });
  });
});

describe("bad input", () => {
  const good = () => ({
    meshId: "bad-input-mesh",
    pubkey: randomWireguardKey(),
    endpoints: ["203.0.113.42:41820"],
    metadata: {},
    signature: { identityPubkey: randomWireguardKey(), signedAtMs: String(Date.now()), signature: btoa("x".repeat(64)) },
  });
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ["an empty mesh id", { meshId: "" }, /mesh_id: is required/],
    ["upper case in a mesh id", { meshId: "My-Shop" }, /mesh_id: .*lowercase/],
    ["a mesh id that is too long", { meshId: "a".repeat(64) }, /mesh_id: must be 3-63 characters/],
    ["a mesh id with a slash", { meshId: "shop/dev" }, /mesh_id/],
    ["an endpoint without a port", { endpoints: ["203.0.113.42"] }, /endpoints\[0\]: .*has no port/],
    ["a port out of range", { endpoints: ["203.0.113.42:70000"] }, /endpoints\[0\]: port "70000"/],
    ["a bad IPv4 address", { endpoints: ["256.1.1.1:80"] }, /endpoints\[0\]: "256.1.1.1" is not an IPv4 address/],
    ["an IPv6 address without brackets", { endpoints: ["fd42::1:80"] }, /endpoints\[0\]: .*brackets/],
    ["a bad IPv6 address", { endpoints: ["[fd42:::1]:80"] }, /endpoints\[0\]: .*not an IPv6 address/],
    ["a bad hostname", { endpoints: ["-bad-.example.com:80"] }, /endpoints\[0\]: .*not a valid hostname/],
    ["too many endpoints", { endpoints: Array.from({ length: 17 }, (_, i) => `10.0.0.${i}:1`) }, /endpoints: at most 16/],
    ["a short WireGuard key", { pubkey: btoa("short") }, /pubkey: must be a base64 encoded 32-byte key/],
    ["too many metadata entries", { metadata: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, "v"])) }, /metadata: at most 32/],
    ["a metadata value that is too long", { metadata: { k: "v".repeat(257) } }, /metadata.k: values must be at most 256/],
    ["a bad mesh IPv4", { meshIpv4: "10.42.0.300" }, /mesh_ipv4: .*not an IPv4 address/],
    ["a bad connect port", { connectPort: 70000 }, /connect_port: must be a port/],
    ["a plain-http public endpoint", { publicEndpoint: { url: "http://x.example.com", caCertSha256: "ab".repeat(32) } }, /public_endpoint.url: must use https/],
    ["a missing signature", { signature: undefined }, /signature: is required/],
    ["an unknown field", { colour: "blue" }, /colour/],
  ];

  it.each(cases)("refuses %s with invalid_argument (Connect)", async (_name, change, message) => {
    const { status, body } = await postJson(`${discovery.url}/coral.discovery.v1.DiscoveryService/RegisterColony`, { ...good(), ...change });
    expect(status).toBe(400);
    expect(body.code).toBe("invalid_argument");
    expect(String(body.message)).toMatch(message);
  });

  it.each(cases.filter(([name]) => name !== "an unknown field" && !name.includes("mesh id")))(
    "refuses %s with invalid_argument (REST)",
    async (_name, change, message) => {
      const { meshId: _m, ...rest } = { ...good(), ...change };
      const { status, body } = await postJson(`${discovery.url}/v1/mesh/bad-input-mesh/register`, rest);
      expect(status).toBe(400);
      expect(body.code).toBe("invalid_argument");
      expect(String(body.message)).toMatch(message);
    },
  );

  it("refuses a body over 64 KiB, malformed JSON and a bad REST type", async () => {
    const big = await postJson(`${discovery.url}/coral.discovery.v1.DiscoveryService/RegisterColony`, { ...good(), metadata: { k: "x".repeat(70_000) } });
    expect(big.status).toBe(400);
    expect(big.body).toMatchObject({ code: "invalid_argument", message: expect.stringMatching(/limit is 65536 bytes/) });
    const junk = await postJson(`${discovery.url}/v1/mesh/bad-input-mesh/register`, "{not json");
    expect(junk.body).toEqual({ code: "invalid_argument", message: "body: is not valid JSON" });
    const type = await postJson(`${discovery.url}/v1/mesh/bad-input-mesh/register`, { type: "robot" });
    expect(type.body.message).toMatch(/type: must be "colony" or "agent"/);
    const mismatch = await postJson(`${discovery.url}/v1/mesh/bad-input-mesh/register`, { ...good(), mesh_id: "other-mesh" });
    expect(mismatch.body.message).toMatch(/mesh_id: body says "other-mesh" but the path says "bad-input-mesh"/);
  });

  it("refuses bad binary bodies and unknown methods with Connect codes", async () => {
    const res = await fetch(`${discovery.url}/coral.discovery.v1.DiscoveryService/RegisterColony`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: new Uint8Array([0xff, 0xff, 0xff]),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { code: string }).code).toBe("invalid_argument");
    const unknown = await postJson(`${discovery.url}/coral.discovery.v1.DiscoveryService/DropTables`, {});
    expect(unknown.status).toBe(404);
    expect(unknown.body).toEqual({ code: "not_found", message: "/coral.discovery.v1.DiscoveryService/DropTables is not a method of coral.discovery.v1.DiscoveryService" });
    const binaryOk = await fetch(`${discovery.url}/coral.discovery.v1.DiscoveryService/Health`, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: toBinary(pb.HealthRequestSchema, create(pb.HealthRequestSchema)),
    });
    expect(binaryOk.status).toBe(200);
    expect(binaryOk.headers.get("content-type")).toBe("application/proto");
  });
});

describe("registration answers", () => {
  // Plain Connect unary registrations are answered by the worker's own path
  // (connect-routes.ts); a connect-timeout-ms header sends the same request
  // through connect-es's generic handler. Both must answer alike.
  const path = "/coral.discovery.v1.DiscoveryService/RegisterColony";
  async function both(headers: Record<string, string>, body: () => Promise<string | Uint8Array> | string | Uint8Array) {
    const answers = [];
    const extras: Array<Record<string, string>> = [{}, { "connect-timeout-ms": "10000" }];
    for (const extra of extras) {
      const bytes = await body();
      const res = await fetch(discovery.url + path, { method: "POST", headers: { ...headers, ...extra }, body: typeof bytes === "string" ? bytes : new Uint8Array(bytes) });
      answers.push({ status: res.status, type: res.headers.get("content-type"), body: Buffer.from(await res.arrayBuffer()), refreshed: res.headers.get("coral-refreshed") });
    }
    return answers as [(typeof answers)[0], (typeof answers)[0]];
  }

  it("answers a plain Connect registration as connect-es's handler does, in JSON and binary, accepted or refused", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const fields = colonyFields(meshId);
    const request = async () =>
      create(pb.RegisterColonyRequestSchema, {
        ...fields,
        endpoints: [...fields.endpoints],
        signature: create(pb.SignatureSchema, await sign("colony-registration", colonyFieldsJson(fields), identity)),
      });
    const json = await both({ "content-type": "application/json" }, async () => JSON.stringify(toJson(pb.RegisterColonyRequestSchema, await request())));
    for (const a of json) {
      expect(a.status).toBe(200);
      expect(a.type).toBe("application/json");
      expect(a.refreshed).toBeNull();
    }
    expect(Object.keys(JSON.parse(json[0].body.toString()))).toEqual(Object.keys(JSON.parse(json[1].body.toString())));
    const binary = await both({ "content-type": "application/proto" }, async () => toBinary(pb.RegisterColonyRequestSchema, await request()));
    for (const a of binary) {
      expect(a.status).toBe(200);
      expect(a.type).toBe("application/proto");
      expect(fromBinary(pb.RegisterColonyResponseSchema, a.body).success).toBe(true);
    }
    const refusals: Array<[Record<string, string>, string | Uint8Array]> = [
      [{ "content-type": "application/json" }, JSON.stringify({ meshId, pubkey: "short" })],
      [{ "content-type": "application/json" }, JSON.stringify({ meshId, colour: "blue" })],
      [{ "content-type": "application/json" }, "{not json"],
      [{ "content-type": "application/json; charset=utf-8" }, JSON.stringify({ meshId: "" })],
      [{ "content-type": "application/proto" }, new Uint8Array([0xff, 0xff, 0xff])],
      [{ "content-type": "application/proto" }, toBinary(pb.RegisterColonyRequestSchema, create(pb.RegisterColonyRequestSchema, { meshId: "Bad" }))],
    ];
    for (const [headers, body] of refusals) {
      const [fast, generic] = await both(headers, () => body);
      expect(fast.status).toBe(400);
      expect({ ...fast, body: fast.body.toString() }).toEqual({ ...generic, body: generic.body.toString() });
    }
    // Refused by the mesh's object (replayed: same signature twice).
    const replay = JSON.stringify(toJson(pb.RegisterColonyRequestSchema, await request()));
    const [first, again] = await both({ "content-type": "application/json" }, () => replay);
    expect(first.status).toBe(200);
    expect(again.status).toBe(403);
    const [fastAgain] = await both({ "content-type": "application/json" }, () => replay);
    expect(fastAgain.body.toString()).toBe(again.body.toString());
  });
});

describe("observed endpoints", () => {
  it("records the socket address and ignores a spoofed CF-Connecting-IP", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const fields = colonyFields(meshId);
    const sig = await sign("colony-registration", colonyFieldsJson(fields), identity);
    const body = JSON.stringify({
      pubkey: fields.pubkey,
      endpoints: fields.endpoints,
      signature: { identity_pubkey: sig.identityPubkey, signed_at_ms: sig.signedAtMs.toString(), signature: sig.signature },
      mesh_ipv4: fields.meshIpv4,
      mesh_ipv6: fields.meshIpv6,
      connect_port: fields.connectPort,
      metadata: fields.metadata,
    });
    const url = new URL(`${discovery.url}/v1/mesh/${meshId}/register`);
    const answer = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = http.request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: "POST",
          localAddress: "127.0.0.7",
          headers: { "content-type": "application/json", "cf-connecting-ip": "6.6.6.6", "mf-cf-blob": "{}" },
        },
        (res) => {
          let text = "";
          res.on("data", (c: Buffer) => (text += c.toString()));
          res.on("end", () => resolve(JSON.parse(text) as Record<string, unknown>));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(answer.observed_endpoint).toBe("127.0.0.7");
    const lookup = await discoveryClient(discovery.url).lookupColony(meshId, { pinnedKey: identity.publicKey });
    expect(lookup.observedEndpoint).toBe("127.0.0.7");
    expect(resolveEndpoints(lookup)).toContain("127.0.0.7:41820");
  });
});

describe("bootstrap tokens", () => {
  it("issues a token that verifies against the JWKS and can be redeemed once", async () => {
    const client = discoveryClient(discovery.url);
    const colony = await generateIdentityKey();
    const meshId = uniqueMeshId();
    await client.registerColony(colonyFields(meshId), colony);
    const issued = await client.createBootstrapToken({ meshId, agentId: "api-1", ttlSeconds: 120 }, colony);
    expect(issued.token.split(".")).toHaveLength(3);

    const jwks = (await (await fetch(`${discovery.url}/.well-known/jwks.json`)).json()) as { keys: Array<Record<string, string>> };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA" });
    expect(jwks.keys[0]).not.toHaveProperty("d");
    const { payload, protectedHeader } = await jwtVerify(issued.token, createLocalJWKSet(jwks as never), {
      issuer: "coral-discovery",
      audience: "coral-colony",
    });
    expect(protectedHeader.alg).toBe("EdDSA");
    expect(payload).toMatchObject({ colony_id: meshId, agent_id: "api-1", intent: "register", jti: issued.tokenId });
    expect(payload.exp! - payload.iat!).toBe(120);

    const redeemed = await client.redeemBootstrapToken(issued.token);
    expect(redeemed.meshId).toBe(meshId);
    expect(redeemed.agentId).toBe("api-1");
    expect(redeemed.tokenId).toBe(issued.tokenId);
    const again = await rejection(client.redeemBootstrapToken(issued.token));
    expect(again.code).toBe(Code.PermissionDenied);
    expect(again.rawMessage).toMatch(/already used/);
  });

  it("refuses to issue a token to anyone but the pinned colony, and refuses forged tokens", async () => {
    const client = discoveryClient(discovery.url);
    const meshId = uniqueMeshId();
    await client.registerColony(colonyFields(meshId), await generateIdentityKey());
    const err = await rejection(client.createBootstrapToken({ meshId, agentId: "x" }, await generateIdentityKey()));
    expect(err.code).toBe(Code.PermissionDenied);
    const noColony = await rejection(client.createBootstrapToken({ meshId: uniqueMeshId(), agentId: "x" }, await generateIdentityKey()));
    expect(noColony.code).toBe(Code.FailedPrecondition);
    const forged = await rejection(client.redeemBootstrapToken("eyJhbGciOiJFZERTQSJ9.eyJqdGkiOiJ4In0.c2lnbmF0dXJl"));
    expect(forged.code).toBe(Code.PermissionDenied);
    expect(forged.rawMessage).toMatch(/does not verify/);
  });
});

describe("client errors", () => {
  it("says discovery is not reachable when nothing listens", async () => {
    const server = http.createServer();
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((done) => server.close(() => done()));
    const url = `http://127.0.0.1:${port}`;
    const client = new DiscoveryClient({ transport: transport(url), url, retry: { attempts: 2, baseDelayMs: 10 } });
    const err = await thrown(client.lookupColony("my-shop-dev-a1b2c3"));
    expect(err).toBeInstanceOf(DiscoveryUnreachableError);
    expect(String(err)).toContain(`discovery service not reachable at ${url}`);

    // A caller's long-lived signal (the colony's registration loop) keeps no
    // abort listener from the retry waits once a call is over.
    const stop = new AbortController();
    const retrying = new DiscoveryClient({ transport: transport(url), url, retry: { attempts: 4, baseDelayMs: 5 } });
    for (let i = 0; i < 4; i++) expect(await thrown(retrying.lookupColony("my-shop-dev-a1b2c3", { signal: stop.signal }))).toBeInstanceOf(DiscoveryUnreachableError);
    expect(getEventListeners(stop.signal, "abort")).toHaveLength(0);
  });
});
