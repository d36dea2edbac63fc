// Heap profiles of unmodified Node processes: the agent opens their V8
// inspector with SIGUSR1 (loopback), runs V8's sampling heap profiler for the
// request's duration and closes the inspector again. testdata/retain.js keeps
// 50 MiB live from retainBig, about 1 MiB from retainSmall, and drops as much
// as retainBig allocates from churn. No root or bpftrace needed: the agent
// signals a child of this test's own user.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../debug/testing.ts";
import { ProfileError } from "./errors.ts";
import { HeapProfiler, v8HeapStacks, type HeapProfileData, type V8HeapProfile } from "./heap.ts";
import { loopbackListeners } from "./inspector.ts";
import { alive } from "./testing.ts";

const retainJs = fileURLToPath(new URL("./testdata/retain.js", import.meta.url));
const MiB = 1024 * 1024;
/** A loaded machine took more than 3 s to open the inspector of an unfavoured process. */
const OPEN_MS = 20_000;


/** In-use bytes and objects per allocating function (the leaf of each stack). */
function sites(p: HeapProfileData): Map<string, { bytes: number; objects: number }> {
  const out = new Map<string, { bytes: number; objects: number }>();
  for (const s of p.stacks) {
    const fn = p.frames[s.frameIds.at(-1)!]!.function;
    const site = out.get(fn) ?? { bytes: 0, objects: 0 };
    site.bytes += s.inuseBytes;
    site.objects += s.inuseObjects;
    out.set(fn, site);
  }
  return out;
}

describe("V8 sampling heap profiles as heap stacks", () => {
  const cf = (functionName: string, url = "", lineNumber = -1) => ({ functionName, url, lineNumber, columnNumber: 2 });
  const profile: V8HeapProfile = {
    head: {
      id: 1,
      callFrame: cf("(root)"),
      selfSize: 0,
      children: [
        {
          id: 2,
          callFrame: cf("main", "file:///app/a.js", 3),
          selfSize: 100,
          children: [
            { id: 3, callFrame: cf("grow", "file:///app/a.js", 9), selfSize: 3_000_000 },
            { id: 4, callFrame: cf("", "file:///app/a.js", 20), selfSize: 0 },
          ],
        },
        { id: 5, callFrame: cf("(V8 API)"), selfSize: 2048 },
      ],
    },
    // Two 1 MiB samples at grow (interval 1 MiB: each stands for 1 / (1 − e^−1) ≈ 1.58 objects), one small one at main.
    samples: [
      { size: MiB, nodeId: 3, ordinal: 1 },
      { size: MiB, nodeId: 3, ordinal: 2 },
      { size: 100, nodeId: 2, ordinal: 3 },
    ],
  };

  it("takes selfSize as in-use bytes, root first without (root), objects scaled as V8 scales them", () => {
    const h = v8HeapStacks(profile, 7, MiB);
    expect(h.objectsKnown).toBe(true);
    const named = h.stacks.map((s) => [s.frameIds.map((i) => `${h.frames[i]!.function}@${h.frames[i]!.module}`).join(" > "), s.inuseBytes, s.inuseObjects, s.allocBytes, s.pid]);
    expect(named).toEqual([
      ["main@/app/a.js > grow@/app/a.js", 3_000_000, 3, 0, 7],
      ["(V8 API)@[v8]", 2048, 0, 0, 7],
      // 1 / (1 − e^(−100/1048576)) ≈ 10486 objects of 100 bytes stand behind one such sample.
      ["main@/app/a.js", 100, Math.round(1 / (1 - Math.exp(-100 / MiB))), 0, 7],
    ]);
  });

  it("says when the samples are missing (object counts unknown)", () => {
    const h = v8HeapStacks({ head: profile.head }, 7, MiB);
    expect(h.objectsKnown).toBe(false);
    expect(h.stacks.map((s) => s.inuseObjects)).toEqual([0, 0, 0]);
  });
});

