// `coral doctor` (issue 17, "Done when"): run as a user would against a real
// project. A fresh `coral init` project passes (exit 0); a deliberately weak
// one (API on 0.0.0.0 without TLS, plain-http discovery, an all-zero colony
// secret, a short enrollment secret, an open .coral/ with a readable token
// and store, a token that never expires) has every problem found, each with
// a fix, and exit 1. Secret values never appear in what it prints.
import { randomBytes } from "node:crypto";
import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { secretWeakness } from "@coral/cli/testing";
import { describe, expect, it } from "vitest";
import { runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject } from "../helpers/colony.ts";

const cleanEnv = { CORAL_COLONY_SECRET: undefined, CORAL_ENROLL_SECRET: undefined, CORAL_COLONY_SECRET_FILE: undefined, CORAL_ENROLL_SECRET_FILE: undefined, CORAL_DISCOVERY_URL: undefined, CORAL_API_HOST: undefined };

interface Report {
  ok: boolean;
  checks: Array<{ check: string; status: string; detail: string; fix: string | null }>;
}

describe("coral doctor", () => {
  it("passes a fresh coral init project", { timeout: 120_000 }, async () => {
    await using project = await createTestProject();
    const env = { ...cleanEnv, CORAL_HOME: project.home };
    const run = await runCoral(["doctor"], { cwd: project.dir, env });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`Coral doctor: ${project.dir} (${project.colonyId})`);
    expect(run.stdout).toMatch(/✓\s+API transport\s+127\.0\.0\.1:\d+, loopback only/);
    expect(run.stdout).toMatch(/✓\s+Secrets\s+no colony or enrollment secret here/);
    expect(run.stdout).toMatch(/✓\s+File permissions\s+\.coral is 0700; keys, tokens and data are owner-only/);
    expect(run.stdout).toMatch(/✓\s+API tokens\s+none created/);
    expect(run.stdout).toContain("✓ No problems found.");
    const json = JSON.parse((await runCoral(["doctor", "--json"], { cwd: project.dir, env })).stdout) as Report;
    expect(json.ok).toBe(true);
    expect(json.checks.map((c) => [c.check, c.status])).toEqual([
      ["api-tls", "ok"],
      ["discovery-http", "ok"],
      ["weak-secret", "ok"],
      ["file-modes", "ok"],
      ["token-expiry", "ok"],
    ]);
  });

  it("finds every problem of a weak project, with a fix for each, and exits 1", { timeout: 180_000 }, async () => {
    await using project = await createTestProject();
    const enrollSecret = "s3cr3t-enroll";
    const env = { ...cleanEnv, CORAL_HOME: project.home, CORAL_ENROLL_SECRET: enrollSecret };
    const colony = await project.start();
    const admin = colonyApi(colony.url, project.localToken);
    await admin.createToken({ name: "kiosk", scope: TokenScope.READ, neverExpires: true });
    await admin.createToken({ name: "laptop", scope: TokenScope.READ });

    // While the colony runs, tokens come from its API.
    const live = JSON.parse((await runCoral(["doctor", "--json"], { cwd: project.dir, env })).stdout) as Report;
    expect(live.checks.find((c) => c.check === "token-expiry")).toMatchObject({ status: "warning", detail: "1 never expires: kiosk" });
    await colony.close();

    await project.setConfig(["colony", "api", "host"], "0.0.0.0");
    await project.setConfig(["discovery", "endpoint"], "http://discovery.example.com");
    // A colony secret left from an older version (agents enrolled with it).
    await writeFile(join(project.dir, ".coral", "keys", "colony.secret"), `${"0".repeat(64)}\n`, { mode: 0o600 });
    await chmod(join(project.dir, ".coral"), 0o755);
    await chmod(join(project.dir, ".coral", "local.token"), 0o644);
    await chmod(join(project.dir, ".coral", "colony.duckdb"), 0o644);

    const run = await runCoral(["doctor", "--json"], { cwd: project.dir, env });
    expect(run.code).toBe(1);
    const report = JSON.parse(run.stdout) as Report;
    expect(report.ok).toBe(false);
    const found = report.checks.filter((c) => c.status !== "ok").map((c) => [c.check, c.status, c.detail]);
    expect(found).toEqual([
      ["api-tls", "error", expect.stringMatching(/^listens on 0\.0\.0\.0:\d+ without TLS: tokens and data cross the network in clear$/)],
      ["discovery-http", "warning", expect.stringMatching(/^http:\/\/discovery\.example\.com is plain http beyond this machine/)],
      ["weak-secret", "error", ".coral/keys/colony.secret is all zeros"],
      ["weak-secret", "error", "CORAL_ENROLL_SECRET is 13 bytes; it needs at least 32 random bytes"],
      ["file-modes", "warning", ".coral is 0755: other users can list and enter it"],
      ["file-modes", "error", "keys or tokens others can read: .coral/local.token (0644)"],
      ["file-modes", "warning", "data others can read: .coral/colony.duckdb (0644)"],
      // The colony is stopped: read from its store, read-only.
      ["token-expiry", "warning", "1 never expires: kiosk"],
    ]);
    for (const c of report.checks) if (c.status !== "ok") expect([c.check, c.fix]).toEqual([c.check, expect.stringMatching(/\S/)]);
    expect(report.checks.find((c) => c.detail.includes("local.token"))!.fix).toBe(`chmod 600 ${join(project.dir, ".coral", "local.token")}`);
    expect(report.checks.find((c) => c.check === "weak-secret" && c.detail.startsWith("CORAL_ENROLL"))!.fix).toBe("set CORAL_ENROLL_SECRET to 32 random bytes: openssl rand -hex 32");

    const table = await runCoral(["doctor"], { cwd: project.dir, env });
    expect(table.code).toBe(1);
    expect(table.stdout).toMatch(/✗\s+API transport\s+listens on 0\.0\.0\.0/);
    expect(table.stdout).toMatch(/⚠\s+API tokens\s+1 never expires: kiosk/);
    expect(table.stdout).toContain("8 problems to fix:");
    expect(table.stdout).toContain("    fix: set colony.api.tls (cert and key) in .coral/config.yaml, or colony.api.host: 127.0.0.1 behind a TLS proxy");
    expect(table.stdout + table.stderr).not.toContain(enrollSecret);
  });
});

describe("weak secrets", () => {
  it.each([
    ["0".repeat(64), "is all zeros"],
    ["ff".repeat(32), "is one byte repeated"],
    ["deadbeef".repeat(8), "repeats a 4-byte pattern"],
    [Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString("hex"), "is a counting sequence"],
    ["abcd".repeat(8), "is 16 bytes; it needs at least 32 random bytes"],
    // The first 32 digits of pi, as text: 32 bytes, but only digits.
    [Buffer.from("31415926535897932384626433832795").toString("hex"), "uses only 9 distinct byte values (low entropy)"],
  ])("%s %s", (secret, why) => {
    expect(secretWeakness(secret)).toBe(why);
  });

  it("accepts random 32-byte secrets", () => {
    for (let i = 0; i < 200; i++) expect(secretWeakness(randomBytes(32).toString("hex"))).toBeUndefined();
  });
});
