// Who an agent is: every agent id is pinned to the Ed25519 key it enrolled
// with, and enrolling takes an invitation (single-use and expiring unless the
// admin chose otherwise). The colony secret plays no part.
//
// Rules:
// - Every registration (and WireGuard enrollment) is signed by the agent's
//   key, fresh (±5 min) and with a nonce used once.
// - An unknown agent id needs a valid invitation; it spends one use.
// - A known agent id must use its pinned key. A different key is accepted
//   only with an invitation and only when the colony holds no live agent of
//   that id (expired or never registered): a lost key can be replaced, a
//   running agent cannot be impersonated.
// - A revoked agent id never comes back.
import { randomBytes } from "node:crypto";
import { NonceLedger } from "@coral/common/nonce-ledger";
import {
  agentPubkeyPattern,
  checkInvitationProof,
  colonyProof,
  invitationIdPattern,
  invitationKey,
  noncePattern,
  verifyRegistration,
  type EnrollmentContext,
} from "@coral/proto";
import type { ColonyStore } from "../store/index.ts";
import {
  enrollIdentity,
  getAgentIdentity,
  getInvitation,
  insertInvitation,
  listAgentIdentities,
  listInvitations,
  revokeAgentIdentity,
  revokeInvitation,
  setStandingInvitation,
  type AgentIdentityRow,
  type InvitationRow,
} from "../store/identities.ts";

export const proofWindowMs = 5 * 60_000;
export const standingInvitationId = "env";
export const maxInvitationTtlMs = 30 * 24 * 60 * 60_000;
export const maxInvitationUses = 1000;

export class IdentityError extends Error {
  override name = "IdentityError";
  constructor(
    readonly kind: "invalid" | "unauthenticated" | "permission_denied" | "unavailable",
    message: string,
  ) {
    super(message);
  }
}

export interface SignedClaim {
  agentId: string;
  agentPubkey: string;
  timestampMs: bigint;
  nonce: string;
  signature: string;
  /** SHA-256 (hex) of what the signature covers besides the fixed fields. */
  digestHex: string;
  invitation?: { invitationId: string; hmac: string } | undefined;
}

export interface Authenticated {
  identity: AgentIdentityRow;
  /** "enrolled" or "rekeyed" when an invitation was spent, else "known". */
  outcome: "enrolled" | "rekeyed" | "known";
  /** The colony's HMAC vouching for its key, when an invitation was used. */
  colonyProof: string;
}

/** Nonces seen inside the proof window; a proof is accepted once. Bounded by the window. */
export class AgentIdentities {
  // A signature is accepted within ±proofWindowMs of its timestamp.
  private readonly nonces = new NonceLedger(proofWindowMs);
  private readonly revoked = new Set<string>();

  constructor(
    private readonly store: ColonyStore,
    private readonly colonyPubkey: string,
    /** The colony's current belief about an agent id: undefined when it holds none. */
    private readonly agentState: (agentId: string) => string | undefined,
  ) {}

  /** Loads the revoked ids (heartbeats check them without a query) and sets the standing invitation. */
  async start(standingSecret: string | null): Promise<void> {
    const key = standingSecret ? await invitationKey(standingSecret) : null;
    await this.store.write((c) => setStandingInvitation(c, standingInvitationId, key, new Date()));
    for (const row of await this.store.read((c) => listAgentIdentities(c))) if (row.revokedAt) this.revoked.add(row.agentId);
  }

  isRevoked(agentId: string): boolean {
    return this.revoked.has(agentId);
  }

