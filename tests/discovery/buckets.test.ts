// Meshes that share a Durable Object ("mesh buckets", self-hosted), against
// the real worker in workerd: a small bucket count forces meshes to collide,
// and each must behave as if it had the object to itself.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  BootstrapIntent,
  DiscoveryClient,
  DiscoveryService,
  agentFieldsJson,
  bootstrapRequestJson,
  colonyFieldsJson,
  sign,
  type ColonyRegistrationFields,
  type IdentityKey,
} from "@coral/proto";
import {
  MeshBucketsError,
  defaultMeshBuckets,
  meshBucketOf,
  shardOf,
  shardStorageDir,
  startDiscoveryServer,
} from "@coral/discovery-worker";
import { SignJWT, importJWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  colonyFields,
  discoveryClient,
  generateIdentityKey,
  randomWireguardKey,
  startTestDiscovery,
  transport,
  uniqueMeshId,
  type TestDiscovery,
} from "../helpers/discovery.ts";
import { rejection } from "../helpers/errors.ts";
import { waitFor } from "../helpers/wait.ts";
import { workerInMiniflare } from "./worker-in-miniflare.ts";

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "coral-discovery-buckets-"));
  dirs.push(dir);
  return dir;
}
afterAll(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** `count` fresh mesh ids in bucket `bucket` of shard `shard`. */
function meshesIn(count: number, layout: { shards: number; meshBuckets: number; shard?: number; bucket?: number }): string[] {
  const ids: string[] = [];
  while (ids.length < count) {
    const id = uniqueMeshId("bucket");
    if (shardOf(id, layout.shards) === (layout.shard ?? 0) && meshBucketOf(id, layout.meshBuckets) === (layout.bucket ?? 0)) ids.push(id);
  }
  return ids;
}

function agent(meshId: string, agentId: string) {
  return { meshId, agentId, pubkey: randomWireguardKey(), endpoints: ["10.0.0.5:51820"], metadata: {} };
}

/** A Connect RegisterColony request signed at `signedAtMs`, to send (and send again) as is. */
async function signedColonyRequest(fields: ColonyRegistrationFields, identity: IdentityKey, signedAtMs: bigint) {
  const signature = await sign("colony-registration", colonyFieldsJson(fields), identity, signedAtMs);
  return { ...fields, endpoints: [...fields.endpoints], metadata: { ...fields.metadata }, signature };
}

function expiresAtMs(t: { seconds: bigint; nanos: number } | undefined): number {
  return Number(t!.seconds) * 1000 + Math.floor(t!.nanos / 1e6);
}

describe("meshes that share a bucket", () => {
  let discovery: TestDiscovery;
  beforeAll(async () => {
    discovery = await startTestDiscovery({ ttlSeconds: 300, shards: 1, meshBuckets: 2 });
  });
  afterAll(async () => {
    await discovery?.[Symbol.asyncDispose]();
  });

  it("keeps each mesh's registrations, pins, agents and replay checks its own", async () => {
    expect(discovery.server.meshBuckets).toBe(2);
    const [a, b, c] = meshesIn(3, { shards: 1, meshBuckets: 2 }) as [string, string, string];
    const raw = createClient(DiscoveryService, transport(discovery.url));
    const client = discoveryClient(discovery.url);
    // One operator, one identity key, two meshes, the same millisecond: neither is a replay of the other.
    const owner = await generateIdentityKey();
    const signedAtMs = BigInt(Date.now());
    const fieldsA = colonyFields(a, { endpoints: ["203.0.113.1:41820"] });
    const fieldsB = colonyFields(b, { endpoints: ["203.0.113.2:41820"] });
    const requestA = await signedColonyRequest(fieldsA, owner, signedAtMs);
    expect((await raw.registerColony(requestA)).success).toBe(true);
    expect((await raw.registerColony(await signedColonyRequest(fieldsB, owner, signedAtMs))).success).toBe(true);
    const replay = await rejection(raw.registerColony(requestA));
    expect(replay.code).toBe(Code.PermissionDenied);
    expect(replay.rawMessage).toBe(
      `registration of mesh ${a} is not newer than the last accepted one (replayed or out of order); sign it again with a fresh timestamp`,
    );

    // A third mesh in the same bucket, pinned to another key.
    const stranger = await generateIdentityKey();
    await client.registerColony(colonyFields(c, { endpoints: ["203.0.113.3:41820"] }), stranger);
    expect((await client.lookupColony(a, { pinnedKey: owner.publicKey })).endpoints).toEqual(["203.0.113.1:41820"]);
    expect((await client.lookupColony(b, { pinnedKey: owner.publicKey })).endpoints).toEqual(["203.0.113.2:41820"]);
    expect((await client.lookupColony(c, { pinnedKey: stranger.publicKey })).endpoints).toEqual(["203.0.113.3:41820"]);
    const takeover = await rejection(client.registerColony(colonyFields(a), stranger));
    expect(takeover.code).toBe(Code.PermissionDenied);
    expect(takeover.rawMessage).toMatch(new RegExp(`^mesh ${a} is pinned to another identity key; the pinned registration keeps serving`));
    const intoC = await rejection(client.registerColony(colonyFields(c), owner));
    expect(intoC.code).toBe(Code.PermissionDenied);

    // The same agent id in every mesh, each signed by its own colony's key.
    const apiA = agent(a, "api");
    const apiB = agent(b, "api");
    await client.registerAgent(apiA, owner);
    await client.registerAgent(apiB, owner);
    const wrongColony = await rejection(client.registerAgent(agent(c, "api"), owner));
    expect(wrongColony.code).toBe(Code.PermissionDenied);
    expect(wrongColony.rawMessage).toBe(`agent registrations in mesh ${c} must be signed by the identity key its colony pinned`);
    expect((await client.lookupAgent(a, "api", { pinnedKey: owner.publicKey })).pubkey).toBe(apiA.pubkey);
    expect((await client.lookupAgent(b, "api", { pinnedKey: owner.publicKey })).pubkey).toBe(apiB.pubkey);
    await expect(client.lookupAgent(c, "api")).rejects.toThrow(/agent not found: api/);
    // An agent of a mesh whose colony never registered is refused, though its bucket holds other colonies.
    const [lonely] = meshesIn(1, { shards: 1, meshBuckets: 2 });
    const noColony = await rejection(client.registerAgent(agent(lonely!, "api"), owner));
    expect(noColony.code).toBe(Code.FailedPrecondition);
    expect(noColony.rawMessage).toMatch(new RegExp(`^mesh ${lonely} has no registered colony`));
    expect((await client.health()).registeredColonies).toBe(3);
  });

  it("keeps each mesh's bootstrap tokens and signed requests its own, across a restart", async () => {
    await using own = await startTestDiscovery({ ttlSeconds: 300, shards: 1, meshBuckets: 1 });
    const [a, b] = meshesIn(2, { shards: 1, meshBuckets: 1 }) as [string, string];
    const owner = await generateIdentityKey();
    const client = discoveryClient(own.url);
    await client.registerColony(colonyFields(a), owner);
    await client.registerColony(colonyFields(b), owner);
    const tokenA = await client.createBootstrapToken({ meshId: a, agentId: "api" }, owner);
    const tokenB = await client.createBootstrapToken({ meshId: b, agentId: "api" }, owner);
    expect((await client.redeemBootstrapToken(tokenA.token)).meshId).toBe(a);
    const again = await rejection(client.redeemBootstrapToken(tokenA.token));
    expect(again.rawMessage).toBe(`bootstrap token ${tokenA.tokenId} was already used; ask the colony for a new one`);

    // A signed CreateBootstrapToken request is good once, in its own mesh.
    const raw = createClient(DiscoveryService, transport(own.url));
    const fields = { meshId: b, agentId: "db", intent: BootstrapIntent.REGISTER, ttlSeconds: 600 };
    const signature = await sign("bootstrap-token-request", bootstrapRequestJson(fields), owner);
    await raw.createBootstrapToken({ ...fields, signature });
    const replayed = await rejection(raw.createBootstrapToken({ ...fields, signature }));
    expect(replayed.rawMessage).toBe("this signed request was already used (replayed); sign a new one with a fresh timestamp");

    await own.restart();
    const after = discoveryClient(own.url);
    expect((await rejection(after.redeemBootstrapToken(tokenA.token))).code).toBe(Code.PermissionDenied);
    expect((await rejection(createClient(DiscoveryService, transport(own.url)).createBootstrapToken({ ...fields, signature }))).code).toBe(
      Code.PermissionDenied,
    );
    expect((await after.redeemBootstrapToken(tokenB.token)).meshId).toBe(b);
    expect((await after.lookupColony(a, { pinnedKey: owner.publicKey })).meshId).toBe(a);
    expect((await after.health()).registeredColonies).toBe(2);
  });

  it("limits registrations per client address, whatever bucket its meshes share with others", async () => {
    await using own = await startTestDiscovery({ shards: 1, meshBuckets: 1, rateLimitPerMinute: 2 });
    const [a, b] = meshesIn(2, { shards: 1, meshBuckets: 1 }) as [string, string];
    const identity = await generateIdentityKey();
    const first = discoveryClient(own.url);
    const secondTransport = createConnectTransport({ baseUrl: own.url, httpVersion: "1.1", nodeOptions: { localAddress: "127.0.0.2" } });
    const second = new DiscoveryClient({ transport: secondTransport, url: own.url, retry: { attempts: 1, baseDelayMs: 10 } });
    await first.registerColony(colonyFields(a), identity);
    await first.registerColony(colonyFields(a), identity);
    const limited = await rejection(first.registerColony(colonyFields(a), identity));
    expect(limited.code).toBe(Code.ResourceExhausted);
    expect(limited.rawMessage).toMatch(/^too many registrations from 127\.0\.0\.1: the limit is 2 per minute/);
    const other = await second.registerColony(colonyFields(b), identity);
    expect(other.observedEndpoint).toBe("127.0.0.2");
    expect((await first.lookupColony(b)).observedEndpoint).toBe("127.0.0.2");
  });
});

describe("expiry in a bucket", () => {
  it("expires each mesh at its own deadline: the one alarm fires at the earliest, removes only that, and no lookup returns an expired entry", async () => {
    await using discovery = await startTestDiscovery({ ttlSeconds: 4, cleanupIntervalSeconds: 0, pinGraceSeconds: 3600, shards: 1, meshBuckets: 1 });
    const client = discoveryClient(discovery.url);
    const [a, b] = meshesIn(2, { shards: 1, meshBuckets: 1 }) as [string, string];
    const owner = await generateIdentityKey();
    const regA = await client.registerColony(colonyFields(a), owner);
    await client.registerAgent(agent(a, "api"), owner);
    const aExpiresAt = expiresAtMs(regA.expiresAt);
    await waitFor("two seconds to pass", () => Date.now() >= aExpiresAt - 2000 || undefined);
    const regB = await client.registerColony(colonyFields(b), owner);
    await client.registerAgent(agent(b, "api"), owner);
    const bExpiresAt = expiresAtMs(regB.expiresAt);
    expect(bExpiresAt - aExpiresAt).toBeGreaterThanOrEqual(2000);
    expect(await client.health()).toMatchObject({ registeredColonies: 2, registeredAgents: 2 });

    // Look both meshes up without pause until both expired; every answer must still have been live when asked.
    const stale: string[] = [];
    let answers = 0;
    // Set once Health has dropped a (read by the lookup loop meanwhile).
    const dropped: { aAtMs?: number } = {};
    let bFoundAfterADropped = false;
    const lookups = (async () => {
      while (Date.now() < bExpiresAt + 500) {
        for (const meshId of [a, b]) {
          const askedAtMs = Date.now();
          const found = await client.lookupColony(meshId).catch(() => undefined);
          if (!found) continue;
          answers++;
          if (expiresAtMs(found.expiresAt) <= askedAtMs) stale.push(`${meshId} expired at ${expiresAtMs(found.expiresAt)}, asked at ${askedAtMs}`);
          if (meshId === b && dropped.aAtMs !== undefined) bFoundAfterADropped = true;
        }
      }
    })();
    // Health drops a's colony and agent when the alarm runs at their deadlines (a's agent
    // registered a few ms after its colony, so a moment later), and keeps b's.
    await waitFor(
      "the alarms at a's deadlines",
      async () => {
        const h = await client.health();
        return h.registeredColonies === 1 && h.registeredAgents === 1 ? h : undefined;
      },
      { intervalMs: 50 },
    );
    dropped.aAtMs = Date.now();
    expect(dropped.aAtMs).toBeGreaterThanOrEqual(aExpiresAt);
    expect(dropped.aAtMs).toBeLessThan(bExpiresAt);
    await expect(client.lookupColony(a)).rejects.toThrow(`colony not found: ${a}`);
    await expect(client.lookupAgent(a, "api")).rejects.toThrow(/agent not found: api/);
    expect((await client.lookupAgent(b, "api")).meshId).toBe(b);
    // The alarm removed a's registration, not its pin.
    const claim = await rejection(client.registerColony(colonyFields(a), await generateIdentityKey()));
    expect(claim.rawMessage).toMatch(new RegExp(`^mesh ${a} is pinned to another identity key; its registration expired at `));

    const afterB = await waitFor("the alarm at b's deadline", async () => {
      const h = await client.health();
      return h.registeredColonies === 0 && h.registeredAgents === 0 ? h : undefined;
    });
    expect(afterB.status).toBe("ok");
    expect(Date.now()).toBeGreaterThanOrEqual(bExpiresAt);
    await lookups;
    expect(stale).toEqual([]);
    expect(answers).toBeGreaterThan(10);
    expect(bFoundAfterADropped).toBe(true);
    // Registering again after the purge is a new registration, counted again.
    await client.registerColony(colonyFields(b), owner);
    expect((await client.health()).registeredColonies).toBe(1);
  });
});

describe("Health with buckets", () => {
  it("sums every bucket of every shard, after a restart too", async () => {
    await using discovery = await startTestDiscovery({ ttlSeconds: 300, shards: 2, meshBuckets: 2 });
    const owner = await generateIdentityKey();
    const client = discoveryClient(discovery.url);
    let agents = 0;
    for (const shard of [0, 1])
      for (const bucket of [0, 1])
        for (const meshId of meshesIn(2, { shards: 2, meshBuckets: 2, shard, bucket })) {
          await client.registerColony(colonyFields(meshId), owner);
          for (let i = 0; i <= shard + bucket; i++, agents++) await client.registerAgent(agent(meshId, `agent-${i}`), owner);
          // A refresh changes no count.
          await client.registerColony(colonyFields(meshId), owner);
        }
    expect(agents).toBe(2 * (1 + 2 + 2 + 3));
    expect(await client.health()).toMatchObject({ status: "ok", registeredColonies: 8, registeredAgents: agents });
    const rest = (await (await fetch(`${discovery.url}/health`)).json()) as Record<string, unknown>;
    expect(rest).toMatchObject({ registered_colonies: 8, registered_agents: agents });
    await discovery.restart();
    expect(await discoveryClient(discovery.url).health()).toMatchObject({ registeredColonies: 8, registeredAgents: agents });
  });

  it("counts concurrent first registrations in one bucket exactly", async () => {
    await using discovery = await startTestDiscovery({ ttlSeconds: 300, shards: 1, meshBuckets: 1 });
    const owner = await generateIdentityKey();
    const client = discoveryClient(discovery.url);
    const meshIds = Array.from({ length: 40 }, () => uniqueMeshId("together"));
    await Promise.all(meshIds.map((meshId) => client.registerColony(colonyFields(meshId), owner)));
    // Each registration answered after a Directory report that includes it.
    expect((await client.health()).registeredColonies).toBe(40);
  });
});

describe("mesh bucket count", () => {
  it("records the count of a new data dir, keeps it, and refuses another", async () => {
    const dataDir = await tempDir();
    const defaulted = await startDiscoveryServer({ port: 0, dataDir: await tempDir() });
    expect(defaulted.meshBuckets).toBe(defaultMeshBuckets);
    await defaulted.close();

    const first = await startDiscoveryServer({ port: 0, dataDir, meshBuckets: 4, shards: 1 });
    const owner = await generateIdentityKey();
    const meshIds = [0, 1, 2, 3].flatMap((bucket) => meshesIn(1, { shards: 1, meshBuckets: 4, bucket }));
    for (const meshId of meshIds) await discoveryClient(first.url).registerColony(colonyFields(meshId), owner);
    await first.close();
    expect(JSON.parse(await readFile(join(dataDir, "shards.json"), "utf8"))).toMatchObject({ shards: 1, meshBuckets: 4 });

    const refused = await startDiscoveryServer({ port: 0, dataDir, meshBuckets: 8 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(MeshBucketsError);
    expect((refused as Error).message).toMatch(/keeps its meshes in 4 bucket\(s\) per shard; start with --mesh-buckets 4/);

    await using again = await startDiscoveryServer({ port: 0, dataDir });
    expect(again.meshBuckets).toBe(4);
    const client = discoveryClient(again.url);
    for (const meshId of meshIds) expect((await client.lookupColony(meshId, { pinnedKey: owner.publicKey })).meshId).toBe(meshId);
  });

  it.each([-1, 4097, 1.5])("refuses %d buckets with a message naming the range", async (meshBuckets) => {
    const refused = await startDiscoveryServer({ port: 0, dataDir: await tempDir(), meshBuckets }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(MeshBucketsError);
    expect((refused as Error).message).toBe(
      `mesh buckets must be a whole number from 0 (one Durable Object per mesh) to 4096 (got ${meshBuckets})`,
    );
  });

  it("the worker answers every request with the reason when MESH_BUCKETS is bad", async () => {
    const mf = await workerInMiniflare({ bindings: { MESH_BUCKETS: "lots" } });
    try {
      const res = await mf.dispatchFetch("http://discovery/coral.discovery.v1.DiscoveryService/LookupColony", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ meshId: "shop-dev-a1b2c3" }),
      });
      const reason = {
        code: "internal",
        message:
          'discovery is misconfigured: MESH_BUCKETS must be a whole number from 0 to 4096 (0: one Durable Object per mesh; N: meshes share N objects) (got "lots")',
      };
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual(reason);
      const health = await mf.dispatchFetch("http://discovery/health");
      expect(health.status).toBe(500);
      expect(await health.json()).toEqual(reason);
    } finally {
      await mf.dispose();
    }
  });
});

// The tables of a mesh's object as written before meshes could share one
// (commit a0684d5 and earlier): hosted objects on Cloudflare and self-hosted
// data dirs from then hold exactly these.
const oneMeshWriter = `
import { DurableObject } from "cloudflare:workers";
export class MeshRegistry extends DurableObject {
  write(rows) {
    const sql = this.ctx.storage.sql;
    sql.exec("CREATE TABLE IF NOT EXISTS registrations (key TEXT PRIMARY KEY, record TEXT NOT NULL, last_seen_ms INTEGER NOT NULL, expires_at_ms INTEGER NOT NULL)");
    sql.exec("CREATE TABLE IF NOT EXISTS pins (key TEXT PRIMARY KEY, identity_pubkey TEXT NOT NULL, last_signed_at_ms TEXT NOT NULL, last_expires_at_ms INTEGER NOT NULL)");
    sql.exec("CREATE TABLE IF NOT EXISTS used_tokens (jti TEXT PRIMARY KEY, expires_at_ms INTEGER NOT NULL)");
    sql.exec("CREATE TABLE IF NOT EXISTS used_requests (signature TEXT PRIMARY KEY, expires_at_ms INTEGER NOT NULL)");
    sql.exec("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)");
    for (const r of rows.registrations) sql.exec("INSERT INTO registrations VALUES (?, ?, ?, ?)", r.key, r.record, r.lastSeenMs, r.expiresAtMs);
    for (const p of rows.pins) sql.exec("INSERT INTO pins VALUES (?, ?, ?, ?)", p.key, p.identityPubkey, p.lastSignedAtMs, p.lastExpiresAtMs);
    for (const t of rows.usedTokens) sql.exec("INSERT INTO used_tokens VALUES (?, ?)", t.jti, t.expiresAtMs);
    if (rows.recordMeshId !== false) sql.exec("INSERT INTO meta VALUES ('mesh_id', ?)", rows.meshId);
  }
}
export class Directory extends DurableObject {}
export class RateLimiter extends DurableObject {}
export default {
  async fetch(request, env) {
    const rows = await request.json();
    await env.MESHES.get(env.MESHES.idFromName(rows.meshId)).write(rows);
    return new Response("ok");
  },
};
`;

describe("a data dir from before mesh buckets", () => {
  it("keeps one object per mesh and reads its registrations, pins and used tokens", async () => {
    const dataDir = await tempDir();
    const meshId = uniqueMeshId("legacy");
    const owner = await generateIdentityKey();
    const now = Date.now();
    const colony = colonyFields(meshId, { endpoints: ["198.51.100.7:41820"] });
    const colonySig = await sign("colony-registration", colonyFieldsJson(colony), owner, BigInt(now - 1000));
    const api = agent(meshId, "api");
    const apiSig = await sign("agent-registration", agentFieldsJson(api), owner, BigInt(now - 1000));
    const expires = now + 300_000;
    const asStored = (record: object) => JSON.stringify(record, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    // The bootstrap signing key, and a token of the mesh that was redeemed before the upgrade.
    const pair = (await crypto.subtle.generateKey("Ed25519", true, ["sign", "verify"])) as CryptoKeyPair;
    const jwk = await crypto.subtle.exportKey("jwk", pair.privateKey);
    await writeFile(join(dataDir, "bootstrap-signing-key.jwk"), JSON.stringify({ kty: jwk.kty, crv: jwk.crv, x: jwk.x, d: jwk.d }));
    const signingKey = (await importJWK({ ...jwk, alg: "EdDSA" }, "EdDSA")) as CryptoKey;
    const tokenOf = (colonyId: string, jti: string) =>
      new SignJWT({ colony_id: colonyId, agent_id: "api", intent: "register" })
        .setProtectedHeader({ alg: "EdDSA", typ: "JWT" })
        .setIssuer("coral-discovery")
        .setAudience("coral-colony")
        .setJti(jti)
        .setIssuedAt()
        .setExpirationTime("1h")
        .sign(signingKey);
    const usedToken = await tokenOf(meshId, "redeemed-before-the-upgrade");
    const unnamedMeshId = uniqueMeshId("legacy");
    const unnamedToken = await tokenOf(unnamedMeshId, "redeemed-in-an-unnamed-object");

    const writer = await workerInMiniflare({ script: oneMeshWriter, durableObjectsPersist: shardStorageDir(dataDir, 0) });
    try {
      const res = await writer.dispatchFetch("http://writer/", {
        method: "POST",
        body: JSON.stringify({
          meshId,
          registrations: [
            { key: "colony:colony", record: asStored({ ...colony, signature: colonySig, observedIp: "192.0.2.1" }), lastSeenMs: now - 1000, expiresAtMs: expires },
            { key: "agent:api", record: asStored({ ...api, signature: apiSig, observedIp: "192.0.2.2" }), lastSeenMs: now - 1000, expiresAtMs: expires },
          ],
          pins: [
            { key: "colony:colony", identityPubkey: owner.publicKey, lastSignedAtMs: String(now - 1000), lastExpiresAtMs: expires },
            { key: "agent:api", identityPubkey: owner.publicKey, lastSignedAtMs: String(now - 1000), lastExpiresAtMs: expires },
          ],
          usedTokens: [{ jti: "redeemed-before-the-upgrade", expiresAtMs: now + 3_600_000 }],
        }),
      });
      expect(await res.text()).toBe("ok");
      // An object that only ever redeemed a token never recorded its mesh id.
      const unnamed = await writer.dispatchFetch("http://writer/", {
        method: "POST",
        body: JSON.stringify({
          meshId: unnamedMeshId,
          recordMeshId: false,
          registrations: [],
          pins: [],
          usedTokens: [{ jti: "redeemed-in-an-unnamed-object", expiresAtMs: now + 3_600_000 }],
        }),
      });
      expect(await unnamed.text()).toBe("ok");
    } finally {
      await writer.dispose();
    }

    await using server = await startDiscoveryServer({ port: 0, dataDir, rateLimitPerMinute: 0 });
    expect(server.meshBuckets).toBe(0);
    expect(JSON.parse(await readFile(join(dataDir, "shards.json"), "utf8"))).toMatchObject({ shards: 1, meshBuckets: 0 });
    const client = discoveryClient(server.url);
    const found = await client.lookupColony(meshId, { pinnedKey: owner.publicKey });
    expect(found.endpoints).toEqual(["198.51.100.7:41820"]);
    expect(found.observedEndpoint).toBe("192.0.2.1");
    expect(expiresAtMs(found.expiresAt)).toBe(expires);
    expect((await client.lookupAgent(meshId, "api", { pinnedKey: owner.publicKey })).pubkey).toBe(api.pubkey);
    // The pin holds: another key is refused, and so is the old signature again.
    expect((await rejection(client.registerColony(colony, await generateIdentityKey()))).code).toBe(Code.PermissionDenied);
    const raw = createClient(DiscoveryService, transport(server.url));
    const replay = await rejection(raw.registerColony({ ...colony, endpoints: [...colony.endpoints], metadata: { ...colony.metadata }, signature: colonySig }));
    expect(replay.rawMessage).toMatch(/not newer than the last accepted one/);
    const reused = await rejection(client.redeemBootstrapToken(usedToken));
    expect(reused.rawMessage).toBe("bootstrap token redeemed-before-the-upgrade was already used; ask the colony for a new one");
    const reusedUnnamed = await rejection(client.redeemBootstrapToken(unnamedToken));
    expect(reusedUnnamed.rawMessage).toBe("bootstrap token redeemed-in-an-unnamed-object was already used; ask the colony for a new one");
    // The colony refreshes as usual, and its key still speaks for the mesh.
    await client.registerColony(colony, owner);
    const token = await client.createBootstrapToken({ meshId, agentId: "db" }, owner);
    expect((await client.redeemBootstrapToken(token.token)).meshId).toBe(meshId);

    const bucketed = await startDiscoveryServer({ port: 0, dataDir, meshBuckets: 16 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((bucketed as Error).message).toMatch(/keeps one Durable Object per mesh; start with --mesh-buckets 0/);
  });
});
