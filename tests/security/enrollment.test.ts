// Enrollment attacks and mistakes (issue 17): an agent pins its colony's
// key and refuses another colony; the standing invitation for sidecars
// (CORAL_ENROLL_SECRET) lets each agent enroll its own key, and a weak one
// (the all-zero placeholder a manifest once shipped) stops the colony from
// starting. Real colony, real agents, real sample app.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { UntrustedColonyError, loadAgentIdentity } from "@coral/agent";
import { generateIdentityKey } from "@coral/proto";
import { sampleComponentScript } from "@coral/cli/sample-app";
import { afterEach, describe, expect, it } from "vitest";
import { testAgent } from "../helpers/agents.ts";
import { createTestProject, mintInvitation } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";

const apps: ChildProcess[] = [];
const savedEnv = { ...process.env };
afterEach(() => {
  for (const app of apps.splice(0)) app.kill("SIGKILL");
  for (const name of ["CORAL_ENROLL_SECRET", "CORAL_COLONY_SECRET"]) {
    if (savedEnv[name] === undefined) delete process.env[name];
    else process.env[name] = savedEnv[name];
  }
});

async function sampleApp(): Promise<number> {
  const port = await freePort();
  apps.push(spawn(process.execPath, [sampleComponentScript, "store", String(port)], { stdio: "ignore" }));
  return port;
}

describe("enrollment", () => {
  it("an agent refuses a colony whose key is not the one its join token names", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const token = await mintInvitation(colony.url, project.localToken);
    const impostorKey = (await generateIdentityKey()).publicKey;
    const err = await testAgent(project, colony.url, "store", await sampleApp(), {
      invitation: { invitationId: token.invitationId, invitationSecret: token.invitationSecret },
      colonyPubkey: impostorKey,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UntrustedColonyError);
    expect((err as Error).message).toMatch(/not the pinned .*refusing it/);
  });

  it("sidecars enroll with the standing invitation, each with its own key, and pin the colony's key from its proof", async () => {
    const secret = randomBytes(32).toString("hex");
    process.env.CORAL_ENROLL_SECRET = secret;
    await using project = await createTestProject();
    const colony = await project.start();
    const port = await sampleApp();
    // No pinned key: the colony proves it knows the invitation, and the agent keeps the key it vouched for.
    await using one = await testAgent(project, colony.url, "store", port, { invitation: { invitationId: "env", invitationSecret: secret }, colonyPubkey: undefined });
    await using two = await testAgent(project, colony.url, "store-b", port, { invitation: { invitationId: "env", invitationSecret: secret }, colonyPubkey: undefined });
    const idOne = await loadAgentIdentity(join(project.dir, ".coral", "agents", "store"));
    const idTwo = await loadAgentIdentity(join(project.dir, ".coral", "agents", "store-b"));
    expect(idOne).toMatchObject({ enrolled: true, colonyPubkey: project.colonyKey.publicKey });
    expect(idTwo.key.publicKey).not.toBe(idOne.key.publicKey);
    expect((await stat(join(project.dir, ".coral", "agents", "store", "identity.json"))).mode & 0o777).toBe(0o600);
    expect([one.agentId, two.agentId].every(Boolean)).toBe(true);
    // The standing invitation does not let anyone take over an enrolled agent.
    const thief = new SyntheticAgent({ colonyUrl: colony.url, invitation: { invitationId: "env", invitationSecret: secret }, agentId: one.agentId, serviceName: "store", port });
    await expect(thief.register()).rejects.toThrow(/enrolled with another key/);
    // A wrong standing secret proves nothing.
    const wrong = new SyntheticAgent({ colonyUrl: colony.url, invitation: { invitationId: "env", invitationSecret: "ab".repeat(32) }, agentId: "new-1", serviceName: "new", port });
    await expect(wrong.register()).rejects.toThrow(/invitation is not valid for this colony/);
  });

  it("the colony refuses to start with a weak enroll secret, such as the all-zero placeholder", async () => {
    await using project = await createTestProject();
    process.env.CORAL_ENROLL_SECRET = "0".repeat(64);
    await expect(project.start()).rejects.toThrow(/CORAL_ENROLL_SECRET is not random .*openssl rand -hex 32/);
    delete process.env.CORAL_ENROLL_SECRET;
    process.env.CORAL_COLONY_SECRET = "abab".repeat(16);
    await expect(project.start()).rejects.toThrow(/CORAL_COLONY_SECRET is not random/);
    process.env.CORAL_COLONY_SECRET = "short";
    await expect(project.start()).rejects.toThrow(/CORAL_COLONY_SECRET must be 64 hex characters/);
  });
});
