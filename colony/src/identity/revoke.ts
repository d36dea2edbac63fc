// Revoking an agent everywhere at once: its pinned key (it can never register
// again under this id), the invitation it enrolled with, its NATS user (its
// connection is cut), its WireGuard peer, and the colony's belief that it is
// online. Audited.
import type { ApiDeps } from "../api/deps.ts";
import type { AgentIdentityRow } from "../store/identities.ts";

export interface RevokeOutcome {
  identity: AgentIdentityRow;
  invitationRevoked: boolean;
  natsUserRemoved: boolean;
  meshPeerRemoved: boolean;
}

export async function revokeAgentEverywhere(deps: ApiDeps, agentId: string, by: string): Promise<RevokeOutcome | null> {
  const revoked = await deps.identities.revokeAgent(agentId, by);
  const peer = deps.mesh ? await deps.mesh.revoke(agentId) : null;
  if (!revoked && !peer) return null;
  const natsUserRemoved = await deps.removeNatsUser(agentId);
  if (deps.agents.get(agentId)) await deps.agents.send(agentId, { type: "deregister", atMs: Date.now(), reason: `revoked by ${by}` });
  const identity: AgentIdentityRow = revoked?.identity ?? {
    agentId,
    publicKey: "",
    invitationId: "",
    enrolledAt: peer!.enrolledAt,
    rekeyedAt: null,
    revokedAt: peer!.revokedAt,
    revokedBy: by,
  };
  await deps.store.appendAudit({
    at: new Date(),
    actor: by,
    action: "agent.revoke",
    target: agentId,
    details: { invitation: identity.invitationId, invitation_revoked: revoked?.invitationRevoked ?? false, nats_user_removed: natsUserRemoved, mesh_peer_removed: Boolean(peer) },
  });
  deps.log.info({ agent_id: agentId, by }, "Agent revoked");
  return { identity, invitationRevoked: revoked?.invitationRevoked ?? false, natsUserRemoved, meshPeerRemoved: Boolean(peer) };
}
