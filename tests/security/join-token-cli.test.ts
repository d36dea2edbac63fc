// A join token must not show in `ps` (issue 17, item 8): `coral colony
// invite -o` writes it 0600, `coral connect --join-file` reads it, the
// background agent gets it through its environment (readable by its owner
// only), never its command line; a literal --join still works but warns.
// The real CLI, a real colony and the sample app.
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sampleComponentScript } from "@coral/cli/sample-app";
import { describe, expect, it } from "vitest";
import { runCoral } from "../helpers/cli.ts";
import { createTestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

describe("join tokens on the command line", () => {
  it("travel by file and environment, never argv; --join <token> warns; invitations show as used", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const appPort = await freePort();
    const app = spawn(process.execPath, [sampleComponentScript, "store", String(appPort)], { stdio: "ignore" });
    const elsewhere = await mkdtemp(join(tmpdir(), "coral-join-"));
    const env = { CORAL_HOME: join(elsewhere, "home") };
    let daemonPid = 0;
    try {
      const tokenFile = join(elsewhere, "token");
      const invite = await runCoral(["colony", "invite", "-o", tokenFile, "--note", "store on host-3"], { cwd: project.dir, env: { CORAL_HOME: project.home } });
      expect(invite.code, invite.stderr).toBe(0);
      expect(invite.stdout).toMatch(/Invitation [a-z0-9]{12}: one agent, until /);
      expect(invite.stdout).toContain(`Join token written to ${tokenFile} (0600)`);
      expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
      const token = (await readFile(tokenFile, "utf8")).trim();
      expect(invite.stdout).not.toContain(token);

      const dataDir = join(elsewhere, "agent");
      const started = await runCoral(["connect", "store", "--port", String(appPort), "--join-file", tokenFile, "--daemon", "--data-dir", dataDir], { cwd: elsewhere, env, timeoutMs: 90_000 });
      expect(started.code, started.stderr).toBe(0);
      expect(started.stdout).toContain("✓ Connected: store (agent running in the background");
      daemonPid = Number((await readFile(join(dataDir, "agent.pid"), "utf8")).trim());
      const cmdline = (await readFile(`/proc/${daemonPid}/cmdline`, "utf8")).split("\0");
      expect(cmdline.join(" ")).not.toContain(token);
      expect(cmdline).not.toContain("--join-file");
      expect(cmdline).toContain("--data-dir");
      // The environment carries it: /proc/<pid>/environ is readable by the owner only.
      expect((await stat(`/proc/${daemonPid}/environ`)).mode & 0o077).toBe(0);
      expect(started.stderr).not.toMatch(/shows the token/);

      // The invitation is spent: a literal --join (warned about) with it is refused.
      const again = await runCoral(["connect", "store", "--port", String(appPort), "--join", token, "--data-dir", join(elsewhere, "second")], { cwd: elsewhere, env });
      expect(again.stderr).toMatch(/--join <token> shows the token to every local user \(ps\)/);
      expect(again.code).toBe(1);
      expect(again.stderr).toMatch(/was already used \(1 of 1\)/);

      const listed = await runCoral(["colony", "invitations", "--json"], { cwd: project.dir, env: { CORAL_HOME: project.home } });
      expect(listed.code, listed.stderr).toBe(0);
      const invitations = (JSON.parse(listed.stdout) as { invitations: { note: string; state: string; uses: number }[] }).invitations;
      expect(invitations.find((i) => i.note === "store on host-3")).toMatchObject({ state: "used", uses: 1 });
      const table = await runCoral(["colony", "invitations"], { cwd: project.dir, env: { CORAL_HOME: project.home } });
      expect(table.stdout).toMatch(/ID\s+STATE\s+USES\s+EXPIRES/);
      expect(table.stdout).toMatch(/used\s+1\/1/);
      const agentId = (await readFile(join(dataDir, "agent-id"), "utf8")).trim();
      await waitFor("the background agent to be online", () => (colony.agents.get(agentId)?.state === "online" ? true : undefined));
    } finally {
      if (daemonPid) process.kill(daemonPid, "SIGTERM");
      app.kill("SIGKILL");
      await rm(elsewhere, { recursive: true, force: true });
    }
  }, 180_000);
});
