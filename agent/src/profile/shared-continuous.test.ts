// The always-on CPU profiler shared by an agent's services, with real
// bpftrace over real programs compiled here: one bpftrace samples every
// service; each service's windows hold only its own processes (a child
// forked during the program counts for its parent's service); a service that
// leaves gets its last window and the others' windows keep coming; a service
// that gets its process later joins the program; where bpftrace is missing
// every service says so.
import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { afterEach, describe, expect, expectTypeOf, it } from "vitest";
import { waitFor } from "../debug/testing.ts";
import { parseProcStat } from "../observe/procfs.ts";
import type { ContinuousProfiler, ProfileWindowData } from "./continuous.ts";
import { CONTINUOUS_LIMITS } from "./program.ts";
import { SharedContinuousProfiler, type ContinuousProfile } from "./shared-continuous.ts";
import { compileC, profileSkipReason, profileTracersOf, spawnTarget } from "./testing.ts";

const skip = profileSkipReason(["gcc"]);
if (skip) console.log(`shared-continuous.test: SKIPPING the real bpftrace shared always-on profiles: ${skip}`);

const windowMs = CONTINUOUS_LIMITS.minWindowMs;

/** A service's windows, as its agent would receive them. */
function recorder(): { windows: ProfileWindowData[]; onWindow: (w: ProfileWindowData) => Promise<void> } {
  const windows: ProfileWindowData[] = [];
  return { windows, onWindow: async (w) => void windows.push(w) };
}

const leafOf = (w: ProfileWindowData, s: ProfileWindowData["stacks"][number]) => w.frames[s.frameIds[s.frameIds.length - 1]!]!.function;

/** Every function and every user-space module of some windows' stacks. */
function framesOf(windows: readonly ProfileWindowData[]): { functions: Set<string>; modules: Set<string>; pids: Set<number> } {
  const out = { functions: new Set<string>(), modules: new Set<string>(), pids: new Set<number>() };
  for (const w of windows)
    for (const s of w.stacks) {
      out.pids.add(s.pid);
      for (const id of s.frameIds) {
        const f = w.frames[id]!;
        out.functions.add(f.function);
        if (!f.kernel) out.modules.add(f.module);
      }
    }
  return out;
}

/** The bpftrace processes this test process runs (the sampler's child: unshare and sh exec into it). */
function ownBpftraces(): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    let text: string;
    try {
      text = readFileSync(`/proc/${d}/stat`, "utf8");
    } catch {
      continue; // gone
    }
    const st = parseProcStat(text);
    if (st?.comm === "bpftrace" && st.ppid === process.pid) out.push(st.pid);
  }
  return out;
}

/** The most bpftrace processes of ours seen at once, looked at every 100 ms until stop(). */
function countBpftraces(): { max: () => number; stop: () => void } {
  let max = 0;
  const t = setInterval(() => (max = Math.max(max, ownBpftraces().length)), 100);
  return { max: () => max, stop: () => clearInterval(t) };
}

/** Each window's counts add up, and its frame table holds every frame its stacks use. */
function expectWellFormed(windows: readonly ProfileWindowData[]): void {
  for (const w of windows) {
    expect(w.hz).toBe(99);
    expect(w.totalSamples).toBeGreaterThan(0);
    expect(w.otherSamples).toBe(w.totalSamples - w.stacks.reduce((n, s) => n + s.samples, 0));
    expect(w.durationMs).toBeGreaterThanOrEqual(0);
    expect(w.durationMs).toBeLessThan(20 * windowMs);
    for (const s of w.stacks) for (const id of s.frameIds) expect(id).toBeLessThan(w.frames.length);
  }
}

