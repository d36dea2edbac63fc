// API bearer tokens (only their sha256 is stored). expires_at NULL = never.
import { all, date, dateOrNull, exec, str, ts, tsOrNull, type Conn, type Row } from "./sql.ts";
import type { TokenRow } from "./types.ts";

export function toToken(r: Row): TokenRow {
  return {
    name: str(r.name),
    scope: str(r.scope) as TokenRow["scope"],
    tokenHash: str(r.token_hash),
    createdAt: date(r.created_at),
    lastUsedAt: dateOrNull(r.last_used_at),
    revokedAt: dateOrNull(r.revoked_at),
    expiresAt: dateOrNull(r.expires_at),
  };
}

/** Fails with a clear error when the name or the hash is taken. */
export async function createToken(conn: Conn, row: TokenRow): Promise<void> {
  if (!row.name) throw new Error("createToken: name is required");
  if (!["read", "admin", "exec"].includes(row.scope)) {
    throw new Error(`createToken ${row.name}: scope must be "read", "admin" or "exec", not "${String(row.scope)}"`);
  }
  if (row.expiresAt && !(row.expiresAt.getTime() > row.createdAt.getTime())) {
    throw new Error(`createToken ${row.name}: expiresAt must be after createdAt`);
  }
  if (!/^[0-9a-f]{64}$/.test(row.tokenHash)) {
    throw new Error(`createToken ${row.name}: tokenHash must be a lowercase sha256 hex digest`);
  }
  const clash = await all(conn, "SELECT name FROM api_tokens WHERE name = $1 OR token_hash = $2", [
    row.name,
    row.tokenHash,
  ]);
  if (clash.length > 0) {
    const byName = clash.some((r) => r.name === row.name);
    throw new Error(
      byName ? `a token named "${row.name}" already exists` : `createToken ${row.name}: this token is already stored`,
    );
  }
  await exec(
    conn,
    `INSERT INTO api_tokens (name, scope, token_hash, created_at, last_used_at, revoked_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [row.name, row.scope, row.tokenHash, ts(row.createdAt), tsOrNull(row.lastUsedAt), tsOrNull(row.revokedAt), tsOrNull(row.expiresAt ?? null)],
  );
}

/** The token with this hash, revoked or expired or not (the caller checks revokedAt and expiresAt). */
export async function findTokenByHash(conn: Conn, tokenHash: string): Promise<TokenRow | null> {
  const rows = await all(conn, "SELECT * FROM api_tokens WHERE token_hash = $1", [tokenHash]);
  return rows[0] ? toToken(rows[0]) : null;
}

/** True when a live token was revoked now; false when unknown or already revoked. */
export async function revokeToken(conn: Conn, name: string, at = new Date()): Promise<boolean> {
  const changed = await exec(conn, "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL", [
    name,
    ts(at),
  ]);
  return changed > 0;
}

export async function listTokens(conn: Conn): Promise<TokenRow[]> {
  return (await all(conn, "SELECT * FROM api_tokens ORDER BY created_at, name")).map(toToken);
}

export async function touchToken(conn: Conn, name: string, at: Date): Promise<void> {
  await exec(conn, "UPDATE api_tokens SET last_used_at = $2 WHERE name = $1", [name, ts(at)]);
}

/** True when the token has an expiry and it has passed at `now`. */
export function tokenExpired(row: Pick<TokenRow, "expiresAt">, now: Date = new Date()): boolean {
  return row.expiresAt != null && row.expiresAt.getTime() <= now.getTime();
}
