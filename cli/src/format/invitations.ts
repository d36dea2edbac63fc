// `coral colony invitations`: ID STATE USES EXPIRES CREATED BY NOTE.
import type { ListInvitationsResponse } from "@coral/proto/gen/coral/colony/v1/identity_pb";
import { clip, colors, columns, formatTime, type FormatOptions } from "./text.ts";

export const noInvitationsHint = "No invitations yet. Make one with: coral colony invite";

export function formatInvitations(res: ListInvitationsResponse, options: FormatOptions): string {
  const c = colors(options.color);
  if (res.invitations.length === 0) return noInvitationsHint;
  const tone = (state: string) => (state === "active" ? c.green(state) : state === "revoked" ? c.red(state) : c.dim(state));
  const rows = res.invitations.map((i) => [
    i.invitationId,
    tone(i.state),
    i.maxUses === 0 ? `${i.uses}/∞` : `${i.uses}/${i.maxUses}`,
    i.expiresAt ? formatTime(i.expiresAt, options) : "never",
    formatTime(i.createdAt, options),
    i.createdBy,
    clip(i.note, 40),
  ]);
  const [head, ...lines] = columns(["ID", "STATE", "USES", "EXPIRES", options.utc ? "CREATED (UTC)" : "CREATED", "BY", "NOTE"], rows);
  return [c.bold(head!), ...lines].join("\n");
}
