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
