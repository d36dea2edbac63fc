// Self-hosted discovery split over several workerd processes (shards): the
// Node front routes each request to its mesh's shard, sums Health, keeps one
// registration budget per client across shards and keeps the shard count.
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Code, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import { DiscoveryService } from "@coral/proto";
import { defaultShardCount, ShardCountError, shardOf, shardStorageDir, startDiscoveryServer } from "@coral/discovery-worker";
import { createLocalJWKSet, jwtVerify } from "jose";
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
import { rejection, thrown } from "../helpers/errors.ts";

/** `perShard` fresh mesh ids for each of `shards` shards. */
function meshIdsPerShard(shards: number, perShard: number): string[][] {
  const buckets: string[][] = Array.from({ length: shards }, () => []);
  while (buckets.some((b) => b.length < perShard)) {
    const id = uniqueMeshId("shard");
    const bucket = buckets[shardOf(id, shards)]!;
    if (bucket.length < perShard) bucket.push(id);
  }
  return buckets;
}

async function sqliteFiles(dir: string): Promise<number> {
  const entries = await readdir(dir, { recursive: true }).catch(() => [] as string[]);
  return entries.filter((e) => e.endsWith(".sqlite")).length;
}

describe("default shard count", () => {
  it("leaves the front a CPU: one shard on one or two, one per CPU but one beyond, at most the limit", () => {
    expect([1, 2, 3, 4, 8, 200].map(defaultShardCount)).toEqual([1, 1, 2, 3, 7, 64]);
  });
});

describe("two shards", () => {
  let discovery: TestDiscovery;
  beforeAll(async () => {
    discovery = await startTestDiscovery({ ttlSeconds: 300, shards: 2 });
  });
  afterAll(async () => {
    await discovery?.[Symbol.asyncDispose]();
  });

  it("routes every encoding to the mesh's shard and sums Health over the shards", async () => {
    expect(discovery.server.shards).toBe(2);
    const [first, second] = meshIdsPerShard(2, 2) as [string[], string[]];
    const identity = await generateIdentityKey();
    const client = discoveryClient(discovery.url);
    for (const meshId of [...first, ...second]) {
      await client.registerColony(colonyFields(meshId), identity);
      await client.registerAgent({ meshId, agentId: "api", pubkey: randomWireguardKey(), endpoints: [], metadata: {} }, identity);
    }
    // Each shard's own storage holds its meshes.
    expect(await sqliteFiles(shardStorageDir(discovery.dataDir, 0))).toBeGreaterThanOrEqual(2);
    expect(await sqliteFiles(shardStorageDir(discovery.dataDir, 1))).toBeGreaterThanOrEqual(2);

    const binary = discoveryClient(discovery.url, true);
    const grpcWeb = createClient(DiscoveryService, createGrpcWebTransport({ baseUrl: discovery.url, httpVersion: "1.1" }));
    for (const meshId of [...first, ...second]) {
      expect((await client.lookupColony(meshId, { pinnedKey: identity.publicKey })).meshId).toBe(meshId);
      expect((await binary.lookupColony(meshId, { pinnedKey: identity.publicKey })).meshId).toBe(meshId);
      expect((await binary.lookupAgent(meshId, "api")).agentId).toBe("api");
      expect((await grpcWeb.lookupColony({ meshId })).meshId).toBe(meshId);
      const rest = await fetch(`${discovery.url}/v1/mesh/${encodeURIComponent(meshId)}/colony`);
      expect(rest.status).toBe(200);
      expect(((await rest.json()) as { mesh_id: string }).mesh_id).toBe(meshId);
    }

    const health = await client.health();
    expect(health).toMatchObject({ status: "ok", registeredColonies: 4, registeredAgents: 4 });
    const binaryHealth = await createClient(DiscoveryService, transport(discovery.url, true)).health({});
    expect(binaryHealth).toMatchObject({ status: "ok", registeredColonies: 4, registeredAgents: 4 });
    const restHealth = (await (await fetch(`${discovery.url}/health`)).json()) as Record<string, unknown>;
    expect(restHealth).toMatchObject({ status: "ok", registered_colonies: 4, registered_agents: 4 });
    expect(Number(restHealth.uptime_seconds)).toBeGreaterThanOrEqual(0);
  });

  it("redeems a bootstrap token in the shard of the mesh it names, once, and publishes one JWKS", async () => {
    const [, second] = meshIdsPerShard(2, 1) as [string[], string[]];
    const meshId = second[0]!;
    const owner = await generateIdentityKey();
    const client = discoveryClient(discovery.url);
    await client.registerColony(colonyFields(meshId), owner);
    const issued = await client.createBootstrapToken({ meshId, agentId: "api-1" }, owner);
    const jwks = (await (await fetch(`${discovery.url}/.well-known/jwks.json`)).json()) as { keys: unknown[] };
    const { payload } = await jwtVerify(issued.token, createLocalJWKSet(jwks as never), { issuer: "coral-discovery", audience: "coral-colony" });
    expect(payload.colony_id).toBe(meshId);
    expect((await client.redeemBootstrapToken(issued.token)).meshId).toBe(meshId);
    const again = await rejection(client.redeemBootstrapToken(issued.token));
    expect(again.code).toBe(Code.PermissionDenied);
    expect(again.rawMessage).toMatch(/already used/);
  });
});

