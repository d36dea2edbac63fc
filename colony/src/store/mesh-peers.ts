// Mesh peers: the persistent allocation of mesh addresses per agent id.
import { all, dateOrNull, date, exec, str, ts, type Conn, type Row } from "./sql.ts";

export interface MeshPeerRow {
  agentId: string;
  publicKey: string;
  meshIpv4: string;
  meshIpv6: string;
  enrolledAt: Date;
  updatedAt: Date;
  revokedAt: Date | null;
}

function toPeer(r: Row): MeshPeerRow {
  return {
    agentId: str(r.agent_id),
    publicKey: str(r.public_key),
    meshIpv4: str(r.mesh_ipv4),
    meshIpv6: str(r.mesh_ipv6),
    enrolledAt: date(r.enrolled_at),
    updatedAt: date(r.updated_at),
    revokedAt: dateOrNull(r.revoked_at),
  };
}

export async function getMeshPeer(conn: Conn, agentId: string): Promise<MeshPeerRow | null> {
  const rows = await all(conn, "SELECT * FROM mesh_peers WHERE agent_id = $1", [agentId]);
  return rows[0] ? toPeer(rows[0]) : null;
}

export async function listMeshPeers(conn: Conn): Promise<MeshPeerRow[]> {
  return (await all(conn, "SELECT * FROM mesh_peers ORDER BY enrolled_at, agent_id")).map(toPeer);
}

/**
 * The agent's peer row: its existing address (the key may change, e.g. after
 * its state folder was lost) or the lowest free host number. Call inside the
 * store's single writer so two enrollments never get the same address.
 */
export async function allocateMeshPeer(
  conn: Conn,
  request: { agentId: string; publicKey: string; at: Date; addressFor: (host: number) => { ipv4: string; ipv6: string }; maxHost: number },
): Promise<MeshPeerRow> {
  const existing = await getMeshPeer(conn, request.agentId);
  if (existing) {
    if (existing.publicKey !== request.publicKey)
      await exec(conn, "UPDATE mesh_peers SET public_key = $2, updated_at = $3 WHERE agent_id = $1", [request.agentId, request.publicKey, ts(request.at)]);
    return { ...existing, publicKey: request.publicKey, updatedAt: existing.publicKey !== request.publicKey ? request.at : existing.updatedAt };
  }
  const taken = new Set((await all(conn, "SELECT mesh_ipv4 FROM mesh_peers")).map((r) => str(r.mesh_ipv4)));
  for (let host = 2; host <= request.maxHost; host++) {
    const { ipv4, ipv6 } = request.addressFor(host);
    if (taken.has(ipv4)) continue;
    await exec(
      conn,
      `INSERT INTO mesh_peers (agent_id, public_key, mesh_ipv4, mesh_ipv6, enrolled_at, updated_at, revoked_at)
       VALUES ($1, $2, $3, $4, $5, $5, NULL)`,
      [request.agentId, request.publicKey, ipv4, ipv6, ts(request.at)],
    );
    return { agentId: request.agentId, publicKey: request.publicKey, meshIpv4: ipv4, meshIpv6: ipv6, enrolledAt: request.at, updatedAt: request.at, revokedAt: null };
  }
  throw new Error(`the mesh has no free address left (${request.maxHost - 1} peers)`);
}

/** Marks the peer revoked; null when unknown. */
export async function revokeMeshPeer(conn: Conn, agentId: string, at: Date): Promise<MeshPeerRow | null> {
  await exec(conn, "UPDATE mesh_peers SET revoked_at = $2 WHERE agent_id = $1 AND revoked_at IS NULL", [agentId, ts(at)]);
  return getMeshPeer(conn, agentId);
}