  async authenticate(claim: SignedClaim, now = Date.now()): Promise<Authenticated> {
    if (!agentPubkeyPattern.test(claim.agentPubkey)) throw new IdentityError("invalid", "agent_pubkey: must be an Ed25519 public key (32 bytes, base64)");
    if (!noncePattern.test(claim.nonce)) throw new IdentityError("invalid", "signature.nonce: must be 32-64 hex characters");
    if (claim.invitation && !invitationIdPattern.test(claim.invitation.invitationId))
      throw new IdentityError("invalid", "invitation.invitation_id: is not an invitation id (copy the join token again)");
    if (Math.abs(Number(claim.timestampMs) - now) > proofWindowMs)
      throw new IdentityError("unauthenticated", "signature timestamp is more than 5 minutes from the colony's clock; check the agent's clock");
    if (!(await verifyRegistration(claim.agentPubkey, claim.agentId, claim.digestHex, claim.timestampMs, claim.nonce, claim.signature)))
      throw new IdentityError("unauthenticated", "the request is not signed by agent_pubkey");
    const verdict = this.nonces.use(claim.nonce, Number(claim.timestampMs), now);
    if (verdict === "replayed") throw new IdentityError("unauthenticated", "this signature was already used (replay); sign again");
    if (verdict === "full") throw new IdentityError("unavailable", "too many registrations at once; retry in a minute");

    const identity = await this.store.read((c) => getAgentIdentity(c, claim.agentId));
    if (identity?.revokedAt)
      throw new IdentityError("permission_denied", `agent ${claim.agentId} was revoked at ${identity.revokedAt.toISOString()}; it cannot join again under this id`);
    if (identity && identity.publicKey === claim.agentPubkey) return { identity, outcome: "known", colonyProof: "" };

    const context: EnrollmentContext = { agentId: claim.agentId, agentPubkey: claim.agentPubkey, timestampMs: claim.timestampMs, nonce: claim.nonce };
    if (identity) {
      const state = this.agentState(claim.agentId);
      if (state !== undefined && state !== "expired")
        throw new IdentityError(
          "permission_denied",
          `agent id ${claim.agentId} is enrolled with another key and is ${state}; an agent cannot take over another's id (if its key was lost, wait until it expires or revoke it and use a new id)`,
        );
      if (!claim.invitation) throw new IdentityError("unauthenticated", `agent id ${claim.agentId} is enrolled with another key; enroll again with a new invitation (coral colony invite)`);
    } else if (!claim.invitation) {
      throw new IdentityError("unauthenticated", `agent ${claim.agentId} is not enrolled with this colony; join with an invitation (coral colony invite)`);
    }
    const invitation = claim.invitation!;
    const row = await this.store.read((c) => getInvitation(c, invitation.invitationId));
    if (!row || !(await checkInvitationProof(row.keyHex, context, invitation.hmac)))
      throw new IdentityError("unauthenticated", "the invitation is not valid for this colony; ask for a new join token (coral colony invite)");
    const at = new Date(now);
    const problem = await this.store.write((c) =>
      enrollIdentity(c, { agentId: claim.agentId, publicKey: claim.agentPubkey, invitationId: invitation.invitationId, at, rekey: Boolean(identity) }),
    );
    if (problem) throw new IdentityError("permission_denied", invitationProblemMessage(problem, row));
    const enrolled = await this.store.read((c) => getAgentIdentity(c, claim.agentId));
    return { identity: enrolled!, outcome: identity ? "rekeyed" : "enrolled", colonyProof: await colonyProof(row.keyHex, context, this.colonyPubkey) };
  }

  async createInvitation(request: { ttlMs: number; maxUses: number; note: string; createdBy: string }): Promise<{ row: InvitationRow; secret: string }> {
    if (!(request.ttlMs >= 1000 && request.ttlMs <= maxInvitationTtlMs)) throw new IdentityError("invalid", "ttl_seconds: must be from 1 s to 30 days");
    if (!(Number.isInteger(request.maxUses) && request.maxUses >= 1 && request.maxUses <= maxInvitationUses))
      throw new IdentityError("invalid", `uses: must be from 1 to ${maxInvitationUses}`);
    if (request.note.length > 200) throw new IdentityError("invalid", "note: at most 200 characters");
    const secret = randomBytes(32).toString("hex");
    const now = new Date();
    const row: InvitationRow = {
      invitationId: randomId(),
      keyHex: await invitationKey(secret),
      createdAt: now,
      createdBy: request.createdBy,
      expiresAt: new Date(now.getTime() + request.ttlMs),
      maxUses: request.maxUses,
      uses: 0,
      note: request.note,
      revokedAt: null,
    };
    await this.store.write((c) => insertInvitation(c, row));
    return { row, secret };
  }

  listInvitations(): Promise<InvitationRow[]> {
    return this.store.read((c) => listInvitations(c));
  }

  revokeInvitation(invitationId: string): Promise<InvitationRow | null> {
    return this.store.write((c) => revokeInvitation(c, invitationId, new Date()));
  }

  listIdentities(): Promise<AgentIdentityRow[]> {
    return this.store.read((c) => listAgentIdentities(c));
  }

  /**
   * Revokes an agent for good, and the invitation it enrolled with (whoever
   * holds that join token is not to be trusted either), unless it is the
   * standing one from the environment. Null when the agent never enrolled.
   */
  async revokeAgent(agentId: string, by: string): Promise<{ identity: AgentIdentityRow; invitationRevoked: boolean } | null> {
    const identity = await this.store.write((c) => revokeAgentIdentity(c, agentId, new Date(), by));
    if (!identity) return null;
    this.revoked.add(agentId);
    let invitationRevoked = false;
    if (identity.invitationId !== standingInvitationId) {
      const inv = await this.revokeInvitation(identity.invitationId);
      invitationRevoked = Boolean(inv?.revokedAt);
    }
    return { identity, invitationRevoked };
  }
}

function randomId(): string {
  // 12 characters of [a-z0-9]: ~62 bits, enough for ids (the secret is separate).
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  return [...randomBytes(12)].map((b) => alphabet[b % 36]).join("");
}

function invitationProblemMessage(problem: string, row: InvitationRow): string {
  switch (problem) {
    case "revoked":
      return `invitation ${row.invitationId} was revoked; ask for a new join token (coral colony invite)`;
    case "expired":
      return `invitation ${row.invitationId} expired at ${row.expiresAt?.toISOString()}; ask for a new join token (coral colony invite)`;
    case "used":
      return `invitation ${row.invitationId} was already used (${row.uses} of ${row.maxUses}); ask for a new join token (coral colony invite)`;
    default:
      return "the invitation is not valid for this colony; ask for a new join token (coral colony invite)";
  }
}
