// CPU profiles through the agent's API (signed as its colony signs), with
// real bpftrace sampling real programs compiled here: where the time goes
// (by self time, the leaf frame), how many samples one busy CPU gives,
// children forked during the profile, bad input, one profile per process,
// and nothing left running after any of it.
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { setPriority, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { generateIdentityKey } from "@coral/proto";
import { AgentProfileService, type CpuProfile } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startAgentApi, type AgentApiServer } from "../api/server.ts";
import { profileConnectError } from "../api/profile-service.ts";
import { waitFor } from "../debug/testing.ts";
import { clockTicksPerSecond } from "../observe/procfs.ts";
import { openAgentStore, type AgentStore } from "../storage/index.ts";
import { CpuProfiler } from "./profiler.ts";
import { buildGoBurn, colonyClient, compileC, cpuSeconds, onPath, profileSkipReason, profileTracersOf, spawnTarget } from "./testing.ts";

const skip = profileSkipReason(["gcc"]);
if (skip) console.log(`profile.test: SKIPPING the real bpftrace CPU profiles: ${skip}`);
const hasGo = onPath("go");
if (!skip && !hasGo) console.log("profile.test: SKIPPING the stripped Go profile: go not installed");

/** Samples per function whose frame is the leaf (self time), for one pid or all. */
function selfSamples(p: CpuProfile, pid?: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of p.stacks) {
    if (pid !== undefined && s.pid !== pid) continue;
    const leaf = p.frames[s.frameIds[s.frameIds.length - 1]!]!;
    out.set(leaf.function, (out.get(leaf.function) ?? 0) + Number(s.samples));
  }
  return out;
}

const percent = (part: number, whole: number) => (100 * part) / whole;

async function rejection(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("expected the call to fail");
}

