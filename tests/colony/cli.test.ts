// The coral CLI, run as a process, against a real colony: locally (local
// token) and remotely (--colony-url with a good, a revoked and no token).
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCoral } from "../helpers/cli.ts";
import { createTestProject } from "../helpers/colony.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";

describe("coral CLI against a colony", () => {
  it("works locally without a token and remotely only with a valid one", { timeout: 180_000 }, async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const port = String(new URL(colony.url).port);
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: port };
    await using agent = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "api-1", serviceName: "api", port: 8080, version: "2.1.0" });
    await agent.register();
    await agent.heartbeat();

    const local = await runCoral(["status"], { cwd: project.dir, env });
    expect(local.stderr).toBe("");
    expect(local.code).toBe(0);
    expect(local.stdout).toContain("APPLICATION: shop (dev)");
    expect(local.stdout).toMatch(/api\s+●\s+up\s+2\.1\.0/);

    const anonymous = await runCoral(["status", "--colony-url", colony.url], { env });
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/not authenticated: this colony needs a token for remote calls/);

    const created = await runCoral(["token", "create", "--name", "ci", "--scope", "read", "--json"], { cwd: project.dir, env });
    expect(created.code).toBe(0);
    const { token, expires_at } = JSON.parse(created.stdout) as { token: string; expires_at: string };
    // Tokens expire in 90 days unless asked otherwise.
    expect(Math.abs(Date.parse(expires_at) - (Date.now() + 90 * 86_400_000))).toBeLessThan(5 * 60_000);

    const forever = await runCoral(["token", "create", "--name", "kiosk", "--ttl", "never"], { cwd: project.dir, env });
    expect(forever.code).toBe(0);
    expect(forever.stdout).toContain("✓ Token created: kiosk (read, never expires)");
    expect(forever.stdout).toContain("It never expires: revoke it when it is no longer needed (coral token revoke <name>).");
    const day = await runCoral(["token", "create", "--name", "today", "--ttl", "1d"], { cwd: project.dir, env });
    expect(day.stdout).toMatch(/^✓ Token created: today \(read, expires \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\)$/m);
    const list = await runCoral(["token", "list"], { cwd: project.dir, env });
    expect(list.stdout).toMatch(/^NAME\s+SCOPE\s+CREATED\s+LAST USED\s+EXPIRES\s+STATUS$/m);
    expect(list.stdout).toMatch(/^kiosk\s+read\s+\S+ \S+\s+never\s+never\s+active$/m);
    const listed = JSON.parse((await runCoral(["token", "list", "--json"], { cwd: project.dir, env })).stdout) as { tokens: Array<{ name: string; neverExpires: boolean; expired: boolean; expiresAt?: string }> };
    expect(listed.tokens.find((t) => t.name === "kiosk")).toMatchObject({ neverExpires: true, expired: false });
    const ci = listed.tokens.find((t) => t.name === "ci")!;
    expect(ci).toMatchObject({ neverExpires: false, expired: false });
    expect(Date.parse(ci.expiresAt!)).toBe(Date.parse(expires_at));
    const tooShort = await runCoral(["token", "create", "--name", "blink", "--ttl", "10s"], { cwd: project.dir, env });
    expect(tooShort.code).toBe(2);
    expect(tooShort.stderr).toMatch(/option '--ttl <duration>' argument '10s' is invalid\. must be from 1m to 3650d \(or never\), got 10s/);

    const remote = await runCoral(["status", "--json"], { env: { ...env, CORAL_COLONY_URL: colony.url, CORAL_TOKEN: token } });
    expect(remote.code).toBe(0);
    const status = JSON.parse(remote.stdout) as { colonyId: string; services: Array<{ name: string; status: string }> };
    expect(status.colonyId).toBe(project.colonyId);
    expect(status.services.map((s) => [s.name, s.status])).toEqual([["api", "online"]]);

    const denied = await runCoral(["token", "create", "--name", "x", "--colony-url", colony.url, "--token", token], { env });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/permission denied: CreateToken needs an admin token/);

    expect((await runCoral(["token", "revoke", "ci"], { cwd: project.dir, env })).code).toBe(0);
    const revoked = await runCoral(["events", "--colony-url", colony.url, "--token", token], { env });
    expect(revoked.code).toBe(1);
    expect(revoked.stderr).toMatch(/"ci" was revoked/);

    const dot = join(project.dir, "topology.dot");
    const topology = await runCoral(["topology", "--export", dot], { cwd: project.dir, env });
    expect(topology.code).toBe(0);
    expect(existsSync(dot)).toBe(true);
    expect(await readFile(dot, "utf8")).toMatch(/digraph/);

    const unreachable = await runCoral(["status", "--colony-url", "http://127.0.0.1:1", "--token", "x"], { env });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/colony not reachable at http:\/\/127\.0\.0\.1:1/);
  });

  it("answers bad flags with usage errors (exit 2) and bad config with the key at fault", { timeout: 180_000 }, async () => {
    await using project = await createTestProject();
    const env = { CORAL_HOME: project.home };
    const since = await runCoral(["events", "--since", "banana"], { cwd: project.dir, env });
    expect(since.code).toBe(2);
    expect(since.stderr).toMatch(/--since/);
    const port = await runCoral(["up", "--discovery-port", "99999"], { cwd: project.dir, env });
    expect(port.code).toBe(2);
    const unknown = await runCoral(["status", "--bogus"], { cwd: project.dir, env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown option '--bogus'/);

    await writeFile(join(project.dir, ".coral", "config.yaml"), "colony:\n  app_name: shop\n  api:\n    port: 70000\n");
    const start = await runCoral(["colony", "start"], { cwd: project.dir, env });
    expect(start.code).toBe(1);
    expect(start.stderr).toMatch(/config\.yaml: colony\.api\.port/);
    expect(await runCoral(["init", "--app", "Bad App!", "--yes"], { cwd: project.dir, env })).toMatchObject({ code: 1 });
  });
});
