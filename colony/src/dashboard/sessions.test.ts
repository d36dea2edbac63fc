import { describe, expect, it } from "vitest";
import { cookieValue, DashboardSessions, type Grant } from "./sessions.ts";

const grant: Grant = { name: "laptop", scope: "read", tokenHash: "ab", local: false, tokenExpiresAt: null };

describe("dashboard sign-in codes and sessions", () => {
  it("exchanges a code once, within its time, for a session with the token's scope", () => {
    let now = 1_000_000;
    const sessions = new DashboardSessions({ codeTtlMs: 60_000, sessionTtlMs: 3_600_000, now: () => now });
    const { code, expiresAt } = sessions.issueCode(grant);
    expect(code).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(expiresAt.getTime()).toBe(now + 60_000);
    const first = sessions.redeem(code);
    expect(first?.session.grant).toEqual(grant);
    expect(first?.session.expiresAt.getTime()).toBe(now + 3_600_000);
    expect(sessions.redeem(code)).toBeUndefined();
    expect(sessions.lookup(first!.sessionId)?.grant.scope).toBe("read");

    const late = sessions.issueCode(grant).code;
    now += 60_000;
    expect(sessions.redeem(late)).toBeUndefined();

    now += 3_600_000;
    expect(sessions.lookup(first!.sessionId)).toBeUndefined();
  });

  it("ends a session no later than its token expires, and on sign-out", () => {
    const now = 5_000_000;
    const sessions = new DashboardSessions({ now: () => now });
    const { code } = sessions.issueCode({ ...grant, tokenExpiresAt: new Date(now + 10_000) });
    const { sessionId, session } = sessions.redeem(code)!;
    expect(session.expiresAt.getTime()).toBe(now + 10_000);
    expect(sessions.end(sessionId)).toBe(true);
    expect(sessions.lookup(sessionId)).toBeUndefined();
    expect(sessions.lookup("made-up")).toBeUndefined();
  });

  it("reads the session cookie among others", () => {
    expect(cookieValue("a=1; coral_session=xyz; b=2", "coral_session")).toBe("xyz");
    expect(cookieValue("coral_session_x=1", "coral_session")).toBeUndefined();
    expect(cookieValue(undefined, "coral_session")).toBeUndefined();
  });
});
