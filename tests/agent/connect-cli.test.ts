// `coral connect` as a user runs it: with a join token found through a real
// discovery service (verified against the colony key it carries), and the
// refusals when the token or flags are wrong.
import { spawn } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeJoinToken, encodeJoinToken, generateIdentityKey } from "@coral/proto";
import { describe, expect, it } from "vitest";
import { sampleComponentScript } from "@coral/cli/sample-app";
import { coralBin, runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { startTestDiscovery } from "../helpers/discovery.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

describe("coral connect", () => {
  it("joins with a token through discovery and refuses a token whose colony key does not match", async () => {
    await using discovery = await startTestDiscovery();
    await using project = await createTestProject();
    await project.setConfig(["discovery", "endpoint"], discovery.url);
    const colony = await project.start();
    const apiPort = new URL(colony.url).port;
    const appPort = await freePort();
    const app = spawn(process.execPath, [sampleComponentScript, "store", String(appPort)], { stdio: "ignore" });
    const elsewhere = await mkdtemp(join(tmpdir(), "coral-elsewhere-"));
    const env = { CORAL_HOME: join(elsewhere, "home"), CORAL_API_PORT: apiPort };
    try {
      const invite = await runCoral(["colony", "invite", "--json"], { cwd: project.dir, env: { CORAL_HOME: project.home, CORAL_API_PORT: apiPort } });
      expect(invite.code).toBe(0);
      const { token } = JSON.parse(invite.stdout) as { token: string };
      expect(token).toMatch(/^coral-join-v2\./);
      // The token from a file, out of ps and shell history.
      const tokenFile = join(elsewhere, "join-token");
      await writeFile(tokenFile, token + "\n", { mode: 0o600 });

      const agent = spawn(process.execPath, [coralBin, "connect", "store", "--port", String(appPort), "--join-file", tokenFile], {
        cwd: elsewhere,
        env: { ...process.env, ...env, NO_COLOR: "1" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      agent.stdout!.on("data", (d: Buffer) => (out += d.toString()));
      agent.stderr!.on("data", (d: Buffer) => (out += d.toString()));
      try {
        await waitFor("the agent to connect", () => (out.includes(`✓ Connected: store (localhost:${appPort})`) && out.includes("  Watching: ") && out.includes("Observing: pid") ? true : undefined), {
          timeoutMs: 60_000,
        });
        expect(out).toContain(`Colony: ${project.colonyId}`);
        const api = colonyApi(colony.url, project.localToken);
        await waitFor("the colony to see store", async () => ((await api.getStatus({})).services[0]?.pid === app.pid ? true : undefined));
      } finally {
        const exited = new Promise((r) => agent.once("exit", r));
        agent.kill("SIGTERM");
        await exited;
      }
      expect(agent.exitCode).toBe(0);

      const decoded = decodeJoinToken(token);
      if ("error" in decoded) throw new Error(decoded.error);
      const forged = encodeJoinToken({ ...decoded.token, colonyPubkey: (await generateIdentityKey()).publicKey });
      const refused = await runCoral(["connect", "store", "--port", String(appPort), "--join", forged], { cwd: elsewhere, env });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/not signed by the pinned key; refusing it/);

      const damaged = await runCoral(["connect", "store", "--port", String(appPort), "--join", "coral-join-v2.garbage"], { cwd: elsewhere, env });
      expect(damaged.code).toBe(2);
      expect(damaged.stderr).toMatch(/--join: join token is damaged/);
      const legacy = await runCoral(["connect", "store", "--port", String(appPort), "--join", "coral-join-v1.eyJjIjoieCJ9"], { cwd: elsewhere, env });
      expect(legacy.code).toBe(2);
      expect(legacy.stderr).toMatch(/older Coral.*coral colony invite/);
      const noPort = await runCoral(["connect", "store"], { cwd: elsewhere, env });
      expect(noPort.code).toBe(2);
      expect(noPort.stderr).toMatch(/--port is required/);
    } finally {
      app.kill("SIGKILL");
    }
  }, 180_000);

  it("runs in the background with --daemon beside the local colony, without a token", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const appPort = await freePort();
    const app = spawn(process.execPath, [sampleComponentScript, "store", String(appPort)], { stdio: "ignore" });
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port };
    let pid = 0;
    try {
      const res = await runCoral(["connect", "store", "--port", String(appPort), "--daemon"], { cwd: project.dir, env });
      expect(res.stderr).toBe("");
      const match = /agent running in the background, pid (\d+)/.exec(res.stdout);
      expect(match).not.toBeNull();
      pid = Number(match![1]);
      const api = colonyApi(colony.url, project.localToken);
      await waitFor("the daemon agent to report the store", async () => ((await api.getStatus({})).services[0]?.pid === app.pid ? true : undefined));
      // SIGTERM stops it for good, also when the colony goes away meanwhile.
      process.kill(pid, "SIGTERM");
      await colony.close();
      await waitFor("the daemon agent to exit", () => (isRunning(pid) ? undefined : true), { timeoutMs: 60_000 });
      pid = 0;
    } finally {
      if (pid && isRunning(pid)) process.kill(pid, "SIGKILL");
      app.kill("SIGKILL");
    }
  }, 180_000);
});

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