describe.skipIf(skip !== undefined)("CPU profiles through the agent API, with real bpftrace", () => {
  let observed: number | null = null;
  let profiler: CpuProfiler;
  let api: AgentApiServer;
  let store: AgentStore;
  let client: Client<typeof AgentProfileService>;
  let ticks = 100;
  const bins: Record<string, string> = {};
  const children: ChildProcess[] = [];
  /** Targets profiled by the test: none may keep a bpftrace afterwards. */
  const targets: number[] = [];

  beforeAll(async () => {
    bins.burn = compileC("burn");
    bins.forker = compileC("forker");
    bins.noFramePointers = compileC("burn", ["-fomit-frame-pointer"]);
    if (hasGo) bins.go = buildGoBurn(true);
    ticks = await clockTicksPerSecond();
    const key = await generateIdentityKey();
    store = await openAgentStore(join(mkdtempSync(join(tmpdir(), "coral-profile-store-")), "agent.sqlite"));
    profiler = new CpuProfiler({
      observedPid: () => observed,
      logger: { info: (o, m) => console.log(`${m} ${JSON.stringify(o)}`), warn: (o, m) => console.warn(`${m} ${JSON.stringify(o)}`) },
    });
    api = await startAgentApi({ store, agentId: "profile-test", colonyPublicKey: () => key.publicKey, profile: async () => profiler });
    client = colonyClient(AgentProfileService, api.url, "profile-test", key);
  });

  afterEach(async () => {
    for (const c of children.splice(0)) c.kill("SIGKILL");
    for (const pid of targets.splice(0)) await waitFor(() => profileTracersOf(pid).length === 0 || undefined, 15_000, `no bpftrace left for process ${pid}`);
    expect(profiler.busyPids).toEqual([]);
    observed = null;
  });

  afterAll(async () => {
    await profiler?.close();
    await api?.close();
    await store?.close();
  });

  /**
   * Starts `bin` and makes it the observed process once it has exec'd. A
   * `favoured` target runs at nice -20, so that on a small shared machine
   * other work does not chop its time into random slices (which would only
   * add sampling noise to what the test measures).
   */
  async function observe(bin: string, favoured = false, args: string[] = []): Promise<number> {
    const c = spawnTarget(bin, children, args);
    const pid = c.pid!;
    await waitFor(() => readlinkSync(`/proc/${pid}/exe`) === bin || undefined, 10_000, `${bin} to start`);
    if (favoured) setPriority(pid, -20);
    targets.push(pid);
    observed = pid;
    return pid;
  }

  /**
   * Profiles the observed process, and says how busy it was (CPUs) while the
   * profile sampled: its CPU time, read every 20 ms during the call, between
   * the profile's start and end.
   */
  async function profileBusy(pid: number, req: { hz: number; durationMs: number }) {
    const readings: [number, number][] = [];
    const read = () => readings.push([Date.now(), cpuSeconds(pid, ticks)]);
    read();
    const timer = setInterval(read, 20);
    let profile: CpuProfile;
    try {
      profile = (await client.profileCpu({ ...req, label: "profile.test" }, { timeoutMs: req.durationMs + 120_000 })).profile!;
    } finally {
      clearInterval(timer);
    }
    read();
    const at = (t: number) => {
      const i = readings.findIndex(([ms]) => ms >= t);
      if (i <= 0) throw new Error(`no CPU reading around ${new Date(t).toISOString()}`);
      const [t0, c0] = readings[i - 1]!;
      const [t1, c1] = readings[i]!;
      return c0 + ((c1 - c0) * (t - t0)) / Math.max(1, t1 - t0);
    };
    const start = Number(profile.startedAt!.seconds) * 1000 + profile.startedAt!.nanos / 1e6;
    const busyCpus = (at(start + profile.durationMs) - at(start)) / (profile.durationMs / 1000);
    return { profile, busyCpus };
  }

  /**
   * How far a 75/25 split may read from its truth, in points: 5, or 3.5 standard errors of
   * `samples` independent samples when that is wider (a loaded machine gives fewer samples,
   * and independent ones). A wrong attribution (0/100, 50/50) stays far outside either.
   */
  function shareTolerance(samples: number): number {
    return Math.max(5, 3.5 * 100 * Math.sqrt((0.75 * 0.25) / Math.max(1, samples)));
  }

  function checkFrameTable(p: CpuProfile): void {
    const keys = p.frames.map((f) => `${f.kernel}\0${f.module}\0${f.function}`);
    expect(new Set(keys).size).toBe(keys.length);
    for (const s of p.stacks) for (const id of s.frameIds) expect(id).toBeLessThan(p.frames.length);
    expect(p.totalSamples).toBe(p.stacks.reduce((n, s) => n + s.samples, 0n));
  }

  it("attributes 75 % and 25 % of a C program's time to its two loops, with ≥ 90 % of the samples its busy CPU gives (hz 0 = 99)", async () => {
    const pid = await observe(bins.burn!, true);
    // 10 s: about 1,000 samples on an idle machine. When other work preempts the target, samples stop falling
    // on the program's evenly spread phases and become independent, with binomial noise (see `shareTolerance`).
    const { profile, busyCpus } = await profileBusy(pid, { hz: 0, durationMs: 10_000 });
    expect(profile.method).toBe("ebpf");
    expect(profile.hz).toBe(99);
    expect(profile.pids).toEqual([pid]);
    expect(profile.processNames).toEqual({ [pid]: "burn" });
    checkFrameTable(profile);
    const total = Number(profile.totalSamples);
    const self = selfSamples(profile);
    const hot = percent(self.get("hot_loop") ?? 0, total);
    const warm = percent(self.get("warm_loop") ?? 0, total);
    const expected = (profile.hz * profile.durationMs * busyCpus) / 1000;
    console.log(
      `C: ${total} samples in ${profile.durationMs} ms at ${profile.hz} Hz, target busy ${busyCpus.toFixed(2)} CPUs → ${percent(total, expected).toFixed(1)}% of the expected ${expected.toFixed(0)}` +
        ` (${percent(total, (profile.hz * profile.durationMs) / 1000).toFixed(1)}% of one full CPU); hot_loop ${hot.toFixed(1)}%, warm_loop ${warm.toFixed(1)}%; first sample ${profile.firstSampleAfterMs} ms after the request`,
    );
    const tolerance = shareTolerance(total);
    expect(Math.abs(hot - 75)).toBeLessThanOrEqual(tolerance);
    expect(Math.abs(warm - 25)).toBeLessThanOrEqual(tolerance);
    expect(total).toBeGreaterThanOrEqual(0.9 * expected);
    // Root first: main calls hot_loop, both in the binary.
    const hotStack = profile.stacks.find((s) => profile.frames[s.frameIds.at(-1)!]!.function === "hot_loop")!;
    expect(hotStack.frameIds.slice(-2).map((i) => profile.frames[i])).toMatchObject([
      { function: "main", module: bins.burn, kernel: false },
      { function: "hot_loop", module: bins.burn, kernel: false },
    ]);
    expect(profile.note).toBe("");
    expect(profile.firstSampleAfterMs).toBeGreaterThan(0);
    expect(profile.startedAt).toBeDefined();
  });

  it.skipIf(!hasGo)("does the same for a stripped Go program, with names from .gopclntab", async () => {
    expect(readFileSync(bins.go!).includes(Buffer.from(".symtab\0"))).toBe(false);
    const pid = await observe(bins.go!, true);
    // 249 Hz: about 1,200 samples, so that counting noise (±1.3 %) stays well inside ±5 % (at 99 Hz a loaded run read 69.9 %).
    const { profile, busyCpus } = await profileBusy(pid, { hz: 249, durationMs: 5_000 });
    checkFrameTable(profile);
    const total = Number(profile.totalSamples);
    const self = selfSamples(profile);
    const hot = percent(self.get("main.hotLoop") ?? 0, total);
    const warm = percent(self.get("main.warmLoop") ?? 0, total);
    const expected = (profile.hz * profile.durationMs * busyCpus) / 1000;
    console.log(
      `Go: ${total} samples in ${profile.durationMs} ms, target busy ${busyCpus.toFixed(2)} CPUs → ${percent(total, expected).toFixed(1)}% of the expected ${expected.toFixed(0)}; main.hotLoop ${hot.toFixed(1)}%, main.warmLoop ${warm.toFixed(1)}%; first sample ${profile.firstSampleAfterMs} ms after the request`,
    );
    // The split between the program's two loops; Go's runtime (GC, scheduler) takes its own few
    // percent besides, more on a loaded machine (6 % in one CI run), so it is judged apart.
    const loops = (self.get("main.hotLoop") ?? 0) + (self.get("main.warmLoop") ?? 0);
    expect(percent(loops, total)).toBeGreaterThanOrEqual(85);
    const tolerance = shareTolerance(loops);
    expect(Math.abs(percent(self.get("main.hotLoop") ?? 0, loops) - 75)).toBeLessThanOrEqual(tolerance);
    expect(Math.abs(percent(self.get("main.warmLoop") ?? 0, loops) - 25)).toBeLessThanOrEqual(tolerance);
    expect(total).toBeGreaterThanOrEqual(0.9 * expected);
    // Root first. A Go leaf without a frame of its own hides its caller (main.main) from a
    // frame-pointer walk; the frames above it are there.
    const hotStack = profile.stacks.find((s) => profile.frames[s.frameIds.at(-1)!]!.function === "main.hotLoop")!;
    const names = hotStack.frameIds.map((i) => profile.frames[i]!.function);
    expect(names.indexOf("runtime.main")).toBeGreaterThanOrEqual(0);
    expect(names.indexOf("runtime.main")).toBeLessThan(names.length - 1);
    expect(profile.frames[hotStack.frameIds.at(-1)!]!.module).toBe(bins.go);
  });

  it("attributes the samples of children forked after the profile started", async () => {
    const pid = await observe(bins.forker!);
    // Children live 200 ms: those of the moment are gone before bpftrace has attached.
    const before = new Set(readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number));
    const { profile } = await client.profileCpu({ hz: 99, durationMs: 3_000 }, { timeoutMs: 120_000 });
    checkFrameTable(profile!);
    const p = profile!;
    const forked = p.pids.filter((x) => x !== pid && !before.has(x));
    const forkedSamples = p.stacks.filter((s) => forked.includes(s.pid)).reduce((n, s) => n + Number(s.samples), 0);
    const inChildWork = p.stacks
      .filter((s) => forked.includes(s.pid) && p.frames[s.frameIds.at(-1)!]!.function === "child_work")
      .reduce((n, s) => n + Number(s.samples), 0);
    console.log(`forks: ${forked.length} children forked during the profile, ${forkedSamples} of ${p.totalSamples} samples, ${inChildWork} in child_work; note: ${p.note}`);
    expect(forked.length).toBeGreaterThanOrEqual(10);
    expect(forkedSamples).toBeGreaterThanOrEqual(0.5 * Number(p.totalSamples));
    // Mostly in child_work; the rest are the child's fork and exit in the kernel, a larger share on a loaded machine (0.795 seen in CI).
    expect(inChildWork).toBeGreaterThanOrEqual(0.7 * forkedSamples);
    for (const child of forked.slice(0, 5)) expect(p.processNames[child]).toBe("forker");
    expect(p.note).toMatch(/forked during the profile/);
  });

  it("says why a profile tells little: an idle process, a binary without frame pointers", async () => {
    await observe(realpathSync("/bin/sleep"), false, ["60"]);
    const { profile: idle } = await client.profileCpu({ hz: 99, durationMs: 1_500 }, { timeoutMs: 120_000 });
    expect(idle!.totalSamples).toBe(0n);
    expect(idle!.note).toMatch(/^no samples: the process of the service did not run on a CPU during the 1\.\d s profile \(idle\)$/);

    await observe(bins.noFramePointers!);
    const { profile: shallow } = await client.profileCpu({ hz: 99, durationMs: 1_500 }, { timeoutMs: 120_000 });
    expect(Number(shallow!.totalSamples)).toBeGreaterThan(20);
    expect(shallow!.note).toContain(`of the samples have a user stack one frame deep (mostly in ${bins.noFramePointers}): it was probably built without frame pointers`);
    expect(shallow!.note).toContain("-fno-omit-frame-pointer");
  });

  it("refuses hz and durations out of range before anything runs", async () => {
    const pid = await observe(bins.burn!);
    const hz = await rejection(client.profileCpu({ hz: 5000, durationMs: 1000 }));
    expect([hz.code, hz.rawMessage]).toEqual([Code.InvalidArgument, "hz: must be from 1 to 1000 samples per second (got 5000)"]);
    const long = await rejection(client.profileCpu({ durationMs: 400_000 }));
    expect([long.code, long.rawMessage]).toEqual([Code.InvalidArgument, "duration_ms: at most 5 minutes (got 400s)"]);
    expect(profileTracersOf(pid)).toEqual([]);
  });

  it("says clearly when the service's process has exited, or when there is none", async () => {
    const pid = await observe(bins.burn!);
    const c = children.at(-1)!;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await exited;
    const gone = await rejection(client.profileCpu({ durationMs: 1000 }));
    expect(gone.code).toBe(Code.FailedPrecondition);
    expect(gone.rawMessage).toBe(`the service's process ${pid} exited; nothing to profile until a new one listens on the port`);
    observed = null;
    const none = await rejection(client.profileCpu({ durationMs: 1000 }));
    expect([none.code, none.rawMessage]).toEqual([Code.FailedPrecondition, "this agent observes no process yet (nothing listens on its port), so there is nothing to profile"]);
  });

  it("says so when bpftrace is not installed", async () => {
    const pid = await observe(bins.burn!);
    const noTracer = new CpuProfiler({ observedPid: () => pid, bpftracePath: "/nonexistent/bpftrace" });
    const err = profileConnectError(await noTracer.profile({ durationMs: 1000 }).catch((e: unknown) => e));
    expect(err.code).toBe(Code.FailedPrecondition);
    expect(err.rawMessage).toMatch(/needs bpftrace on the agent's host, and it is not installed/);
    expect(noTracer.busyPids).toEqual([]);
  });

  it("runs one profile per process at a time, naming the running one", async () => {
    const pid = await observe(bins.burn!);
    const first = client.profileCpu({ hz: 49, durationMs: 3_000, label: "first" }, { timeoutMs: 120_000 });
    await waitFor(() => profiler.busyPids.includes(pid) || undefined, 10_000, "the first profile to start");
    const second = await rejection(client.profileCpu({ hz: 49, durationMs: 1000 }));
    expect(second.code).toBe(Code.ResourceExhausted);
    expect(second.rawMessage).toMatch(new RegExp(`^a CPU profile of process ${pid} \\(burn\\) is already running \\(first\\), started \\d+s ago with about \\d+s left: one CPU profile per process at a time$`));
    const { profile } = await first;
    expect(Number(profile!.totalSamples)).toBeGreaterThan(0);
    expect(profile!.hz).toBe(49);
  });

  it("stops and cleans up when the caller cancels, or its deadline passes", async () => {
    const pid = await observe(bins.burn!);
    const abort = new AbortController();
    const cancelled = client.profileCpu({ durationMs: 60_000 }, { signal: abort.signal });
    await waitFor(() => (profileTracersOf(pid).length > 0 && profiler.busyPids.includes(pid)) || undefined, 20_000, "bpftrace to run");
    abort.abort();
    expect((await rejection(cancelled)).code).toBe(Code.Canceled);
    await waitFor(() => (profileTracersOf(pid).length === 0 && profiler.busyPids.length === 0) || undefined, 15_000, "bpftrace to be gone after the cancel");

    const started = performance.now();
    const late = await rejection(client.profileCpu({ durationMs: 60_000 }, { timeoutMs: 3_000 }));
    expect(late.code).toBe(Code.DeadlineExceeded);
    await waitFor(() => (profileTracersOf(pid).length === 0 && profiler.busyPids.length === 0) || undefined, 15_000, "bpftrace to be gone after the deadline");
    expect(performance.now() - started).toBeLessThan(30_000);
  });
});
