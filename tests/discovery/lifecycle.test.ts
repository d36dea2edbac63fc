// Expiry, alarms, restarts, pins and rate limits of the real worker in workerd.
import { Code } from "@connectrpc/connect";
import { ColonyNotFoundError } from "@coral/proto";
import { describe, expect, it } from "vitest";
import { colonyFields, discoveryClient, generateIdentityKey, startTestDiscovery, uniqueMeshId } from "../helpers/discovery.ts";
import { rejection } from "../helpers/errors.ts";
import { waitFor } from "../helpers/wait.ts";

describe("expiry", () => {
  it("forgets a colony after its TTL when the alarm fires, and Health counts it", async () => {
    await using discovery = await startTestDiscovery({ ttlSeconds: 2 });
    const client = discoveryClient(discovery.url);
    const meshId = uniqueMeshId();
    const identity = await generateIdentityKey();
    await client.registerColony(colonyFields(meshId), identity);
    await client.registerAgent({ meshId, agentId: "api", pubkey: colonyFields(meshId).pubkey, endpoints: [], metadata: {} }, identity);
    const before = await client.health();
    expect(before.registeredColonies).toBe(1);
    expect(before.registeredAgents).toBe(1);

    const notFound = await waitFor("the colony to expire", async () => {
      const err = await client.lookupColony(meshId).then(() => undefined, (e: unknown) => e);
      return err instanceof ColonyNotFoundError ? err : undefined;
    });
    expect(notFound.message).toBe(`colony not found: ${meshId}`);
    // The alarm really ran: it removed the rows and told the directory.
    const after = await waitFor("Health to drop the expired registrations", async () => {
      const h = await client.health();
      return h.registeredColonies === 0 && h.registeredAgents === 0 ? h : undefined;
    });
    expect(after.status).toBe("ok");
  });

  it("never returns an expired colony, even while its alarm is late", async () => {
    // With a 60 s cleanup interval the alarm fires long after the 1 s TTL.
    await using discovery = await startTestDiscovery({ ttlSeconds: 1, cleanupIntervalSeconds: 60 });
    const client = discoveryClient(discovery.url);
    const meshId = uniqueMeshId();
    // Alarms are rounded up to the next multiple of the interval on the clock: register early in a minute, so the
    // alarm falls at its end, not a moment after the TTL (which made this test fail when run near :59).
    await waitFor("an early moment in the minute", () => Date.now() % 60_000 < 40_000 || undefined, { timeoutMs: 30_000, intervalMs: 200 });
    const registered = await client.registerColony(colonyFields(meshId), await generateIdentityKey());
    const expiresAtMs = Number(registered.expiresAt!.seconds) * 1000 + registered.expiresAt!.nanos / 1e6;
    await waitFor("the TTL to pass", () => Date.now() > expiresAtMs + 50 || undefined);
    await expect(client.lookupColony(meshId)).rejects.toBeInstanceOf(ColonyNotFoundError);
    // The alarm has not run yet, so the directory still counts the row.
    expect((await client.health()).registeredColonies).toBe(1);
  });
});

describe("pins", () => {
  it("lets a new key claim a mesh only after the pinned registration expired plus the grace period", async () => {
    await using discovery = await startTestDiscovery({ ttlSeconds: 1, pinGraceSeconds: 2 });
    const client = discoveryClient(discovery.url);
    const meshId = uniqueMeshId();
    const lost = await generateIdentityKey();
    const replacement = await generateIdentityKey();
    const first = await client.registerColony(colonyFields(meshId), lost);
    const expiresAtMs = Number(first.expiresAt!.seconds) * 1000 + first.expiresAt!.nanos / 1e6;

    const early = await rejection(client.registerColony(colonyFields(meshId), replacement));
    expect(early.code).toBe(Code.PermissionDenied);
    await waitFor("the registration to expire", () => Date.now() > expiresAtMs + 200 || undefined);
    const inGrace = await rejection(client.registerColony(colonyFields(meshId), replacement));
    expect(inGrace.code).toBe(Code.PermissionDenied);
    expect(inGrace.rawMessage).toMatch(/its registration expired at .* and a new key can claim it at /);

    const claimed = await waitFor(
      "the grace period to end",
      () => client.registerColony(colonyFields(meshId), replacement).catch(() => undefined),
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    expect(claimed.success).toBe(true);
    const answer = await client.lookupColony(meshId, { pinnedKey: replacement.publicKey });
    expect(answer.signature?.identityPubkey).toBe(replacement.publicKey);
  });
});

describe("restart", () => {
  it("keeps registrations, pins and redeemed tokens across a restart of the self-hosted server", async () => {
    await using discovery = await startTestDiscovery({ ttlSeconds: 300 });
    const meshId = uniqueMeshId();
    const owner = await generateIdentityKey();
    const fields = colonyFields(meshId);
    await discoveryClient(discovery.url).registerColony(fields, owner);
    const token = await discoveryClient(discovery.url).createBootstrapToken({ meshId, agentId: "api" }, owner);
    await discoveryClient(discovery.url).redeemBootstrapToken(token.token);

    await discovery.restart();
    const client = discoveryClient(discovery.url);
    const answer = await client.lookupColony(meshId, { pinnedKey: owner.publicKey });
    expect(answer.endpoints).toEqual(fields.endpoints);
    expect((await client.health()).registeredColonies).toBe(1);
    const forged = await rejection(client.registerColony(fields, await generateIdentityKey()));
    expect(forged.code).toBe(Code.PermissionDenied);
    const reused = await rejection(client.redeemBootstrapToken(token.token));
    expect(reused.code).toBe(Code.PermissionDenied);
  });
});

describe("rate limit", () => {
  it("limits registrations per client address", async () => {
    await using discovery = await startTestDiscovery({ rateLimitPerMinute: 3 });
    const client = discoveryClient(discovery.url);
    const identity = await generateIdentityKey();
    const meshId = uniqueMeshId();
    for (let i = 0; i < 3; i++) await client.registerColony(colonyFields(meshId), identity);
    const limited = await rejection(client.registerColony(colonyFields(meshId), identity));
    expect(limited.code).toBe(Code.ResourceExhausted);
    expect(limited.rawMessage).toMatch(/too many registrations from 127\.0\.0\.1: the limit is 3 per minute; retry in \d+s/);
    // Lookups are not limited.
    expect((await client.lookupColony(meshId)).meshId).toBe(meshId);
  });
});
