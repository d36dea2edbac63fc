// The join token `coral colony invite` prints for agents: everything an agent
// needs to find its colony and prove it may join. It holds the colony secret,
// so treat it like a password.
import { base64UrlToBase64, fromBase64, toBase64 } from "./base64.ts";

export interface JoinToken {
  colonyId: string;
  /** Discovery endpoint, "" when the colony does not register with one. */
  discoveryUrl: string;
  /** The colony's Ed25519 identity public key (base64); agents pin it. */
  colonyPubkey: string;
  /** The colony secret (hex). */
  secret: string;
  /** Where the colony's API answers when reachable directly (loopback mode). */
  colonyUrl: string;
  /**
   * "sha256:<hex>" of the colony's bootstrap CA certificate (wireguard mode);
   * the agent pins it for first contact. Absent in older tokens.
   */
  caFingerprint?: string;
}

const prefix = "coral-join-v1.";

export function encodeJoinToken(token: JoinToken): string {
  const json = JSON.stringify({ c: token.colonyId, d: token.discoveryUrl, k: token.colonyPubkey, s: token.secret, u: token.colonyUrl, ...(token.caFingerprint ? { f: token.caFingerprint } : {}) });
  return prefix + toBase64(new TextEncoder().encode(json)).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

export function decodeJoinToken(text: string): { token: JoinToken } | { error: string } {
  const trimmed = text.trim();
  if (!trimmed.startsWith(prefix)) return { error: `a join token starts with "${prefix}"; get one with: coral colony invite` };
  try {
    const json = JSON.parse(new TextDecoder().decode(fromBase64(base64UrlToBase64(trimmed.slice(prefix.length))))) as Record<string, unknown>;
    const { c, d, k, s, u, f } = json;
    if (typeof c !== "string" || typeof k !== "string" || typeof s !== "string" || !/^[0-9a-f]{64}$/.test(s))
      return { error: "join token is incomplete or damaged; copy it again from coral colony invite" };
    if (f !== undefined && (typeof f !== "string" || !/^sha256:[0-9a-f]{64}$/.test(f))) return { error: "join token has a damaged CA fingerprint; copy it again from coral colony invite" };
    return {
      token: { colonyId: c, discoveryUrl: typeof d === "string" ? d : "", colonyPubkey: k, secret: s, colonyUrl: typeof u === "string" ? u : "", ...(f ? { caFingerprint: f } : {}) },
    };
  } catch {
    return { error: "join token is damaged; copy it again from coral colony invite" };
  }
}
