// Issue 17, Low: ".coral/ is 0755 and the DuckDB files 0644", as the attack:
// another local user reads the colony's telemetry, audit log and token
// hashes. Now .coral/ is 0700 and the colony's DuckDB and agents' SQLite
// files (and their WAL) 0600: after `coral init`, after start, and for an existing
// install whose folder and files were left open.
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { openAgentStore } from "@coral/agent";
import { runInit } from "@coral/cli/init";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { describe, expect, it } from "vitest";
import { colonyApi, createTestProject } from "../helpers/colony.ts";

async function mode(path: string): Promise<string> {
  return ((await stat(path)).mode & 0o777).toString(8).padStart(4, "0");
}

describe("file modes", () => {
  it("coral init makes .coral/ owner-only, also when the folder existed open", async () => {
    const dir = await mkdtemp(join(tmpdir(), "coral-modes-"));
    try {
      await mkdir(join(dir, ".coral"), { mode: 0o755 });
      await chmod(join(dir, ".coral"), 0o755);
      process.env.CORAL_HOME = join(dir, "home");
      await runInit({ app: "shop", env: "dev", yes: true, dir }, { input: new PassThrough(), output: new PassThrough(), interactive: false });
      expect(await mode(join(dir, ".coral"))).toBe("0700");
      expect(await mode(join(dir, ".coral", "keys"))).toBe("0700");
      const files = [...(await readdir(join(dir, ".coral", "keys"))).map((f) => `keys/${f}`), "local.token"];
      expect(files).toContain("keys/identity.key");
      for (const file of files) expect([file, await mode(join(dir, ".coral", file))]).toEqual([file, "0600"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("the colony's store is 0600 (WAL too) after start, and an existing open install is closed on start", { timeout: 120_000 }, async () => {
    await using project = await createTestProject();
    const coral = join(project.dir, ".coral");
    const db = join(coral, "colony.duckdb");
    const first = await project.start();
    // Writes, so the WAL exists while the colony runs.
    await colonyApi(first.url, project.localToken).createToken({ name: "ci", scope: TokenScope.READ });
    expect(await mode(db)).toBe("0600");
    expect(existsSync(`${db}.wal`)).toBe(true);
    expect(await mode(`${db}.wal`)).toBe("0600");
    await first.close();

    // An install from before: the folder and the store left readable by everyone.
    await chmod(coral, 0o755);
    await chmod(db, 0o644);
    const second = await project.start();
    expect(await mode(coral)).toBe("0700");
    expect(await mode(db)).toBe("0600");
    await colonyApi(second.url, project.localToken).createToken({ name: "ci-2", scope: TokenScope.READ });
    expect(existsSync(`${db}.wal`)).toBe(true);
    expect(await mode(`${db}.wal`)).toBe("0600");
    // New files the colony makes from now on are owner-only too.
    const probe = join(coral, "probe.txt");
    await writeFile(probe, "x");
    expect(await mode(probe)).toBe("0600");
  });

  it("an agent's store is 0600 (WAL too), also when it was 0644", async () => {
    const dir = await mkdtemp(join(tmpdir(), "coral-agent-modes-"));
    try {
      const data = join(dir, ".coral", "agents", "api");
      const file = join(data, "agent.sqlite");
      const first = await openAgentStore(file);
      await first.close();
      await chmod(file, 0o644);
      const store = await openAgentStore(file);
      try {
        await store.recordEvent({ timestamp: new Date(), eventType: "start" });
        await store.flush();
        expect(await mode(file)).toBe("0600");
        expect(existsSync(`${file}-wal`)).toBe(true);
        expect(await mode(`${file}-wal`)).toBe("0600");
        // The lock note naming the holder's pid.
        expect(await mode(`${file}-lock`)).toBe("0600");
      } finally {
        await store.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
