// coral connect --mesh wireguard: find the colony through discovery (the
// answer must be signed by the colony key in the join token), enroll over the
// pinned-CA bootstrap endpoint, bring up the agent's WireGuard interface; from
// then on the agent talks to the colony only at its mesh address.
import { createConnectTransport } from "@connectrpc/connect-node";
import { agentIdFor, loadAgentIdentity } from "@coral/agent";
import { ensureEnrollment, interfaceNameFor, startMeshInterface, checkPrerequisites, type MeshEnrollment, type WireguardInterface } from "@coral/common/wireguard";
import { DiscoveryClient, UnverifiedAnswerError, decodeJoinToken, resolveEndpoints, type JoinToken } from "@coral/proto";
import { UsageError } from "./options.ts";

export interface MeshTarget {
  colonyId: string;
  /** The colony's Connect API at its mesh address. */
  colonyUrl: string;
  agentId: string;
  enrollment: MeshEnrollment;
  iface: WireguardInterface;
  close(): Promise<void>;
}

export function decodeMeshToken(joinToken: { token: string; source: string } | undefined): JoinToken {
  if (!joinToken) throw new UsageError("--mesh wireguard needs a join token: --join-file <file> (from coral colony invite on the colony's machine)");
  const decoded = decodeJoinToken(joinToken.token);
  if ("error" in decoded) throw new Error(`${joinToken.source}: ${decoded.error}`);
  const token = decoded.token;
  if (!token.discoveryUrl) throw new Error("--mesh wireguard: the join token names no discovery service; configure discovery.endpoint on the colony and invite again");
  if (!token.caFingerprint) throw new Error("--mesh wireguard: the join token has no bootstrap CA fingerprint (it is from an older colony); run coral colony invite again");
  return token;
}

/** Looks the colony up in discovery and returns its public host:port, verified against the token's key. */
export async function lookupColonyEndpoint(token: JoinToken): Promise<string> {
  const client = new DiscoveryClient({ transport: createConnectTransport({ baseUrl: token.discoveryUrl, httpVersion: "1.1" }), url: token.discoveryUrl });
  let answer;
  try {
    answer = await client.lookupColony(token.colonyId, { pinnedKey: token.colonyPubkey });
  } catch (err) {
    if (err instanceof UnverifiedAnswerError) throw new Error(`refusing to connect: ${err.message}`, { cause: err });
    throw err;
  }
  const endpoint = resolveEndpoints(answer).find((e) => !e.startsWith(":"));
  if (!endpoint) throw new Error(`discovery lists no public endpoint for colony ${token.colonyId}; set CORAL_PUBLIC_ENDPOINT on the colony`);
  return endpoint;
}

export async function joinMesh(options: {
  token: JoinToken;
  serviceName: string;
  dataDir: string;
  log?: { warn(obj: object, msg?: string): void };
}): Promise<MeshTarget> {
  checkPrerequisites(); // not root, no TUN, no wireguard-go: say so before anything else
  const { token } = options;
  const endpoint = await lookupColonyEndpoint(token);
  const agentId = await agentIdFor(options.dataDir, options.serviceName);
  // The same key the agent signs its registrations with: enrolling here pins it.
  const identity = await loadAgentIdentity(options.dataDir);
  const enrollment = await ensureEnrollment({
    dataDir: options.dataDir,
    agentId,
    colonyId: token.colonyId,
    colonyEndpoint: endpoint,
    caFingerprint: token.caFingerprint!,
    agentKey: identity.key,
    invitation: { invitationId: token.invitationId, invitationSecret: token.invitationSecret },
    colonyIdentityPubkey: token.colonyPubkey,
    log: options.log,
  });
  const iface = await startMeshInterface(enrollment, { name: process.env.CORAL_WG_INTERFACE ?? interfaceNameFor("coral", options.dataDir) });
  return {
    colonyId: token.colonyId,
    colonyUrl: `http://${enrollment.colonyMeshIpv4}:${enrollment.connectPort}`,
    agentId,
    enrollment,
    iface,
    close: () => iface.close(),
  };
}
