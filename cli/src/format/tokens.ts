// `coral token list`: NAME SCOPE CREATED LAST USED EXPIRES STATUS.
import { TokenScope, type ListTokensResponse } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { colors, columns, formatTime, type FormatOptions } from "./text.ts";

export const noTokensHint = "No tokens yet. Create one with: coral token create --name <name> --scope read";

export function scopeName(scope: TokenScope): string {
  return scope === TokenScope.ADMIN ? "admin" : scope === TokenScope.READ ? "read" : scope === TokenScope.EXEC ? "exec" : "unspecified";
}

export function formatTokens(res: ListTokensResponse, options: FormatOptions): string {
  const c = colors(options.color);
  if (res.tokens.length === 0) return noTokensHint;
  const rows = res.tokens.map((t) => [
    t.name,
    scopeName(t.scope),
    formatTime(t.createdAt, options),
    t.lastUsedAt ? formatTime(t.lastUsedAt, options) : "never",
    t.expiresAt ? formatTime(t.expiresAt, options) : c.yellow("never"),
    t.revoked ? c.red("revoked") : t.expired ? c.red("expired") : c.green("active"),
  ]);
  const [head, ...lines] = columns(["NAME", "SCOPE", options.utc ? "CREATED (UTC)" : "CREATED", "LAST USED", "EXPIRES", "STATUS"], rows);
  return [c.bold(head!), ...lines].join("\n");
}
