// The join token `coral colony invite` prints for agents: everything an agent
// needs to find its colony, trust it (the colony's identity key) and enroll
// once (an invitation: single-use and expiring unless the admin chose
// otherwise). It does not hold the colony's secrets; still, share it like a
// password until it is used or expires.
import { base64UrlToBase64, fromBase64, toBase64 } from "./base64.ts";
import { invitationIdPattern, invitationSecretPattern } from "./enrollment.ts";

export interface JoinToken {
  colonyId: string;
  /** Discovery endpoint, "" when the colony does not register with one. */
  discoveryUrl: string;
  /** The colony's Ed25519 identity public key (base64); agents pin it. */
  colonyPubkey: string;
  /** Where the colony's API answers when reachable directly (loopback mode). */
  colonyUrl: string;
  /**
   * "sha256:<hex>" of the colony's bootstrap CA certificate (wireguard mode);
   * the agent pins it for first contact.
   */
  caFingerprint?: string;
  invitationId: string;
  /** The invitation secret (64 hex). */
  invitationSecret: string;
}

const prefix = "coral-join-v2.";
const legacyPrefix = "coral-join-v1.";

export function encodeJoinToken(token: JoinToken): string {
  const json = JSON.stringify({
    c: token.colonyId,
    d: token.discoveryUrl,
    k: token.colonyPubkey,
    u: token.colonyUrl,
    ...(token.caFingerprint ? { f: token.caFingerprint } : {}),
    i: token.invitationId,
    s: token.invitationSecret,
  });
  return prefix + toBase64(new TextEncoder().encode(json)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function decodeJoinToken(text: string): { token: JoinToken } | { error: string } {
  const trimmed = text.trim();
  if (trimmed.startsWith(legacyPrefix))
    return {
      error:
        "this join token is from an older Coral: it carries the colony secret, which colonies no longer accept for agents. Ask for a new one with: coral colony invite",
    };
  if (!trimmed.startsWith(prefix)) return { error: `a join token starts with "${prefix}"; get one with: coral colony invite` };
  try {
    const json = JSON.parse(new TextDecoder().decode(fromBase64(base64UrlToBase64(trimmed.slice(prefix.length))))) as Record<string, unknown>;
    const { c, d, k, u, f, i, s } = json;
    if (typeof c !== "string" || typeof k !== "string" || typeof i !== "string" || !invitationIdPattern.test(i) || typeof s !== "string" || !invitationSecretPattern.test(s))
      return { error: "join token is incomplete or damaged; copy it again from coral colony invite" };
    if (f !== undefined && (typeof f !== "string" || !/^sha256:[0-9a-f]{64}$/.test(f))) return { error: "join token has a damaged CA fingerprint; copy it again from coral colony invite" };
    return {
      token: {
        colonyId: c,
        discoveryUrl: typeof d === "string" ? d : "",
        colonyPubkey: k,
        colonyUrl: typeof u === "string" ? u : "",
        ...(f ? { caFingerprint: f } : {}),
        invitationId: i,
        invitationSecret: s,
      },
    };
  } catch {
    return { error: "join token is damaged; copy it again from coral colony invite" };
  }
}
