// The README's run command: `coral up` brings up discovery, a colony with its
// own NATS, the sample app and one agent observing its three parts, prints status and
// topology, and stops everything on Ctrl+C.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { coralBin, runCoral } from "../helpers/cli.ts";
import { killLeftoverNats } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

describe("coral up", () => {
  it("runs the whole local system and stops it cleanly", async () => {
    const dir = await mkdtemp(join(tmpdir(), "coral-up-"));
    const up = spawn(process.execPath, [coralBin, "up", "--dir", dir, "--discovery-port", String(await freePort()), "--log-level", "warn"], {
      env: { ...process.env, CORAL_HOME: join(dir, "home"), CORAL_API_PORT: String(await freePort()), NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    up.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    up.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await waitFor("coral up to print status and topology", () => (out.includes("Coral is up") ? true : undefined), { timeoutMs: 120_000, intervalMs: 250 });
      expect(out).toMatch(/APPLICATION: demo \(dev\)/);
      expect(out).toMatch(/Connected: 3 components/);
      expect(out).toMatch(/api\s+● (up|degraded)/);
      expect(out).toMatch(/frontend \(127\.0\.0\.1:\d+\)\n\s+→ api \(127\.0\.0\.1:\d+\)/);
      expect(out).toMatch(/api \(127\.0\.0\.1:\d+\)\n\s+→ store \(127\.0\.0\.1:\d+\)/);
      expect(existsSync(join(dir, ".coral", "colony.duckdb"))).toBe(true);
      const pid = JSON.parse(readFileSync(join(dir, ".coral", "colony.pid"), "utf8")) as { pid: number };
      expect(pid.pid).toBe(up.pid);
      // One agent observes the three parts: its control socket lists them.
      const listed = await runCoral(["connect", "--list", "--json"], { cwd: dir, env: { CORAL_HOME: join(dir, "home") } });
      expect(listed.code, listed.stderr).toBe(0);
      const services = (JSON.parse(listed.stdout) as { services: { spec: { name: string }; state: string }[] }).services;
      expect(services.map((x) => `${x.spec.name}:${x.state}`).sort()).toEqual(["api:running", "frontend:running", "store:running"]);
    } finally {
      const exited = new Promise((r) => up.once("exit", r));
      up.kill("SIGINT");
      await exited;
      killLeftoverNats(dir);
    }
    expect(up.exitCode).toBe(0);
    expect(existsSync(join(dir, ".coral", "colony.pid"))).toBe(false);
    expect(existsSync(join(dir, ".coral", "nats-server.pid"))).toBe(false);
    await rm(dir, { recursive: true, force: true });
  }, 180_000);
});