describe("rate limit over shards", () => {
  it("gives a client one registration budget whichever shards its meshes are in, and does not count invalid ones", async () => {
    await using discovery = await startTestDiscovery({ shards: 2, rateLimitPerMinute: 3 });
    const client = discoveryClient(discovery.url);
    const identity = await generateIdentityKey();
    const [first, second] = meshIdsPerShard(2, 2) as [string[], string[]];
    const invalid = await rejection(client.registerColony(colonyFields("x"), identity));
    expect(invalid.code).toBe(Code.InvalidArgument);
    for (const meshId of [first[0]!, second[0]!, first[1]!]) await client.registerColony(colonyFields(meshId), identity);
    const limited = await rejection(client.registerColony(colonyFields(second[1]!), identity));
    expect(limited.code).toBe(Code.ResourceExhausted);
    expect(limited.rawMessage).toMatch(/too many registrations from 127\.0\.0\.1: the limit is 3 per minute; retry in \d+s/);
    const rest = await fetch(`${discovery.url}/v1/mesh/${second[1]}/register`, { method: "POST", body: "{}" });
    expect(rest.status).toBe(429);
    expect(await rest.json()).toMatchObject({ code: "resource_exhausted" });
    expect((await client.lookupColony(second[0]!)).meshId).toBe(second[0]);
  });
});

describe("shard count", () => {
  const dirs: string[] = [];
  const tempDir = async () => {
    const dir = await mkdtemp(join(tmpdir(), "coral-discovery-shards-"));
    dirs.push(dir);
    return dir;
  };
  afterAll(async () => {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("finds every mesh in its shard after a restart, keeps the recorded count, and refuses another", async () => {
    const dataDir = await tempDir();
    await using discovery = await startTestDiscovery({ dataDir, shards: 2 });
    const owner = await generateIdentityKey();
    const meshIds = meshIdsPerShard(2, 2).flat();
    for (const meshId of meshIds) await discoveryClient(discovery.url).registerColony(colonyFields(meshId), owner);
    await discovery.server.close();

    const wrong = await thrown(startDiscoveryServer({ port: 0, dataDir, shards: 3 }));
    expect(wrong).toBeInstanceOf(ShardCountError);
    expect((wrong as Error).message).toMatch(/split over 2 shard\(s\); start with --shards 2/);

    // No explicit count: the recorded one wins over the default.
    discovery.server = await startDiscoveryServer({ port: 0, dataDir, defaultShards: 4 });
    expect(discovery.server.shards).toBe(2);
    const client = discoveryClient(discovery.url);
    for (const meshId of meshIds) expect((await client.lookupColony(meshId, { pinnedKey: owner.publicKey })).meshId).toBe(meshId);
    expect((await client.health()).registeredColonies).toBe(meshIds.length);
  });

  it("treats a data dir from before sharding as one shard", async () => {
    const dataDir = await tempDir();
    await mkdir(shardStorageDir(dataDir, 0), { recursive: true });
    await using server = await startDiscoveryServer({ port: 0, dataDir, defaultShards: 2 });
    expect(server.shards).toBe(1);
  });

  it("coral-discovery refuses a --shards that contradicts the data dir, with exit code 2", async () => {
    const dataDir = await tempDir();
    await writeFile(join(dataDir, "shards.json"), JSON.stringify({ shards: 2 }));
    const bin = resolve(import.meta.dirname, "../../node_modules/.bin/coral-discovery");
    const result = await new Promise<{ code: number | null; output: string }>((done) => {
      const child = execFile(bin, ["--port", "0", "--data-dir", dataDir, "--shards", "3"], { timeout: 60_000 }, (_err, stdout, stderr) =>
        done({ code: child.exitCode, output: stdout + stderr }),
      );
    });
    expect(result.code).toBe(2);
    expect(result.output).toMatch(/split over 2 shard\(s\); start with --shards 2/);
  });
});
