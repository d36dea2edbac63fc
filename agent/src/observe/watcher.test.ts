/**
 * ProcessWatcher against real child processes: found, exited, restarted on
 * the same port, and a listener handover between two live processes.
 */
import { sleep } from "@coral/common/async";
import { afterEach, describe, expect, it } from "vitest";
import type { TcpConnection } from "./connections.ts";
import type { ProcessSnapshot } from "./sample.ts";
import type { ProcessSetSnapshot } from "./set-sample.ts";
import { HTTP_SERVER_SCRIPT, freePort, killAllChildren, killChild, spawnNode, waitFor } from "./testing.ts";
import { ProcessWatcher, type ProcessEvent, type WatcherStatus } from "./watcher.ts";

let watcher: ProcessWatcher | undefined;

afterEach(async () => {
  await watcher?.stop();
  watcher = undefined;
  await killAllChildren();
});

function record(w: ProcessWatcher) {
  const log = {
    events: [] as ProcessEvent[],
    statuses: [] as WatcherStatus[],
    samples: [] as ProcessSnapshot[],
    connections: [] as TcpConnection[][],
    errors: [] as Error[],
  };
  w.on("event", (e) => log.events.push(e));
  w.on("status", (s) => log.statuses.push(s));
  w.on("sample", (s) => log.samples.push(s));
  w.on("connections", (c) => log.connections.push(c));
  w.on("error", (e) => log.errors.push(e));
  return log;
}

