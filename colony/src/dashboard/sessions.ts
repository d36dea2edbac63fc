// Dashboard sign-in: one-time codes and the browser sessions they become.
//
// `coral dashboard` asks the colony (with its CLI token) for a code; the code
// is good for one exchange within a short time, and the session it becomes
// carries the scope of the token that asked for it, never more. Only hashes
// of codes and session ids are kept, in memory: a colony restart signs every
// browser out (run `coral dashboard` again).
import { createHash, randomBytes } from "node:crypto";
import type { Scope } from "../auth/index.ts";

/** Who a code (and then a session) acts for. */
export interface Grant {
  /** The token's name ("local" for the colony's local token). */
  name: string;
  scope: Scope;
  /** Hash of the token that asked: the session ends when that token is revoked or expires. Null for the local token. */
  tokenHash: string | null;
  /** Asked with the local token: the session works only from this machine, like the token. */
  local: boolean;
  /** When the token stops working (null: never). */
  tokenExpiresAt: Date | null;
}

export interface Session {
  grant: Grant;
  createdAt: Date;
  expiresAt: Date;
}

export interface SessionOptions {
  /** How long a code may wait for its exchange (default 60 s). */
  codeTtlMs?: number;
  /** How long a session lasts (default 12 h, never beyond its token). */
  sessionTtlMs?: number;
  now?: () => number;
}

/** At most this many codes wait at once (a caller with a token could otherwise fill memory). */
const maxPendingCodes = 1000;
const maxSessions = 10_000;

const digest = (secret: string) => createHash("sha256").update(secret).digest("hex");

export class DashboardSessions {
  private readonly codes = new Map<string, { grant: Grant; expiresAt: number }>();
  private readonly sessions = new Map<string, Session>();
  readonly codeTtlMs: number;
  readonly sessionTtlMs: number;
  private readonly now: () => number;

  constructor(options: SessionOptions = {}) {
    this.codeTtlMs = options.codeTtlMs ?? 60_000;
    this.sessionTtlMs = options.sessionTtlMs ?? 12 * 3600_000;
    this.now = options.now ?? Date.now;
  }

  /** A new one-time code for `grant`. */
  issueCode(grant: Grant): { code: string; expiresAt: Date } {
    this.prune();
    if (this.codes.size >= maxPendingCodes) throw new Error(`too many sign-in codes waiting (${maxPendingCodes}); try again in a minute`);
    const code = randomBytes(24).toString("base64url");
    const expiresAt = this.now() + this.codeTtlMs;
    this.codes.set(digest(code), { grant, expiresAt });
    return { code, expiresAt: new Date(expiresAt) };
  }

  /** Exchanges a code for a session id; undefined when the code is unknown, used or expired. A code works once. */
  redeem(code: string): { sessionId: string; session: Session } | undefined {
    const key = digest(code);
    const pending = this.codes.get(key);
    this.codes.delete(key);
    const now = this.now();
    if (!pending || pending.expiresAt <= now) return undefined;
    this.prune();
    if (this.sessions.size >= maxSessions) return undefined;
    const sessionId = randomBytes(32).toString("base64url");
    const tokenEnd = pending.grant.tokenExpiresAt?.getTime() ?? Infinity;
    const session: Session = { grant: pending.grant, createdAt: new Date(now), expiresAt: new Date(Math.min(now + this.sessionTtlMs, tokenEnd)) };
    this.sessions.set(digest(sessionId), session);
    return { sessionId, session };
  }

  /** The live session with this id, if any. */
  lookup(sessionId: string): Session | undefined {
    const key = digest(sessionId);
    const session = this.sessions.get(key);
    if (!session) return undefined;
    if (session.expiresAt.getTime() <= this.now()) {
      this.sessions.delete(key);
      return undefined;
    }
    return session;
  }

  end(sessionId: string): boolean {
    return this.sessions.delete(digest(sessionId));
  }

  private prune(): void {
    const now = this.now();
    for (const [key, c] of this.codes) if (c.expiresAt <= now) this.codes.delete(key);
    for (const [key, s] of this.sessions) if (s.expiresAt.getTime() <= now) this.sessions.delete(key);
  }
}

/** The value of cookie `name` in a Cookie header. */
export function cookieValue(header: string | null | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
