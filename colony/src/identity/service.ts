// IdentityService: invitations and agent identities (admin tokens only; see auth/).
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { AgentIdentitySchema, IdentityService, InvitationSchema, type AgentIdentity, type Invitation } from "@coral/proto/gen/coral/colony/v1/identity_pb";
import { invitationIdPattern } from "@coral/proto";
import { callerKey } from "../auth/index.ts";
import type { ApiDeps } from "../api/deps.ts";
import type { AgentIdentityRow, InvitationRow } from "../store/identities.ts";
import { IdentityError } from "./identities.ts";
import { revokeAgentEverywhere } from "./revoke.ts";

const ts = (d: Date | null) => (d ? timestampFromDate(d) : undefined);

export function invitationState(row: InvitationRow, now = Date.now()): "active" | "used" | "expired" | "revoked" {
  if (row.revokedAt) return "revoked";
  if (row.expiresAt && row.expiresAt.getTime() <= now) return "expired";
  if (row.maxUses > 0 && row.uses >= row.maxUses) return "used";
  return "active";
}

function toInvitation(row: InvitationRow): Invitation {
  return create(InvitationSchema, {
    invitationId: row.invitationId,
    createdAt: ts(row.createdAt),
    createdBy: row.createdBy,
    expiresAt: ts(row.expiresAt),
    maxUses: row.maxUses,
    uses: row.uses,
    note: row.note,
    revokedAt: ts(row.revokedAt),
    state: invitationState(row),
  });
}

function toIdentity(row: AgentIdentityRow): AgentIdentity {
  return create(AgentIdentitySchema, {
    agentId: row.agentId,
    publicKey: row.publicKey,
    invitationId: row.invitationId,
    enrolledAt: ts(row.enrolledAt),
    rekeyedAt: ts(row.rekeyedAt),
    revokedAt: ts(row.revokedAt),
    revokedBy: row.revokedBy ?? "",
  });
}

const who = (ctx: HandlerContext) => ctx.values.get(callerKey)?.name ?? "unknown";

function checkAgentId(agentId: string): void {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(agentId)) throw new ConnectError(`agent_id: "${agentId.slice(0, 40)}" must be 1-128 letters, digits, - or _`, Code.InvalidArgument);
}

export function identityService(deps: ApiDeps): ServiceImpl<typeof IdentityService> {
  return {
    async createInvitation(req, ctx) {
      try {
        const { row, secret } = await deps.identities.createInvitation({
          ttlMs: (req.ttlSeconds || 3600) * 1000,
          maxUses: req.maxUses || 1,
          note: req.note,
          createdBy: who(ctx),
        });
        await deps.store.appendAudit({ at: new Date(), actor: who(ctx), action: "invitation.create", target: row.invitationId, details: { expires_at: row.expiresAt?.toISOString(), max_uses: row.maxUses, note: row.note } });
        return { invitation: toInvitation(row), secret, joinToken: await deps.joinToken({ invitationId: row.invitationId, invitationSecret: secret }) };
      } catch (err) {
        if (err instanceof IdentityError) throw new ConnectError(err.message, Code.InvalidArgument);
        throw err;
      }
    },

    async listInvitations() {
      return { invitations: (await deps.identities.listInvitations()).map(toInvitation) };
    },

    async revokeInvitation(req, ctx) {
      if (!invitationIdPattern.test(req.invitationId)) throw new ConnectError(`invitation_id: "${req.invitationId.slice(0, 40)}" is not an invitation id`, Code.InvalidArgument);
      const row = await deps.identities.revokeInvitation(req.invitationId);
      if (!row) throw new ConnectError(`no invitation ${req.invitationId}; list them with: coral colony invitations`, Code.NotFound);
      await deps.store.appendAudit({ at: new Date(), actor: who(ctx), action: "invitation.revoke", target: row.invitationId, details: {} });
      return { invitation: toInvitation(row) };
    },

    async listAgentIdentities() {
      return { agents: (await deps.identities.listIdentities()).map(toIdentity) };
    },

    async revokeAgent(req, ctx) {
      checkAgentId(req.agentId);
      const outcome = await revokeAgentEverywhere(deps, req.agentId, who(ctx));
      if (!outcome) throw new ConnectError(`agent ${req.agentId} never enrolled with this colony; list agents with: coral status`, Code.NotFound);
      return {
        agent: toIdentity(outcome.identity),
        invitationRevoked: outcome.invitationRevoked,
        natsUserRemoved: outcome.natsUserRemoved,
        meshPeerRemoved: outcome.meshPeerRemoved,
      };
    },
  };
}