describe("ProcessWatcher", () => {
  it("waits, finds the process, reports its exit, then a restart with the new pid on the same port", async () => {
    const port = await freePort();
    watcher = new ProcessWatcher({ port, intervalMs: 100 });
    const log = record(watcher);
    watcher.start();

    // Nothing listens yet: one "waiting" status, however many ticks pass.
    await waitFor("the waiting status", () => log.statuses.length > 0);
    expect(log.statuses[0]).toEqual({ state: "waiting", port });

    const first = await spawnNode(HTTP_SERVER_SCRIPT, { PORT: String(port) });
    const found = await waitFor("process_found", () => log.events.find((e) => e.type === "process_found"));
    expect(found.pid).toBe(first.pid);
    expect(found.details).toMatchObject({ port, address: `[::]:${port}`, comm: "node" });
    expect(log.statuses.filter((s) => s.state === "waiting")).toHaveLength(1);
    expect(log.statuses.at(-1)).toEqual({ state: "observing", port, pid: first.pid });
    expect(watcher.pid).toBe(first.pid);

    // It samples every interval, with interval CPU after the first.
    await waitFor("three samples", () => log.samples.filter((s) => s.pid === first.pid).length >= 3);
    const mine = log.samples.filter((s) => s.pid === first.pid);
    expect(mine[0]?.rssBytes).toBeGreaterThan(1024 * 1024);
    expect(mine.at(-1)?.cpuBasis).toBe("interval");
    expect(log.connections.length).toBeGreaterThanOrEqual(3);

    await killChild(first);
    const exited = await waitFor("process_exited", () => log.events.find((e) => e.type === "process_exited"));
    expect(exited.pid).toBe(first.pid);
    expect(exited.details).toMatchObject({ port, reason: "vanished" });
    await waitFor("waiting again", () => log.statuses.at(-1)?.state === "waiting");
    expect(watcher.pid).toBeNull();

    const second = await spawnNode(HTTP_SERVER_SCRIPT, { PORT: String(port) });
    const restart = await waitFor("restart", () => log.events.find((e) => e.type === "restart"));
    expect(restart.pid).toBe(second.pid);
    expect(restart.previousPid).toBe(first.pid);
    expect(restart.details).toMatchObject({ port, reason: "exited" });
    expect(restart.details.downtime_ms).toBeGreaterThanOrEqual(0);
    await waitFor("a sample of the new process", () => log.samples.some((s) => s.pid === second.pid));

    expect(log.events.map((e) => e.type)).toEqual(["process_found", "process_exited", "restart"]);
    expect(log.errors).toEqual([]);
  });

  it("reports a restart when another live process takes over the port", async () => {
    const port = await freePort();
    const old = await spawnNode(HTTP_SERVER_SCRIPT, { PORT: String(port) });
    watcher = new ProcessWatcher({ port, intervalMs: 100 });
    const log = record(watcher);
    watcher.start();
    await waitFor("process_found", () => log.events.find((e) => e.type === "process_found" && e.pid === old.pid));
    expect(log.statuses.some((s) => s.state === "waiting")).toBe(false);

    // The old process stops listening but stays alive; a new one binds the port.
    old.proc.stdin?.write("close\n");
    await waitFor("the old listener to close", () => old.lines.includes("CLOSED"));
    const next = await spawnNode(HTTP_SERVER_SCRIPT, { PORT: String(port) });

    const restart = await waitFor("restart", () => log.events.find((e) => e.type === "restart"));
    expect(restart).toMatchObject({ pid: next.pid, previousPid: old.pid, details: { reason: "listener_changed", downtime_ms: 0 } });
    expect(log.events.some((e) => e.type === "process_exited")).toBe(false);
    await waitFor("observing the new pid", () => watcher?.pid === next.pid);
  });

  it("stops cleanly: nothing is emitted after stop() resolves", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT);
    watcher = new ProcessWatcher({ port: child.port, intervalMs: 20 });
    const log = record(watcher);
    watcher.start();
    await waitFor("a sample", () => log.samples.length > 0);
    await watcher.stop();
    const count = log.samples.length + log.connections.length + log.events.length + log.statuses.length;
    // Let several intervals' worth of timers pass; a leaked timer would emit.
    await sleep(200);
    expect(log.samples.length + log.connections.length + log.events.length + log.statuses.length).toBe(count);
  });

  it("turns a throwing listener into an error emission instead of an exception", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT);
    watcher = new ProcessWatcher({ port: child.port, intervalMs: 50 });
    const errors: Error[] = [];
    watcher.on("error", (e) => errors.push(e));
    watcher.on("sample", () => {
      throw new Error("listener bug");
    });
    watcher.start();
    await waitFor("two error emissions", () => errors.length >= 2);
    expect(errors[0]?.message).toBe("listener bug");
  });

  /** An HTTP server that starts a child (`sleep 300`) each time it reads "fork" on stdin, and prints its pid. */
  const FORKING_SERVER_SCRIPT = `
const http = require("node:http");
const { spawn } = require("node:child_process");
const srv = http.createServer((q, r) => r.end("ok")).listen(0, () => console.log("PORT " + srv.address().port));
process.stdin.on("data", (d) => { if (String(d).includes("fork")) { const c = spawn("sleep", ["300"], { stdio: "ignore" }); console.log("FORKED " + c.pid); } });
`;

  async function forkChild(server: Awaited<ReturnType<typeof spawnNode>>): Promise<number> {
    const before = server.lines.length;
    server.proc.stdin!.write("fork\n");
    const line = await waitFor("the child's pid", () => server.lines.slice(before).find((l) => l.startsWith("FORKED ")));
    const pid = Number(line.split(" ")[1]);
    forked.push(pid);
    return pid;
  }
  const forked: number[] = [];
  afterEach(() => {
    for (const pid of forked.splice(0)) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone already
      }
    }
  });

  it("reads the process tree again when the kernel reports a change, not on every sample while it reports none", async () => {
    let changes = 0;
    const server = await spawnNode(FORKING_SERVER_SCRIPT);
    watcher = new ProcessWatcher({ port: server.port, intervalMs: 100, kernelChanges: () => changes, fullScanEvery: 1000 });
    const log = record(watcher);
    watcher.start();
    await waitFor("two samples", () => log.samples.length >= 2);
    const child = await forkChild(server);
    // No change reported: the set read at the first sample stands.
    const seen = log.samples.length;
    await waitFor("five more samples", () => log.samples.length >= seen + 5);
    expect(log.samples.slice(seen).map((s) => (s as ProcessSetSnapshot).processCount)).toEqual(new Array(log.samples.length - seen).fill(1));
    // The kernel saw the fork: the next sample reads the tree.
    changes++;
    const withChild = await waitFor("the child in the set", () => log.samples.find((s) => (s as ProcessSetSnapshot).pids.includes(child)));
    expect((withChild as ProcessSetSnapshot).processCount).toBe(2);
  });

  it("reads the process tree every fullScanEvery samples while the kernel reports nothing, and on every sample without a kernel source", async () => {
    const server = await spawnNode(FORKING_SERVER_SCRIPT);
    /** How many samples after a fork the child first shows in the set. */
    const samplesUntilSeen = async (kernelChanges: () => number | null, fullScanEvery: number) => {
      watcher = new ProcessWatcher({ port: server.port, intervalMs: 100, kernelChanges, fullScanEvery });
      const log = record(watcher);
      watcher.start();
      await waitFor("two samples", () => log.samples.length >= 2);
      const child = await forkChild(server);
      const seen = log.samples.length;
      const has = (s: ProcessSnapshot) => (s as ProcessSetSnapshot).pids.includes(child);
      await waitFor("the child in the set", () => log.samples.some(has));
      await watcher.stop();
      return log.samples.findIndex(has) - seen;
    };
    expect(await samplesUntilSeen(() => 7, 3)).toBeLessThan(3);
    expect(await samplesUntilSeen(() => null, 1000)).toBeLessThan(2);
  });

  it("validates its options", () => {
    expect(() => new ProcessWatcher({ port: 0 })).toThrow(RangeError);
    expect(() => new ProcessWatcher({ port: 80, intervalMs: 0 })).toThrow(RangeError);
    expect(new ProcessWatcher({ port: 80 }).intervalMs).toBe(1000);
  });
});