describe("heap profiles of Node processes through their V8 inspector", () => {
  const children: ChildProcess[] = [];

  afterEach(() => {
    for (const c of children.splice(0)) c.kill("SIGKILL");
  });

  /** Starts retain.js (without inlining: see the file) and waits until its rings are full. */
  async function startRetain(nodeFlags: string[] = []): Promise<number> {
    // Port 0: a free port when SIGUSR1 opens the inspector, not 9229, which another Node under test may hold.
    const c = spawn(process.execPath, ["--no-turbo-inlining", "--inspect-port=0", ...nodeFlags, retainJs], { stdio: ["ignore", "pipe", "ignore"] });
    children.push(c);
    await new Promise<void>((resolve, reject) => {
      c.stdout!.once("data", () => resolve());
      c.once("exit", (code) => reject(new Error(`retain.js exited (${code}) before it ran`)));
    });
    return c.pid!;
  }

  const request = { durationMs: 3_000, samplingIntervalBytes: 64 * 1024, pprofPort: 0, label: "node-heap.test" };

  it("finds retainBig's 50 MiB on top, retainSmall's ~1 MiB below it, none of churn's garbage; and closes the inspector after", async () => {
    const pid = await startRetain();
    expect([...(await loopbackListeners(pid))]).toEqual([]);
    const profiler = new HeapProfiler({ observedPid: () => pid, servicePort: () => 1, inspectorOpenTimeoutMs: OPEN_MS });
    const p = await profiler.profile(request);
    const bySite = sites(p);
    console.log(`Node heap: ${p.stacks.length} stacks in ${p.durationMs} ms; ${JSON.stringify([...bySite])}; note: ${p.note}`);
    expect(p).toMatchObject({ method: "v8-inspector", pids: [pid], samplingIntervalBytes: 64 * 1024 });
    expect(p.durationMs).toBeGreaterThanOrEqual(2_900);
    expect(p.durationMs).toBeLessThan(10_000);

    // The top stack by bytes: tick → retainBig, in retain.js, root first.
    const top = p.stacks[0]!;
    expect(top.frameIds.slice(-2).map((i) => p.frames[i])).toEqual([
      { function: "tick", module: retainJs, kernel: false },
      { function: "retainBig", module: retainJs, kernel: false },
    ]);
    expect(p.stacks.every((s, i) => i === 0 || s.inuseBytes <= p.stacks[i - 1]!.inuseBytes)).toBe(true);
    // 50 arrays of 1 MiB, each sampled (64 KiB between samples) and counted once.
    const big = bySite.get("retainBig")!;
    expect(big.bytes).toBeGreaterThanOrEqual(45 * MiB);
    expect(big.bytes).toBeLessThanOrEqual(56 * MiB);
    expect(big.objects).toBeGreaterThanOrEqual(45);
    expect(big.objects).toBeLessThanOrEqual(56);
    // 50 arrays of 20 KiB, few of them sampled: an estimate.
    const small = bySite.get("retainSmall")!;
    expect(small.bytes).toBeGreaterThan(0);
    expect(small.bytes).toBeLessThan(4 * MiB);
    // churn allocated as much as retainBig, and the GC before the end took it.
    expect(bySite.get("churn")?.bytes ?? 0).toBeLessThan(2 * MiB);
    expect(p.stacks.every((s) => s.allocBytes === 0 && s.allocObjects === 0 && s.pid === pid)).toBe(true);
    expect(p.note).toMatch(/^V8 sampled allocations for 3\.\d s \(about one per 64 KiB\): in use is what those allocations still held after a full GC at the end; memory allocated before the profile started is not seen/);

    // Closed again, the process alive, and it opens again for the next profile.
    expect([...(await loopbackListeners(pid))]).toEqual([]);
    expect(alive(pid)).toBe(true);
    const again = await profiler.profile(request);
    expect(sites(again).get("retainBig")!.bytes).toBeGreaterThan(20 * MiB);
    expect([...(await loopbackListeners(pid))]).toEqual([]);
  }, 120_000);

  it("joins an inspector that was already open and leaves it open", async () => {
    const pid = await startRetain(["--inspect=127.0.0.1:0"]);
    const before = await waitFor(async () => {
      const ports = await loopbackListeners(pid);
      return ports.size > 0 ? [...ports] : undefined;
    }, 10_000, "retain.js's own inspector to listen");
    // No new listener ever appears (Node ignores SIGUSR1 with its inspector open): the wait for one is all spent.
    const p = await new HeapProfiler({ observedPid: () => pid, servicePort: () => 1, inspectorOpenTimeoutMs: 3_000 }).profile(request);
    expect(p.method).toBe("v8-inspector");
    expect(sites(p).get("retainBig")!.bytes).toBeGreaterThan(20 * MiB);
    expect([...(await loopbackListeners(pid))]).toEqual(before);
  }, 120_000);

  it("when cancelled, stops and closes the inspector; refuses a second profile while one holds the inspector", async () => {
    const pid = await startRetain();
    const profiler = new HeapProfiler({ observedPid: () => pid, servicePort: () => 1, inspectorOpenTimeoutMs: OPEN_MS });
    const abort = new AbortController();
    const running = profiler.profile({ ...request, durationMs: 60_000 }, abort.signal).catch((e: unknown) => e);
    await waitFor(async () => (await loopbackListeners(pid)).size > 0 || undefined, 10_000, "the inspector to listen");
    const second = (await profiler.profile({ ...request, durationMs: 1_000 }).catch((e: unknown) => e)) as ProfileError;
    expect(second).toBeInstanceOf(ProfileError);
    expect([second.code, second.message]).toEqual([
      "inspector_failed",
      `the V8 inspector of process ${pid} could not be used: another profile taken by this agent is using it (one at a time per process); Node heap profiles need it (a Go service's net/http/pprof can be named with --pprof-port)`,
    ]);
    abort.abort();
    const err = (await running) as ProfileError;
    expect(err).toBeInstanceOf(ProfileError);
    expect(err.code).toBe("cancelled");
    expect([...(await loopbackListeners(pid))]).toEqual([]);
    expect(alive(pid)).toBe(true);
  }, 120_000);

  it("says why when the inspector cannot open (the process is gone)", async () => {
    const pid = await startRetain();
    const c = children[0]!;
    const exited = new Promise((resolve) => c.once("exit", resolve));
    c.kill("SIGKILL");
    await exited;
    const err = (await new HeapProfiler({ observedPid: () => pid, servicePort: () => 1, inspectorOpenTimeoutMs: OPEN_MS }).profile(request).catch((e: unknown) => e)) as ProfileError;
    expect(err).toBeInstanceOf(ProfileError);
    expect(err.code).toBe("process_exited");
  });
});
