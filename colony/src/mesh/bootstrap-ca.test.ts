// The bootstrap CA and the agent's pinning, over real TLS on loopback: the
// agent enrolls only with a server whose certificate the pinned CA signed.
import { once } from "node:events";
import { mkdtemp, rm, stat } from "node:fs/promises";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EnrollmentError, ENROLL_PATH, enrollWithColony, generateKeyPair, type EnrollRequestJson } from "@coral/common/wireguard";
import { checkInvitationProof, generateIdentityKey, invitationKey, meshEnrollDigest, verifyRegistration } from "@coral/proto";
import { afterEach, describe, expect, it } from "vitest";
import { bootstrapCaFingerprint, issueBootstrapCertificates } from "./bootstrap-ca.ts";

const invitation = { invitationId: "inv4test", invitationSecret: "cd".repeat(32) };
const secret = invitation.invitationSecret;
const agentKey = await generateIdentityKey();
const colonyIdentityPubkey = (await generateIdentityKey()).publicKey;
const enrollAs = { agentKey, invitation, colonyIdentityPubkey };
const dirs: string[] = [];
const servers: https.Server[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function keysDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "coral-ca-"));
  dirs.push(d);
  return d;
}

/** A stand-in bootstrap endpoint with the given certificates: checks the proof and answers like the colony. */
async function serve(certs: { serverChainPem: string; serverKeyPem: string }): Promise<{ endpoint: string; requests: EnrollRequestJson[] }> {
  const requests: EnrollRequestJson[] = [];
  const server = https.createServer({ cert: certs.serverChainPem, key: certs.serverKeyPem }, (req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => (body += c.toString()));
    req.on("end", () => {
      void (async () => {
        const r = JSON.parse(body) as EnrollRequestJson;
        requests.push(r);
        const context = { agentId: r.agent_id, agentPubkey: r.agent_pubkey, timestampMs: BigInt(r.signature.timestamp_ms), nonce: r.signature.nonce };
        const ok =
          req.url === ENROLL_PATH &&
          (await verifyRegistration(r.agent_pubkey, r.agent_id, await meshEnrollDigest(r.agent_id, r.wireguard_pubkey), context.timestampMs, context.nonce, r.signature.signature)) &&
          (await checkInvitationProof(await invitationKey(secret), context, r.invitation?.hmac ?? ""));
        res.writeHead(ok ? 200 : 401, { "content-type": "application/json" });
        res.end(
          JSON.stringify(
            ok
              ? { colony_id: "shop-dev-a1b2c3", mesh_ipv4: "10.42.0.2", mesh_ipv6: "fd42::2", colony_pubkey: generateKeyPair().publicKey, colony_identity_pubkey: colonyIdentityPubkey, colony_mesh_ipv4: "10.42.0.1", colony_mesh_ipv6: "fd42::1", connect_port: 9000 }
              : { code: "unauthenticated", message: "the invitation is not valid for this colony" },
          ),
        );
      })();
    });
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { endpoint: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

describe("bootstrap CA", () => {
  it("is created once (key 0600) and keeps its fingerprint", async () => {
    const dir = await keysDir();
    const first = await bootstrapCaFingerprint(dir, "shop-dev-a1b2c3");
    expect(first).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await bootstrapCaFingerprint(dir, "shop-dev-a1b2c3")).toBe(first);
    const certs = await issueBootstrapCertificates(dir, "shop-dev-a1b2c3", ["127.0.0.1"]);
    expect(certs.caFingerprint).toBe(first);
    expect((await stat(join(dir, "bootstrap-ca.key"))).mode & 0o777).toBe(0o600);
  });

  it("lets an agent enroll with the pinned CA, proving its invitation without sending it", async () => {
    const dir = await keysDir();
    const certs = await issueBootstrapCertificates(dir, "shop-dev-a1b2c3", ["127.0.0.1"]);
    const { endpoint, requests } = await serve(certs);
    const keys = generateKeyPair();
    const answer = await enrollWithColony({ endpoint, caFingerprint: certs.caFingerprint, ...enrollAs, agentId: "api-123abc", publicKey: keys.publicKey });
    expect(answer).toMatchObject({ colony_id: "shop-dev-a1b2c3", mesh_ipv4: "10.42.0.2", connect_port: 9000 });
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ agent_id: "api-123abc", wireguard_pubkey: keys.publicKey });
    expect(JSON.stringify(requests[0])).not.toContain(secret);
  });

  it("refuses a server whose certificate another CA signed, before sending anything", async () => {
    const pinned = await issueBootstrapCertificates(await keysDir(), "shop-dev-a1b2c3", ["127.0.0.1"]);
    const impostor = await issueBootstrapCertificates(await keysDir(), "shop-dev-a1b2c3", ["127.0.0.1"]);
    const { endpoint, requests } = await serve(impostor);
    const err = await enrollWithColony({ endpoint, caFingerprint: pinned.caFingerprint, ...enrollAs, agentId: "api-123abc", publicKey: generateKeyPair().publicKey }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EnrollmentError);
    expect(err).toMatchObject({ code: "untrusted-certificate", message: expect.stringMatching(/not from the colony CA pinned in the join token \(expected sha256:/) });
    expect(requests).toHaveLength(0);
  });

  it("says so when the endpoint is not there, or refuses the proof", async () => {
    const certs = await issueBootstrapCertificates(await keysDir(), "shop-dev-a1b2c3", ["127.0.0.1"]);
    const { endpoint } = await serve(certs);
    await expect(enrollWithColony({ endpoint, caFingerprint: certs.caFingerprint, ...enrollAs, invitation: { ...invitation, invitationSecret: "ef".repeat(32) }, agentId: "api-123abc", publicKey: generateKeyPair().publicKey })).rejects.toMatchObject({
      code: "refused",
      message: expect.stringMatching(/refused the enrollment: the invitation is not valid/),
    });
    await expect(enrollWithColony({ endpoint: "127.0.0.1:1", caFingerprint: certs.caFingerprint, ...enrollAs, agentId: "api-123abc", publicKey: generateKeyPair().publicKey })).rejects.toMatchObject({
      code: "unreachable",
      message: expect.stringMatching(/bootstrap endpoint 127\.0\.0\.1:1 is not reachable/),
    });
  });
});
