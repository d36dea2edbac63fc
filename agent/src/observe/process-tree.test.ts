/**
 * The process set: descendants from ppid links (pure), and ProcessWatcher
 * against a real listener with real children and a grandchild: sums, count,
 * and workers_changed as children come and go.
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { descendantsOf, processSet } from "./process-tree.ts";
import { clockTicksPerSecond, parseProcStat, parseStatusRssBytes } from "./procfs.ts";
import type { ProcessSetSnapshot } from "./set-sample.ts";
import { freePort, killAllChildren, spawnNode, waitFor } from "./testing.ts";
import { ProcessWatcher, type ProcessEvent } from "./watcher.ts";

describe("descendantsOf", () => {
  it("walks children, grandchildren, and nothing else", () => {
    const stats = new Map([
      [1, { ppid: 0 }],
      [10, { ppid: 1 }],
      [11, { ppid: 10 }],
      [12, { ppid: 10 }],
      [13, { ppid: 12 }],
      [20, { ppid: 1 }],
      [21, { ppid: 20 }],
    ]);
    expect(descendantsOf(10, stats)).toEqual([10, 11, 12, 13]);
    expect(descendantsOf(13, stats)).toEqual([13]);
    expect(descendantsOf(99, stats)).toEqual([]);
  });
});

// A listener with `sleep` children; "spawn" on stdin adds one, "kill" ends the newest.
// The first child runs a shell that has a sleep of its own: a grandchild.
const POOL_SCRIPT = `
const { spawn } = require("node:child_process");
const kids = [spawn("sh", ["-c", "sleep 300 & wait"], { stdio: "ignore" }), spawn("sleep", ["300"], { stdio: "ignore" })];
require("node:net").createServer(() => {}).listen(Number(process.env.PORT), "127.0.0.1", () => console.log("PORT " + process.env.PORT));
process.stdin.setEncoding("utf8").on("data", (d) => {
  for (const cmd of d.split("\\n")) {
    if (cmd === "spawn") kids.push(spawn("sleep", ["300"], { stdio: "ignore" }));
    if (cmd === "kill") kids.pop()?.kill("SIGKILL");
  }
});
process.on("exit", () => kids.forEach((k) => k.kill("SIGKILL")));
process.on("SIGTERM", () => process.exit(0));
`;

function ticksAndRss(pid: number): { ticks: number; rss: number } {
  const stat = parseProcStat(readFileSync(`/proc/${pid}/stat`, "utf8"))!;
  return { ticks: stat.utime + stat.stime, rss: parseStatusRssBytes(readFileSync(`/proc/${pid}/status`, "utf8")) };
}

let watcher: ProcessWatcher | undefined;
afterEach(async () => {
  await watcher?.stop();
  watcher = undefined;
  await killAllChildren();
});

describe("ProcessWatcher on a process set", () => {
  it("samples the listener and its descendants as one set, and notes workers starting and exiting", async () => {
    const port = await freePort();
    const app = await spawnNode(POOL_SCRIPT, { PORT: String(port) });
    // listener + sh + its sleep + sleep
    const set = await waitFor("the children to start", async () => {
      const s = await processSet(app.pid);
      return s.length === 4 ? s : undefined;
    });
    watcher = new ProcessWatcher({ port, intervalMs: 100, workerEventIntervalMs: 200 });
    const samples: ProcessSetSnapshot[] = [];
    const events: ProcessEvent[] = [];
    watcher.on("sample", (s) => samples.push(s));
    watcher.on("event", (e) => events.push(e));
    watcher.start();

    const first = await waitFor("a sample of the whole set", () => samples.find((s) => s.processCount === 4));
    expect(first.pid).toBe(app.pid);
    expect(new Set(first.pids)).toEqual(new Set(set));
    // Memory and CPU time are the members' sums, as /proc has them.
    const now = set.map(ticksAndRss);
    const rssSum = now.reduce((a, x) => a + x.rss, 0);
    expect(first.rssBytes).toBeGreaterThan(first.listener.rssBytes);
    expect(Math.abs(first.rssBytes - rssSum)).toBeLessThan(rssSum * 0.1);
    expect(first.cpuTimeMs).toBeGreaterThanOrEqual(first.listener.cpuTimeMs);
    expect(first.cpuTimeMs).toBeLessThanOrEqual((now.reduce((a, x) => a + x.ticks, 0) / (await clockTicksPerSecond())) * 1000 + 50);

    // Counted over the events (two spawns may land in two samples, one event each at most).
    const churn = () => {
      const changes = events.filter((e) => e.type === "workers_changed");
      const sum = (k: string) => changes.reduce((a, e) => a + Number(e.details[k]), 0);
      return { started: sum("started"), exited: sum("exited"), events: changes.length, last: changes.at(-1) };
    };
    app.proc.stdin?.write("spawn\nspawn\n");
    await waitFor("the two new workers in the set", () => samples.find((s) => s.processCount === 6));
    await waitFor("workers_changed events for the starts", () => churn().started === 2 || undefined);

    app.proc.stdin?.write("kill\n");
    await waitFor("one worker fewer", () => samples.slice(-1).find((s) => s.processCount === 5));
    await waitFor("a workers_changed event for the exit", () => churn().exited === 1 || undefined);
    expect(churn()).toMatchObject({ started: 2, exited: 1 });
    expect(churn().last?.details).toMatchObject({ port, process_count: 5 });
    // At most one event per change here, never one per sample.
    expect(churn().events).toBeLessThanOrEqual(3);
  }, 60_000);
});
