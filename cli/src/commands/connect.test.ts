import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { directTarget, withoutJoinArgs } from "./connect.ts";
import { UsageError } from "./options.ts";

describe("directTarget (a sidecar's colony from its environment)", () => {
  const secret = "cd".repeat(32);

  it("needs both CORAL_COLONY_URL and CORAL_ENROLL_SECRET", () => {
    expect(directTarget({})).toBeUndefined();
    expect(directTarget({ CORAL_COLONY_URL: "http://coral-colony:9000" })).toBeUndefined();
    expect(directTarget({ CORAL_ENROLL_SECRET: secret })).toBeUndefined();
  });

  it("enrolls with the standing invitation and keeps its data under CORAL_HOME", () => {
    const target = directTarget({ CORAL_COLONY_URL: "http://coral-colony:9000", CORAL_ENROLL_SECRET: ` ${secret}\n`, CORAL_COLONY_ID: "my-shop-prod", CORAL_HOME: "/data/agent" });
    expect(target).toMatchObject({ colonyId: "my-shop-prod", colonyUrl: "http://coral-colony:9000", invitation: { invitationId: "env", invitationSecret: secret } });
    expect(target!.colonyPubkey).toBeUndefined();
    expect(target!.dataDirFor("api")).toBe("/data/agent/agents/my-shop-prod/api");
  });

  it("reads the secret from a file (CORAL_ENROLL_SECRET_FILE), and says which file it cannot read", () => {
    const file = join(mkdtempSync(join(tmpdir(), "coral-secret-")), "enroll");
    writeFileSync(file, `${secret}\n`, { mode: 0o600 });
    expect(directTarget({ CORAL_COLONY_URL: "http://c:9000", CORAL_ENROLL_SECRET_FILE: file })?.invitation?.invitationSecret).toBe(secret);
    expect(() => directTarget({ CORAL_COLONY_URL: "http://c:9000", CORAL_ENROLL_SECRET_FILE: "/nonexistent/enroll" })).toThrow(/CORAL_ENROLL_SECRET_FILE: cannot read \/nonexistent\/enroll \(ENOENT\)/);
  });

  it("still reads the old name, CORAL_COLONY_SECRET", () => {
    expect(directTarget({ CORAL_COLONY_URL: "http://c:9000", CORAL_COLONY_SECRET: secret })?.invitation).toEqual({ invitationId: "env", invitationSecret: secret });
  });

  it("refuses a malformed secret or URL with a usage error", () => {
    expect(() => directTarget({ CORAL_COLONY_URL: "http://coral-colony:9000", CORAL_ENROLL_SECRET: "short" })).toThrow(UsageError);
    expect(() => directTarget({ CORAL_COLONY_URL: "http://coral-colony:9000", CORAL_ENROLL_SECRET: "short" })).toThrow(/64 hex characters/);
    expect(() => directTarget({ CORAL_COLONY_URL: "coral-colony:9000", CORAL_ENROLL_SECRET: secret })).toThrow(/not an http\(s\) URL/);
  });
});

describe("withoutJoinArgs (what a background agent's command line keeps)", () => {
  it("drops --join and --join-file with their values, in both spellings", () => {
    expect(withoutJoinArgs(["store", "--join", "coral-join-v2.x", "--port", "1", "--join-file=/t", "--join=abc", "--join-file", "/u", "--tags", "a=b"])).toEqual([
      "store",
      "--port",
      "1",
      "--tags",
      "a=b",
    ]);
  });
});
