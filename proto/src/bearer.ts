/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(authorization: string | null): string | null {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? "");
  return match?.[1] ?? null;
}

/**
 * Set by Coral's own relays (the MCP HTTP server) when they call the colony
 * for a caller on another machine: the colony then refuses its local token,
 * which works only on the colony's machine.
 */
export const relayedForHeader = "x-coral-relayed-for";
