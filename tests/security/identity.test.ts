// Identity attacks (issue 17): one join token used to let its holder be any
// agent. Now each agent id is pinned to the key it enrolled with; an
// invitation is single-use and expires; revoking cuts an agent off for good;
// every registration rotates its credentials. Real colony, real nats-server.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Code } from "@connectrpc/connect";
import { generateIdentityKey } from "@coral/proto";
import { IdentityService } from "@coral/proto/gen/coral/colony/v1/identity_pb";
import { HealthStatus, RegisterRequestSchema } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { clone } from "@bufbuild/protobuf";
import { connect } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { createTestProject, mintInvitation, serviceApi } from "../helpers/colony.ts";
import { rejection } from "../helpers/errors.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";

const invitationOf = (t: { invitationId: string; invitationSecret: string }) => ({ invitationId: t.invitationId, invitationSecret: t.invitationSecret });

async function natsConnects(url: string, user: string, pass: string): Promise<"ok" | "refused"> {
  try {
    const nc = await connect({ servers: url, user, pass, reconnect: false, timeout: 5000 });
    await nc.close();
    return "ok";
  } catch (err) {
    if (/authoriz|authentic/i.test(String(err))) return "refused";
    throw err;
  }
}

describe("agent identities", () => {
  it("an invitation cannot take over a live agent: no NATS password, no redirected agent URL", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    await using victim = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "api-1", serviceName: "api", port: 8080 });
    const real = await victim.register();
    await victim.heartbeat();
    const before = await colony.store.getAgent("api-1");

    // The attacker holds a fresh, valid invitation (meant for another agent) and makes its own key.
    const stolen = await mintInvitation(colony.url, project.localToken, "for a new agent");
    const attacker = new SyntheticAgent({ colonyUrl: colony.url, invitation: invitationOf(stolen), agentId: "api-1", serviceName: "api", port: 6666 });
    const refused = await rejection(attacker.register());
    expect(refused.code).toBe(Code.PermissionDenied);
    expect(refused.rawMessage).toMatch(/api-1 is enrolled with another key and is online/);
    expect(attacker.registration).toBeUndefined();
    // Without any invitation, the same.
    const bare = new SyntheticAgent({ colonyUrl: colony.url, agentId: "api-1", serviceName: "api", port: 6666 });
    expect((await rejection(bare.register())).code).toBe(Code.PermissionDenied);

    const after = await colony.store.getAgent("api-1");
    expect(after?.port).toBe(8080);
    expect(after?.agentUrl).toBe(before?.agentUrl);
    expect(await natsConnects(real.nats!.url, real.nats!.user, real.nats!.password)).toBe("ok");
    // The invitation was not spent by the failed attempt: its rightful agent still joins.
    await using rightful = new SyntheticAgent({ colonyUrl: colony.url, invitation: invitationOf(stolen), agentId: "web-1", serviceName: "web", port: 3000 });
    expect((await rightful.register()).colonyId).toBe(project.colonyId);
  });

  it("an invitation is used once, and not after it expires", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const once = await mintInvitation(colony.url, project.localToken, "one agent");
    await using first = new SyntheticAgent({ colonyUrl: colony.url, invitation: invitationOf(once), agentId: "a-1", serviceName: "a", port: 1 });
    await first.register();
    const second = new SyntheticAgent({ colonyUrl: colony.url, invitation: invitationOf(once), agentId: "a-2", serviceName: "a", port: 1 });
    const used = await rejection(second.register());
    expect(used.code).toBe(Code.PermissionDenied);
    expect(used.rawMessage).toMatch(/was already used \(1 of 1\)/);

    const brief = await mintInvitation(colony.url, project.localToken, "brief", { ttlSeconds: 1 });
    const identities = serviceApi(IdentityService, colony.url, project.localToken);
    await waitFor("the invitation to expire", async () =>
      (await identities.listInvitations({})).invitations.find((i) => i.invitationId === brief.invitationId)?.state === "expired" ? true : undefined,
    { timeoutMs: 30_000, intervalMs: 250 });
    const late = new SyntheticAgent({ colonyUrl: colony.url, invitation: invitationOf(brief), agentId: "b-1", serviceName: "b", port: 1 });
    const expired = await rejection(late.register());
    expect(expired.code).toBe(Code.PermissionDenied);
    expect(expired.rawMessage).toMatch(/expired at/);

    const list = await identities.listInvitations({});
    const states = Object.fromEntries(list.invitations.map((i) => [i.invitationId, [i.state, i.uses]]));
    expect(states[once.invitationId]).toEqual(["used", 1]);
    expect(states[brief.invitationId]).toEqual(["expired", 0]);
    // No invitation lives longer than 30 days.
    const tooLong = await rejection(identities.createInvitation({ ttlSeconds: 40 * 86_400 }));
    expect(tooLong.code).toBe(Code.InvalidArgument);
    expect(tooLong.rawMessage).toMatch(/ttl_seconds: must be from 1 s to 30 days/);
  });

  it("a revoked agent is cut off at once and cannot come back, under its id or a new one with its token", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const token = await mintInvitation(colony.url, project.localToken, "three agents", { maxUses: 3 });
    await using agent = new SyntheticAgent({ colonyUrl: colony.url, invitation: invitationOf(token), agentId: "rogue-1", serviceName: "rogue", port: 9 });
    const reg = await agent.register();
    const js = await agent.connectNats();
    expect((await agent.publish({ events: [] })).ack.duplicate).toBe(false);
    expect(js).toBeDefined();

    const res = await serviceApi(IdentityService, colony.url, project.localToken).revokeAgent({ agentId: "rogue-1" });
    expect(res).toMatchObject({ invitationRevoked: true, natsUserRemoved: true, meshPeerRemoved: false });
    expect(res.agent?.revokedBy).toBe("local");

    // NATS: the user is gone from the server's configuration and its password no longer works.
    const users = JSON.parse(await readFile(join(project.dir, ".coral", "nats-users.json"), "utf8").catch(() => '{"agents":[]}')) as { agents: { agentId: string }[] };
    expect(users.agents.map((a) => a.agentId)).not.toContain("rogue-1");
    expect(await natsConnects(reg.nats!.url, reg.nats!.user, reg.nats!.password)).toBe("refused");
    // Heartbeats with its old agent token, and registering again with its own key.
    expect((await rejection(agent.heartbeat(HealthStatus.HEALTHY))).code).toBe(Code.PermissionDenied);
    const back = await rejection(agent.register());
    expect(back.code).toBe(Code.PermissionDenied);
    expect(back.rawMessage).toMatch(/rogue-1 was revoked at/);
    // A new agent id with the same join token (it had uses left): the invitation went with the agent.
    const reborn = new SyntheticAgent({ colonyUrl: colony.url, invitation: invitationOf(token), agentId: "rogue-2", serviceName: "rogue", port: 9 });
    const viaToken = await rejection(reborn.register());
    expect(viaToken.code).toBe(Code.PermissionDenied);
    expect(viaToken.rawMessage).toMatch(/was revoked/);
    // The colony shows it offline, not online.
    await waitFor("the revoked agent to leave the online list", () => (colony.agents.get("rogue-1")?.state === "offline" ? true : undefined));
  });

  it("every registration rotates the agent's NATS password and agent token", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const key = await generateIdentityKey();
    await using agent = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, key, agentId: "api-7", serviceName: "api", port: 8080 });
    const first = await agent.register();
    const second = await agent.register();
    expect(second.nats!.password).not.toBe(first.nats!.password);
    expect(second.agentToken).not.toBe(first.agentToken);
    expect(await natsConnects(first.nats!.url, first.nats!.user, first.nats!.password)).toBe("refused");
    expect(await natsConnects(second.nats!.url, second.nats!.user, second.nats!.password)).toBe("ok");
    expect((await agent.heartbeat()).ok).toBe(true);
  });

  it("a registration must be signed by the agent's key over the whole request", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    // An old agent (no signature) is told what to do.
    const res = await fetch(`${colony.url}/coral.mesh.v1.MeshService/Register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agentId: "old-1", serviceName: "old", port: 1, proof: { timestampMs: String(Date.now()), nonce: "ab".repeat(16), hmac: "cd".repeat(32) } }),
    });
    const body = (await res.json()) as { code: string; message: string };
    expect(res.status).toBe(400);
    expect(body.code).toBe("invalid_argument");
    expect(body.message).toMatch(/proof/);
    // A captured registration cannot be replayed, nor changed (here: its agent URL redirected).
    await using agent = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "svc-1", serviceName: "svc", port: 1 });
    await agent.register();
    const captured = clone(RegisterRequestSchema, agent.lastRegisterRequest!);
    const replay = await rejection(agent.sendRegister(captured));
    expect(replay.code).toBe(Code.Unauthenticated);
    expect(replay.rawMessage).toMatch(/already used \(replay\)/);
    const tampered = clone(RegisterRequestSchema, captured);
    tampered.agentUrl = "http://203.0.113.9:1";
    tampered.signature!.nonce = "ef".repeat(16);
    const changed = await rejection(agent.sendRegister(tampered));
    expect(changed.code).toBe(Code.Unauthenticated);
    expect(changed.rawMessage).toMatch(/not signed by agent_pubkey/);
    expect((await colony.store.getAgent("svc-1"))?.agentUrl).toBe("");
  });
});
