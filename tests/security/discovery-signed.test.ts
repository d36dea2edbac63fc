// Issue 17, Lows on discovery, written as the attacks against the real
// worker in workerd: a stranger reserving an agent id in someone else's mesh,
// and a captured, signed bootstrap-token request sent again.
import { Code } from "@connectrpc/connect";
import { BootstrapIntent, bootstrapRequestJson, sign } from "@coral/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  colonyFields,
  discoveryClient,
  generateIdentityKey,
  randomWireguardKey,
  startTestDiscovery,
  uniqueMeshId,
  type TestDiscovery,
} from "../helpers/discovery.ts";
import { rejection } from "../helpers/errors.ts";

let discovery: TestDiscovery;

beforeAll(async () => {
  discovery = await startTestDiscovery({ ttlSeconds: 300 });
});
afterAll(async () => {
  await discovery?.[Symbol.asyncDispose]();
});

describe("agent ids", () => {
  it("a stranger cannot reserve an agent id in another mesh, before or after its colony registered", async () => {
    const client = discoveryClient(discovery.url);
    const stranger = await generateIdentityKey();
    const colony = await generateIdentityKey();
    const meshId = uniqueMeshId();
    const agent = { meshId, agentId: "api-1", pubkey: randomWireguardKey(), endpoints: ["198.51.100.66:51820"], metadata: {} };

    // Before the colony comes: the id would be pinned to the stranger's key.
    const early = await rejection(client.registerAgent(agent, stranger));
    expect(early.code).toBe(Code.FailedPrecondition);
    await client.registerColony(colonyFields(meshId), colony);
    // After: the same, in a live mesh.
    const late = await rejection(client.registerAgent(agent, stranger));
    expect(late.code).toBe(Code.PermissionDenied);
    expect(late.rawMessage).toBe(`agent registrations in mesh ${meshId} must be signed by the identity key its colony pinned`);
    await expect(client.lookupAgent(meshId, "api-1")).rejects.toThrow(/agent not found/);

    // The mesh's colony registers the id itself, and lookups verify against its key.
    const own = { ...agent, endpoints: ["203.0.113.5:51820"] };
    expect((await client.registerAgent(own, colony)).success).toBe(true);
    expect((await client.lookupAgent(meshId, "api-1", { pinnedKey: colony.publicKey })).endpoints).toEqual(["203.0.113.5:51820"]);
  });
});

describe("bootstrap-token requests", () => {
  it("a captured signed request gets no second token, also after a restart", async () => {
    const colony = await generateIdentityKey();
    const meshId = uniqueMeshId();
    await discoveryClient(discovery.url).registerColony(colonyFields(meshId), colony);
    // What an eavesdropper on the colony's plain-HTTP request keeps: the exact body.
    const fields = { meshId, agentId: "api-1", intent: BootstrapIntent.REGISTER, ttlSeconds: 600 };
    const signature = await sign("bootstrap-token-request", bootstrapRequestJson(fields), colony);
    const body = JSON.stringify({
      ...fields,
      intent: "BOOTSTRAP_INTENT_REGISTER",
      signature: { identityPubkey: signature.identityPubkey, signedAtMs: signature.signedAtMs.toString(), signature: signature.signature },
    });
    const send = async () => {
      const res = await fetch(`${discovery.url}/coral.discovery.v1.DiscoveryService/CreateBootstrapToken`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      return { status: res.status, body: (await res.json()) as Record<string, string> };
    };

    const first = await send();
    expect(first.status).toBe(200);
    expect(first.body.token!.split(".")).toHaveLength(3);
    const replayed = await send();
    expect(replayed.status).toBe(403);
    expect(replayed.body).toEqual({
      code: "permission_denied",
      message: "this signed request was already used (replayed); sign a new one with a fresh timestamp",
    });
    await discovery.restart();
    expect((await send()).body.code).toBe("permission_denied");
    // The colony itself signs each request afresh and keeps getting tokens.
    const fresh = await discoveryClient(discovery.url).createBootstrapToken({ meshId, agentId: "api-1" }, colony);
    expect(fresh.token).not.toBe(first.body.token);
  });
});
