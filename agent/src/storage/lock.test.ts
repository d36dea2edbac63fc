// One agent per store file: a second opener (in this process or another) is
// refused with a lock error naming the holder's pid, which the agent turns
// into AgentAlreadyRunningError; a killed holder leaves no stale lock, and
// what it had enqueued (an fsynced outbox row) is still there.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { lockHolder } from "../runtime/startup-errors.ts";
import { openAgentStore } from "./index.ts";
import { tempStores } from "./testing.ts";

const repoRoot = fileURLToPath(new URL("../../..", import.meta.url));

/**
 * A child process that loads the whole agent package, opens the store,
 * enqueues one batch and prints "ready" with whether DuckDB's library got
 * mapped into it (it must not: only an upgrade from a DuckDB store loads it),
 * then waits to be killed.
 */
async function holder(dir: string, file: string): Promise<{ child: ChildProcess; ready: Promise<string> }> {
  const script = join(dir, "holder.mjs");
  const agentUrl = pathToFileURL(join(repoRoot, "agent/src/index.ts")).href;
  await writeFile(
    script,
    `const { readFileSync } = await import("node:fs");
     const { openAgentStore } = await import(${JSON.stringify(agentUrl)});
     const store = await openAgentStore(${JSON.stringify(file)});
     await store.enqueue({ batchId: "from-the-killed-agent", subject: "coral.c.telemetry", payload: new Uint8Array([7, 7]) });
     console.log("ready duckdb=" + /duckdb/i.test(readFileSync("/proc/self/maps", "utf8")));
     setInterval(() => {}, 1000);`,
  );
  const child = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", script], { cwd: repoRoot, stdio: ["ignore", "pipe", "inherit"] });
  const ready = new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("\n")) resolve(out.trim());
    });
    child.on("exit", (code) => reject(new Error(`the holder exited (${code}) before it was ready`)));
  });
  return { child, ready };
}

describe("the store's lock", () => {
  it("refuses a second open in the same process, naming this pid, until the first closes", async () => {
    await using t = await tempStores();
    const first = await t.open("agent.sqlite");
    const err: unknown = await t.open("agent.sqlite").catch((e: unknown) => e);
    expect(String(err)).toMatch(new RegExp(`could not set lock.*\\(PID ${process.pid}\\)`));
    expect(lockHolder(err)).toEqual({ locked: true, pid: process.pid });
    await first.close();
    const again = await t.open("agent.sqlite");
    expect(await again.pendingCount()).toBe(0);
  });

  it("refuses an open while another process holds the file; after that process is killed, opens and finds its enqueued batch", { timeout: 60_000 }, async () => {
    await using t = await tempStores();
    const file = join(t.dir, "agent.sqlite");
    const { child, ready } = await holder(t.dir, file);
    try {
      expect(await ready).toBe("ready duckdb=false");
      const err: unknown = await openAgentStore(file).catch((e: unknown) => e);
      expect(lockHolder(err)).toEqual({ locked: true, pid: child.pid });
    } finally {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await exited;
    }
    const store = await t.open("agent.sqlite");
    expect((await store.peek(10)).map((r) => [r.batchId, [...r.payload]])).toEqual([["from-the-killed-agent", [7, 7]]]);
  });
});
