// An agent's membership of the mesh: its WireGuard key and enrollment kept in
// its state folder (mesh.json, 0600), so a restart comes back with the same
// key and mesh IP; the interface with the colony as its only peer.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { EnrollmentError, enrollWithColony, type EnrollResponseJson } from "./enroll.ts";
import { WireguardInterface } from "./interface.ts";
import { generateKeyPair } from "./keys.ts";
import type { IdentityKey } from "@coral/proto";

export interface MeshEnrollment {
  colonyId: string;
  agentId: string;
  privateKey: string;
  publicKey: string;
  meshIpv4: string;
  meshIpv6: string;
  colonyPublicKey: string;
  colonyMeshIpv4: string;
  colonyMeshIpv6: string;
  /** The colony's public host:port (WireGuard UDP and bootstrap TCP). */
  colonyEndpoint: string;
  connectPort: number;
  enrolledAt: string;
}

const FILE = "mesh.json";

export async function loadEnrollment(dataDir: string): Promise<MeshEnrollment | null> {
  const path = join(dataDir, FILE);
  if (!existsSync(path)) return null;
  return JSON.parse(await readFile(path, "utf8")) as MeshEnrollment;
}

async function saveEnrollment(dataDir: string, enrollment: MeshEnrollment): Promise<void> {
  const path = join(dataDir, FILE);
  await writeFile(`${path}.tmp`, JSON.stringify(enrollment, null, 2) + "\n", { mode: 0o600 });
  await rename(`${path}.tmp`, path);
}

/** A name unique on the host (UAPI sockets are shared by all namespaces), stable for one state folder. */
export function interfaceNameFor(prefix: string, seed: string): string {
  return `${prefix}${createHash("sha256").update(seed).digest("hex").slice(0, 15 - prefix.length)}`;
}

/** "host:port" with the host resolved to an address (the UAPI takes numbers only). */
export async function numericEndpoint(endpoint: string): Promise<string> {
  const colon = endpoint.lastIndexOf(":");
  const host = endpoint.slice(0, colon).replace(/^\[|\]$/g, "");
  const port = endpoint.slice(colon + 1);
  const address = isIP(host) ? host : (await lookup(host)).address;
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * Enrolls (again) with the colony and saves the result. The key is kept from
 * an earlier enrollment, so the colony hands back the same mesh IP. When the
 * bootstrap endpoint is unreachable an earlier enrollment is used as it is.
 */
export async function ensureEnrollment(options: {
  dataDir: string;
  agentId: string;
  colonyId: string;
  colonyEndpoint: string;
  caFingerprint: string;
  agentKey: IdentityKey;
  invitation?: { invitationId: string; invitationSecret: string } | undefined;
  colonyIdentityPubkey: string;
  log?: { warn(obj: object, msg?: string): void };
}): Promise<MeshEnrollment> {
  const previous = await loadEnrollment(options.dataDir);
  const usable = previous && previous.colonyId === options.colonyId && previous.agentId === options.agentId ? previous : null;
  const keys = usable ? { privateKey: usable.privateKey, publicKey: usable.publicKey } : generateKeyPair();
  let answer: EnrollResponseJson;
  try {
    answer = await enrollWithColony({
      endpoint: options.colonyEndpoint,
      caFingerprint: options.caFingerprint,
      agentId: options.agentId,
      publicKey: keys.publicKey,
      agentKey: options.agentKey,
      invitation: options.invitation,
      colonyIdentityPubkey: options.colonyIdentityPubkey,
    });
  } catch (err) {
    if (usable && err instanceof EnrollmentError && err.code === "unreachable") {
      options.log?.warn({ err: err.message }, "Bootstrap endpoint unreachable; using the saved enrollment");
      return { ...usable, colonyEndpoint: options.colonyEndpoint };
    }
    throw err;
  }
  if (answer.colony_id !== options.colonyId)
    throw new EnrollmentError("bad-answer", `the bootstrap endpoint belongs to colony ${answer.colony_id}, not ${options.colonyId}`);
  const enrollment: MeshEnrollment = {
    colonyId: answer.colony_id,
    agentId: options.agentId,
    ...keys,
    meshIpv4: answer.mesh_ipv4,
    meshIpv6: answer.mesh_ipv6,
    colonyPublicKey: answer.colony_pubkey,
    colonyMeshIpv4: answer.colony_mesh_ipv4,
    colonyMeshIpv6: answer.colony_mesh_ipv6,
    colonyEndpoint: options.colonyEndpoint,
    connectPort: answer.connect_port,
    enrolledAt: usable?.meshIpv4 === answer.mesh_ipv4 ? usable.enrolledAt : new Date().toISOString(),
  };
  await saveEnrollment(options.dataDir, enrollment);
  return enrollment;
}

/** Brings up the agent's interface with the colony as its one peer. */
export async function startMeshInterface(enrollment: MeshEnrollment, options: { name: string; netns?: string }): Promise<WireguardInterface> {
  const iface = await WireguardInterface.create({
    name: options.name,
    netns: options.netns,
    addressV4: `${enrollment.meshIpv4}/16`,
    addressV6: `${enrollment.meshIpv6}/64`,
    listenPort: 0,
    privateKey: enrollment.privateKey,
  });
  try {
    await iface.setPeer({
      publicKey: enrollment.colonyPublicKey,
      endpoint: await numericEndpoint(enrollment.colonyEndpoint),
      allowedIps: [`${enrollment.colonyMeshIpv4}/32`, `${enrollment.colonyMeshIpv6}/128`],
      // Keeps NAT mappings open so the colony can reach the agent too.
      persistentKeepalive: 25,
    });
  } catch (err) {
    await iface.close();
    throw err;
  }
  return iface;
}
