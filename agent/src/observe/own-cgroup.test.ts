/**
 * A service in a cgroup of its own (a systemd unit, a container): processes
 * in that cgroup belong to the service even when they do not descend from the
 * listener. Real cgroup v2 directories and real processes; needs root.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, rmdirSync } from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { cgroupMembers, cgroupOf, ownCgroup } from "./own-cgroup.ts";
import { processSet } from "./process-tree.ts";
import { waitFor } from "./testing.ts";

const hierarchy = existsSync("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : existsSync("/sys/fs/cgroup/unified/cgroup.procs") ? "/sys/fs/cgroup/unified" : null;
const skip = process.getuid?.() !== 0 ? "needs root to create cgroups" : hierarchy === null ? "no cgroup v2 hierarchy on this machine" : null;

const children: ChildProcess[] = [];
const made: string[] = [];
afterAll(async () => {
  for (const c of children) c.kill("SIGKILL");
  await waitFor("the test processes gone", () => children.every((c) => c.exitCode !== null || c.signalCode !== null));
  for (const dir of made.reverse()) await waitFor(`${dir} removed`, () => { try { rmdirSync(dir); return true; } catch { return false; } });
});

/** A sleeping process, moved into `cgroup` (a path below the hierarchy) before it runs anything else. */
async function sleeperIn(cgroup: string | null): Promise<number> {
  const script = cgroup ? `echo $$ > ${hierarchy}${cgroup}/cgroup.procs && exec sleep 300` : "exec sleep 300";
  const child = spawn("sh", ["-c", script], { stdio: "ignore" });
  children.push(child);
  const pid = child.pid!;
  if (cgroup) await waitFor(`pid ${pid} in ${cgroup}`, () => cgroupOf(pid) === cgroup);
  return pid;
}

function newCgroup(): string {
  const path = `/coral-test-${process.pid}-${made.length}`;
  mkdirSync(`${hierarchy}${path}`);
  made.push(`${hierarchy}${path}`);
  return path;
}

describe.skipIf(skip !== null)(`a service's own cgroup${skip ? ` — skipped: ${skip}` : ""}`, () => {
  it("adds the cgroup's other processes to the set when the listener has a cgroup of its own", async () => {
    const cgroup = newCgroup();
    const listener = await sleeperIn(cgroup);
    const sibling = await sleeperIn(cgroup);
    const outsider = await sleeperIn(null);
    expect(ownCgroup(listener)).toBe(cgroup);
    expect(cgroupMembers(cgroup)).toEqual([listener, sibling].sort((a, b) => a - b));
    const set = await processSet(listener);
    expect(set[0]).toBe(listener);
    expect(set).toContain(sibling);
    expect(set).not.toContain(outsider);
    expect(set).toHaveLength(2);
  });

  it("takes nothing from a cgroup the listener shares with its parent (a process started from a shell)", async () => {
    const listener = await sleeperIn(null); // in the test runner's cgroup, like its parent
    const neighbour = await sleeperIn(null);
    expect(ownCgroup(listener)).toBeNull();
    expect(await processSet(listener)).toEqual([listener]);
    expect(await processSet(listener)).not.toContain(neighbour);
  });
});