describe("the shared always-on profiler without bpftrace", () => {
  it("has the shape of a service's own profiler", () => {
    expectTypeOf<ContinuousProfiler>().toMatchTypeOf<ContinuousProfile>();
  });

  it("says why it is off in every service, and does not retry", async () => {
    const shared = new SharedContinuousProfiler({ bpftracePath: "/nonexistent/bpftrace", checkMs: 50 });
    const views = [shared.view({ observedPid: () => process.pid, onWindow: () => Promise.resolve() }), shared.view({ observedPid: () => process.ppid, onWindow: () => Promise.resolve() })];
    for (const v of views) v.start();
    try {
      for (const v of views) {
        const st = await waitFor(() => (v.status().state === "unavailable" ? v.status() : undefined), 10_000, "the profiler to give up");
        expect(st.reason).toMatch(process.getuid?.() === 0 ? /bpftrace/ : /root|CAP_BPF|bpftrace/);
        expect(st).toMatchObject({ programs: 0, windows: 0 });
      }
      // A service that comes later is off too.
      const late = shared.view({ observedPid: () => process.pid, onWindow: () => Promise.resolve() });
      late.start();
      expect(late.status()).toMatchObject({ state: "unavailable", reason: views[0]!.status().reason, programs: 0 });
      await late.close();
      expect(late.status().state).toBe("stopped");
      expect(views[0]!.status().state).toBe("unavailable");
    } finally {
      await shared.close();
    }
    for (const v of views) expect(v.status().state).toBe("stopped");
  });

  it("refuses a rate or window out of range", () => {
    expect(() => new SharedContinuousProfiler({ hz: 0 })).toThrow(/hz: must be from 1 to 1000/);
    expect(() => new SharedContinuousProfiler({ windowMs: 10 })).toThrow(/window: must be from 100 ms/);
  });

  it("closes a view that never started, and one of a closed profiler", async () => {
    const shared = new SharedContinuousProfiler({ bpftracePath: "/nonexistent/bpftrace" });
    const unstarted = shared.view({ observedPid: () => null, onWindow: () => Promise.resolve() });
    await unstarted.close();
    expect(unstarted.status()).toMatchObject({ state: "stopped", programs: 0 });
    await shared.close();
    const after = shared.view({ observedPid: () => process.pid, onWindow: () => Promise.resolve() });
    after.start();
    expect(after.status().state).toBe("stopped");
  });
});

