// Lookup answers say when the registration they show expires, in a header, so
// an HTTP cache in front of the worker (the self-hosted front's answer cache)
// never keeps one past that instant.
import type { HandlerContext } from "@connectrpc/connect";
import { timestampMs, type Timestamp } from "@bufbuild/protobuf/wkt";

/** When the registration shown expires, in ms since the epoch. */
export const expiresAtHeader = "coral-expires-at-ms";

export function expiryHeaders(expiresAt: Timestamp | undefined): Record<string, string> {
  return expiresAt ? { [expiresAtHeader]: String(timestampMs(expiresAt)) } : {};
}

/** Sets the header on a Connect answer and hands the answer back. */
export function withExpiry<A extends { expiresAt?: Timestamp }>(ctx: HandlerContext, answer: A): A {
  if (answer.expiresAt) ctx.responseHeader.set(expiresAtHeader, String(timestampMs(answer.expiresAt)));
  return answer;
}

/**
 * On the answer to a registration that was a pure refresh (same mesh, key and
 * fields as the registration held), sent only to the self-hosted front (the
 * worker runs behind one when FRONT_SECRET is set), which drops it before the
 * caller sees it: what the refresh changed in the lookup answers of that key,
 * so the front can update the answers it keeps rather than drop them and ask
 * the worker again. JSON of a RefreshNote.
 */
export const refreshedHeader = "coral-refreshed";

export interface RefreshNote {
  /** The registration's key in its mesh: `colony`, or `agent:<agent id>`. */
  key: string;
  identityPubkey: string;
  /** The signature's signedAtMs, in decimal. */
  signedAtMs: string;
  signature: string;
  observedIp: string;
  lastSeenMs: number;
  expiresAtMs: number;
}
