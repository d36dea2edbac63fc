// Issue 17, Medium 10, written as the attacks on self-hosted discovery
// (coral-discovery: the worker in workerd shards behind a Node front):
// spellings of the registration path that skipped the rate limit, and the
// shards' own 127.0.0.1 sockets, which skipped the front altogether.
import { readdir, readFile, readlink } from "node:fs/promises";
import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  colonyFields,
  discoveryClient,
  generateIdentityKey,
  restColonyRegistration,
  startTestDiscovery,
  uniqueMeshId,
  type TestDiscovery,
} from "../helpers/discovery.ts";

/** A request with the request target exactly as given (fetch would normalise it). */
function raw(base: string, target: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, method: "POST", path: target, agent: false, headers: { "content-type": "application/json", ...headers } }, (res) => {
      let text = "";
      res.on("data", (c: Buffer) => (text += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** The TCP ports workerd processes started by this test process listen on (what a local attacker finds with ss -ltn). */
async function workerdPorts(): Promise<number[]> {
  const inodes = new Set<string>();
  for (const pid of (await readdir("/proc")).filter((p) => /^\d+$/.test(p))) {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
    const m = /^\d+ \((.*)\) \S+ (\d+)/.exec(stat);
    if (!m || m[1] !== "workerd" || Number(m[2]) !== process.pid) continue;
    for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      const socket = /^socket:\[(\d+)\]$/.exec(link);
      if (socket) inodes.add(socket[1]!);
    }
  }
  const ports = new Set<number>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of (await readFile(table, "utf8")).split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] === "0A" && inodes.has(cols[9]!)) ports.add(parseInt(cols[1]!.split(":")[1]!, 16));
    }
  }
  return [...ports];
}

describe("self-hosted discovery's front", () => {
  let discovery: TestDiscovery;
  beforeAll(async () => {
    discovery = await startTestDiscovery({ rateLimitPerMinute: 3, shards: 2 });
  });
  afterAll(async () => {
    await discovery?.[Symbol.asyncDispose]();
  });

  it("rate-limits every spelling of a registration once the budget is spent", async () => {
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const client = discoveryClient(discovery.url);
    for (let i = 0; i < 3; i++) await client.registerColony(colonyFields(meshId), identity);
    const port = new URL(discovery.url).port;
    const spellings = [
      `/v1/mesh/${meshId}/register/`,
      `/v1/mesh/${meshId}/register//`,
      `//v1/mesh/${meshId}/register`,
      `/v1//mesh/${meshId}/register`,
      `/v1/mesh/${meshId}/./register`,
      `/v1/mesh/${meshId}/x/../register`,
      `/v1/mesh/${meshId}/%2e/register`,
      `/v1\\mesh\\${meshId}\\register`,
      `http://127.0.0.1:${port}/v1/mesh/${meshId}/register/`,
      "/coral.discovery.v1.DiscoveryService/RegisterColony/",
      "/coral.discovery.v1.DiscoveryService//RegisterColony",
    ];
    for (const target of spellings) {
      const body = target.includes("DiscoveryService")
        ? JSON.stringify(await connectJsonRegistration(meshId, identity))
        : JSON.stringify(await restColonyRegistration(colonyFields(meshId), identity));
      const answer = await raw(discovery.url, target, body);
      expect({ target, status: answer.status }).toEqual({ target, status: 429 });
      expect(JSON.parse(answer.body)).toMatchObject({ code: "resource_exhausted", message: expect.stringMatching(/too many registrations from 127\.0\.0\.1/) });
    }
  });

  it("answers a trailing-slash registration like the plain one, within the budget", async () => {
    await using fresh = await startTestDiscovery({ rateLimitPerMinute: 3 });
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const answer = await raw(fresh.url, `/v1/mesh/${meshId}/register/`, JSON.stringify(await restColonyRegistration(colonyFields(meshId), identity)));
    expect(answer.status).toBe(200);
    expect((await discoveryClient(fresh.url).lookupColony(meshId, { pinnedKey: identity.publicKey })).meshId).toBe(meshId);
  });

  it("shard sockets on 127.0.0.1 refuse a local caller who skips the front", async () => {
    const ports = await workerdPorts();
    // Two shards, each with Miniflare's entry socket and the worker's direct socket.
    expect(ports.length).toBeGreaterThanOrEqual(2);
    const identity = await generateIdentityKey();
    for (const port of ports) {
      const meshId = uniqueMeshId();
      // Through a shard the caller could name its own address and register past the limit.
      const direct = await raw(`http://127.0.0.1:${port}`, `/v1/mesh/${meshId}/register`, JSON.stringify(await restColonyRegistration(colonyFields(meshId), identity)), {
        "cf-connecting-ip": "6.6.6.6",
        "x-coral-front-secret": "guessed",
      });
      expect({ port, status: direct.status }).toEqual({ port, status: 403 });
      expect(JSON.parse(direct.body)).toEqual({
        code: "permission_denied",
        message: "this discovery shard answers coral-discovery's front only; send requests to the port coral-discovery listens on",
      });
      const lookup = await raw(`http://127.0.0.1:${port}`, "/coral.discovery.v1.DiscoveryService/Health", "{}");
      expect(lookup.status).toBe(403);
      await expect(discoveryClient(discovery.url).lookupColony(meshId)).rejects.toThrow(/colony not found/);
    }
  });
});

async function connectJsonRegistration(meshId: string, identity: Awaited<ReturnType<typeof generateIdentityKey>>) {
  const rest = await restColonyRegistration(colonyFields(meshId), identity);
  const { type: _type, ...fields } = rest;
  return { meshId, ...fields };
}
