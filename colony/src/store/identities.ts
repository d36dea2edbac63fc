// Invitations and agent identities (see ../agents/identities.ts for the rules).
import { all, dateOrNull, date, exec, num, str, transaction, ts, tsOrNull, type Conn, type Row } from "./sql.ts";

export interface InvitationRow {
  invitationId: string;
  /** HMAC key derived from the invitation secret (hex); the secret is not kept. */
  keyHex: string;
  createdAt: Date;
  createdBy: string;
  /** null: never (only the standing CORAL_ENROLL_SECRET invitation). */
  expiresAt: Date | null;
  /** 0: unlimited (only the standing invitation). */
  maxUses: number;
  uses: number;
  note: string;
  revokedAt: Date | null;
}

export interface AgentIdentityRow {
  agentId: string;
  publicKey: string;
  invitationId: string;
  enrolledAt: Date;
  rekeyedAt: Date | null;
  revokedAt: Date | null;
  revokedBy: string | null;
}

function toInvitation(r: Row): InvitationRow {
  return {
    invitationId: str(r.invitation_id),
    keyHex: str(r.key_hex),
    createdAt: date(r.created_at),
    createdBy: str(r.created_by),
    expiresAt: dateOrNull(r.expires_at),
    maxUses: num(r.max_uses),
    uses: num(r.uses),
    note: str(r.note),
    revokedAt: dateOrNull(r.revoked_at),
  };
}

function toIdentity(r: Row): AgentIdentityRow {
  return {
    agentId: str(r.agent_id),
    publicKey: str(r.public_key),
    invitationId: str(r.invitation_id),
    enrolledAt: date(r.enrolled_at),
    rekeyedAt: dateOrNull(r.rekeyed_at),
    revokedAt: dateOrNull(r.revoked_at),
    revokedBy: r.revoked_by === null || r.revoked_by === undefined ? null : str(r.revoked_by),
  };
}

export async function insertInvitation(conn: Conn, row: InvitationRow): Promise<void> {
  await exec(
    conn,
    `INSERT INTO invitations (invitation_id, key_hex, created_at, created_by, expires_at, max_uses, uses, note, revoked_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [row.invitationId, row.keyHex, ts(row.createdAt), row.createdBy, tsOrNull(row.expiresAt), row.maxUses, row.uses, row.note, tsOrNull(row.revokedAt)],
  );
}

/** The standing invitation from the environment: created, re-keyed or revoked to match it. */
export async function setStandingInvitation(conn: Conn, id: string, keyHex: string | null, at: Date): Promise<void> {
  const existing = await getInvitation(conn, id);
  if (!keyHex) {
    if (existing && !existing.revokedAt) await exec(conn, "UPDATE invitations SET revoked_at = $2 WHERE invitation_id = $1", [id, ts(at)]);
    return;
  }
  if (!existing)
    await insertInvitation(conn, { invitationId: id, keyHex, createdAt: at, createdBy: "environment", expiresAt: null, maxUses: 0, uses: 0, note: "CORAL_ENROLL_SECRET", revokedAt: null });
  else if (existing.keyHex !== keyHex || existing.revokedAt)
    await exec(conn, "UPDATE invitations SET key_hex = $2, revoked_at = NULL, created_at = $3 WHERE invitation_id = $1", [id, keyHex, ts(at)]);
}

export async function getInvitation(conn: Conn, id: string): Promise<InvitationRow | null> {
  const rows = await all(conn, "SELECT * FROM invitations WHERE invitation_id = $1", [id]);
  return rows[0] ? toInvitation(rows[0]) : null;
}

export async function listInvitations(conn: Conn): Promise<InvitationRow[]> {
  return (await all(conn, "SELECT * FROM invitations ORDER BY created_at DESC, invitation_id")).map(toInvitation);
}

/** Revokes an invitation; null when unknown. */
export async function revokeInvitation(conn: Conn, id: string, at: Date): Promise<InvitationRow | null> {
  await exec(conn, "UPDATE invitations SET revoked_at = $2 WHERE invitation_id = $1 AND revoked_at IS NULL", [id, ts(at)]);
  return getInvitation(conn, id);
}

export async function getAgentIdentity(conn: Conn, agentId: string): Promise<AgentIdentityRow | null> {
  const rows = await all(conn, "SELECT * FROM agent_identities WHERE agent_id = $1", [agentId]);
  return rows[0] ? toIdentity(rows[0]) : null;
}

export async function listAgentIdentities(conn: Conn): Promise<AgentIdentityRow[]> {
  return (await all(conn, "SELECT * FROM agent_identities ORDER BY enrolled_at, agent_id")).map(toIdentity);
}

/**
 * Spends one use of the invitation and pins the agent's key, in one
 * transaction: two agents racing for the last use cannot both win.
 * Returns why not, or null when done.
 */
export async function enrollIdentity(
  conn: Conn,
  request: { agentId: string; publicKey: string; invitationId: string; at: Date; rekey: boolean },
): Promise<string | null> {
  return transaction(conn, async () => {
    const invitation = await getInvitation(conn, request.invitationId);
    if (!invitation) return "unknown";
    if (invitation.revokedAt) return "revoked";
    if (invitation.expiresAt && invitation.expiresAt.getTime() <= request.at.getTime()) return "expired";
    if (invitation.maxUses > 0 && invitation.uses >= invitation.maxUses) return "used";
    await exec(conn, "UPDATE invitations SET uses = uses + 1 WHERE invitation_id = $1", [request.invitationId]);
    if (request.rekey)
      await exec(conn, "UPDATE agent_identities SET public_key = $2, invitation_id = $3, rekeyed_at = $4 WHERE agent_id = $1", [
        request.agentId,
        request.publicKey,
        request.invitationId,
        ts(request.at),
      ]);
    else
      await exec(conn, "INSERT INTO agent_identities (agent_id, public_key, invitation_id, enrolled_at) VALUES ($1, $2, $3, $4)", [
        request.agentId,
        request.publicKey,
        request.invitationId,
        ts(request.at),
      ]);
    return null;
  });
}

export async function revokeAgentIdentity(conn: Conn, agentId: string, at: Date, by: string): Promise<AgentIdentityRow | null> {
  await exec(conn, "UPDATE agent_identities SET revoked_at = $2, revoked_by = $3 WHERE agent_id = $1 AND revoked_at IS NULL", [agentId, ts(at), by]);
  return getAgentIdentity(conn, agentId);
}