describe.skipIf(skip !== undefined)("the shared always-on profiler with real bpftrace", () => {
  const children: ChildProcess[] = [];
  const targets: number[] = [];
  const bins: Partial<Record<"burn" | "forker", string>> = {};

  afterEach(async () => {
    // The forker's children die with it (PR_SET_PDEATHSIG).
    for (const c of children.splice(0)) c.kill("SIGKILL");
    for (const pid of targets.splice(0)) await waitFor(() => profileTracersOf(pid).length === 0 || undefined, 15_000, `no bpftrace left for process ${pid}`);
  });

  /** Runs testdata/<name>.c: burn spins in hot_loop and warm_loop; forker forks a child every 100 ms that spins in child_work. */
  async function run(name: "burn" | "forker"): Promise<number> {
    const bin = (bins[name] ??= compileC(name));
    const c = spawnTarget(bin, children);
    const pid = c.pid!;
    await waitFor(() => readlinkSync(`/proc/${pid}/exe`) === bin || undefined, 10_000, `${name} to start`);
    targets.push(pid);
    return pid;
  }

  it("samples two services with one bpftrace, each window holding only its own service's processes", async () => {
    const burn = await run("burn");
    const forker = await run("forker");
    const shared = new SharedContinuousProfiler({ hz: 99, windowMs, checkMs: 200 });
    const a = recorder();
    const b = recorder();
    const idle = recorder();
    const va = shared.view({ observedPid: () => burn, onWindow: a.onWindow });
    const vb = shared.view({ observedPid: () => forker, onWindow: b.onWindow });
    const vIdle = shared.view({ observedPid: () => null, onWindow: idle.onWindow });
    const count = countBpftraces();
    va.start();
    vb.start();
    vIdle.start();
    try {
      await waitFor(
        () => (a.windows.length >= 3 && b.windows.length >= 3 && b.windows.some((w) => w.stacks.some((s) => s.pid !== forker && leafOf(w, s) === "child_work"))) || undefined,
        180_000,
        "windows of both services, the forker's with its children's work",
      );
      // One program for both services: the only bpftrace of this process, seeded with both.
      const tracers = ownBpftraces();
      expect(tracers).toHaveLength(1);
      expect(profileTracersOf(burn)).toEqual(tracers);
      expect(profileTracersOf(forker)).toEqual(tracers);
      expect(va.status()).toMatchObject({ state: "running", reason: "", hz: 99, windowMs, programs: 1 });
      expect(vb.status()).toMatchObject({ state: "running", reason: "", hz: 99, windowMs, programs: 1 });
      expect(vIdle.status()).toMatchObject({ state: "waiting", windows: 0, programs: 1, lastWindowAt: undefined });

      // Each service's windows hold its own processes only: burn's are its own pid and functions,
      // the forker's are its children (forked while the program ran) in child_work.
      const ofA = framesOf(a.windows);
      const ofB = framesOf(b.windows);
      expect([...ofA.pids]).toEqual([burn]);
      expect(ofA.functions).toContain("hot_loop");
      expect(ofA.functions).not.toContain("child_work");
      expect(ofA.modules).toContain(bins.burn);
      expect(ofA.modules).not.toContain(bins.forker);
      expect(ofB.pids).not.toContain(burn);
      expect([...ofB.pids].some((p) => p !== forker)).toBe(true);
      expect(ofB.functions).toContain("child_work");
      expect(ofB.functions).not.toContain("hot_loop");
      expect(ofB.functions).not.toContain("warm_loop");
      expect(ofB.modules).toContain(bins.forker);
      expect(ofB.modules).not.toContain(bins.burn);
      expect(idle.windows).toEqual([]);
      expectWellFormed(a.windows);
      expectWellFormed(b.windows);

      // The forker's service leaves: it gets its last window, then none; burn's keep coming from a new program without it.
      await vb.close();
      const bWindows = b.windows.length;
      expect(vb.status()).toMatchObject({ state: "stopped", windows: bWindows });
      const lastB = b.windows.at(-1)!;
      expect(vb.status().lastWindowAt?.getTime()).toBe(lastB.start.getTime() + lastB.durationMs);
      const aBefore = a.windows.length;
      await waitFor(
        () => (a.windows.length >= aBefore + 3 && profileTracersOf(forker).length === 0 && profileTracersOf(burn).length === 1) || undefined,
        120_000,
        "burn's windows from a program without the forker",
      );
      expect(b.windows).toHaveLength(bWindows);
      expect(ownBpftraces()).toEqual(profileTracersOf(burn));
      expect(va.status()).toMatchObject({ state: "running", programs: 2 });
      expect(va.status().windows).toBe(a.windows.length);
      const later = framesOf(a.windows.slice(aBefore));
      expect([...later.pids]).toEqual([burn]);
      expect(later.modules).not.toContain(bins.forker);
      expectWellFormed(a.windows);

      // The last service with a process leaves: no bpftrace is left, though a view still waits.
      await va.close();
      expect(ownBpftraces()).toEqual([]);
      expect(va.status()).toMatchObject({ state: "stopped", windows: a.windows.length });
      expect(vIdle.status().state).toBe("waiting");
    } finally {
      count.stop();
      await shared.close();
    }
    expect(vIdle.status().state).toBe("stopped");
    expect(count.max()).toBe(1);
  }, 360_000);

  it("takes in a service whose process comes later, in the same one bpftrace", async () => {
    const burn = await run("burn");
    let forker: number | null = null;
    const shared = new SharedContinuousProfiler({ hz: 99, windowMs, checkMs: 200 });
    const a = recorder();
    const b = recorder();
    const va = shared.view({ observedPid: () => burn, onWindow: a.onWindow });
    const vb = shared.view({ observedPid: () => forker, onWindow: b.onWindow });
    const count = countBpftraces();
    va.start();
    vb.start();
    try {
      await waitFor(() => a.windows.length >= 2 || undefined, 120_000, "burn's windows");
      expect(vb.status()).toMatchObject({ state: "waiting", windows: 0, programs: 1 });
      expect(profileTracersOf(burn)).toHaveLength(1);

      const pid = await run("forker");
      forker = pid;
      await waitFor(() => b.windows.some((w) => w.stacks.some((s) => leafOf(w, s) === "child_work")) || undefined, 120_000, "the forker's windows");
      const tracers = ownBpftraces();
      expect(tracers).toHaveLength(1);
      expect(profileTracersOf(burn)).toEqual(tracers);
      expect(profileTracersOf(pid)).toEqual(tracers);
      expect(vb.status()).toMatchObject({ state: "running", programs: 2 });
      expect(va.status()).toMatchObject({ state: "running", programs: 2 });
      expect(framesOf(b.windows).pids).not.toContain(burn);
      expect(framesOf(b.windows).functions).not.toContain("hot_loop");
      expect([...framesOf(a.windows).pids]).toEqual([burn]);
      expect(framesOf(a.windows).functions).not.toContain("child_work");
    } finally {
      count.stop();
      await shared.close();
    }
    expect(ownBpftraces()).toEqual([]);
    expect(va.status().state).toBe("stopped");
    expect(vb.status().state).toBe("stopped");
    expect(count.max()).toBe(1);
  }, 300_000);
});
