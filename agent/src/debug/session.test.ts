import type { ChildProcess } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { listFunctions } from "./elf.ts";
import { DebugError } from "./program.ts";
import { SessionLimiter, UprobeSession } from "./session.ts";
import { bpfSkipReason, compileTarget, spawnTarget, waitFor } from "./testing.ts";

const skip = bpfSkipReason();
if (skip) console.log(`session.test: SKIPPING real bpftrace uprobe tests: ${skip}`);

describe.skipIf(skip !== undefined)("UprobeSession with real bpftrace on a C target", () => {
  const bin = skip ? "" : compileTarget();
  const children: ChildProcess[] = [];
  const sessions: UprobeSession[] = [];

  afterEach(async () => {
    await Promise.all(sessions.splice(0).map((s) => s.stop()));
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
  });

  async function started(): Promise<number> {
    const c = spawnTarget(bin, children);
    const pid = c.pid!;
    // The exe link resolves once exec has completed.
    await waitFor(async () => (await listFunctions(pid, "validate_card")).functions.length > 0 || undefined, 5_000, "exec");
    return pid;
  }

  it("lists validate_card of the running process", async () => {
    const pid = await started();
    const fl = await listFunctions(pid, "validate");
    const f = fl.functions.find((x) => x.name === "validate_card");
    expect(f?.size).toBeGreaterThan(0);
    expect(fl.isGo).toBe(false);
  });

  it("captures calls with durations, args and return values of the target pid only", async () => {
    const pid = await started();
    await started(); // a second copy must not add events
    const s = await UprobeSession.start({ pid, symbol: "validate_card", captureArgs: 1, captureReturn: true, durationMs: 20_000, slowThresholdMs: 4 });
    sessions.push(s);
    await waitFor(() => s.events.filter((e) => e.type === "return").length >= 40 || undefined, 15_000, "40 returns");
    const sum = await s.stop();
    expect(s.stopReason).toBe("stopped");
    expect(s.events.every((e) => e.pid === pid)).toBe(true);
    const entries = s.events.filter((e) => e.type === "entry");
    const returns = s.events.filter((e) => e.type === "return");
    for (const e of entries) expect(["10", "20", "30", "40", "50"]).toContain(e.args?.[0]);
    for (const r of returns) {
      expect(["20", "40", "60", "80", "100"]).toContain(r.ret);
      // usleep(1..5 ms): at least 1 ms, generously under 200 ms.
      expect(r.durationNs!).toBeGreaterThanOrEqual(1_000_000);
      expect(r.durationNs!).toBeLessThan(200_000_000);
    }
    // Durations follow the argument: pair each return with the previous entry on its tid.
    const last = new Map<number, string>();
    const byArg = new Map<string, number[]>();
    for (const e of s.events) {
      if (e.type === "entry") last.set(e.tid, e.args![0]!);
      else if (last.has(e.tid)) byArg.set(last.get(e.tid)!, [...(byArg.get(last.get(e.tid)!) ?? []), e.durationNs!]);
    }
    const med = (a: number[]) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    expect(med(byArg.get("50")!)).toBeGreaterThan(med(byArg.get("10")!));
    expect(sum.calls).toBe(returns.length);
    expect(sum.p50Ns).toBeGreaterThanOrEqual(1_000_000);
    expect(sum.slowCalls).toBeGreaterThan(0);
    console.log("summary", JSON.stringify(sum));
  });

  it("pairs each return of a recursive function with its own call", async () => {
    const pid = await started();
    const s = await UprobeSession.start({ pid, symbol: "nest", captureArgs: 1, captureReturn: true, durationMs: 20_000 });
    sessions.push(s);
    await waitFor(() => s.events.filter((e) => e.type === "return").length >= 25 || undefined, 15_000, "25 returns");
    await s.stop();
    // Replay the calls per thread: each return must close the innermost open call,
    // whose argument n gives the value n*(n+1)/2 and at least n+1 sleeps of 200 us.
    const open = new Map<number, number[]>();
    let closed = 0;
    for (const e of s.events) {
      const stack = open.get(e.tid) ?? [];
      open.set(e.tid, stack);
      if (e.type === "entry") stack.push(Number(e.args![0]));
      else {
        const n = stack.pop()!;
        expect(n).toBeDefined();
        expect(Number(e.ret)).toBe((n * (n + 1)) / 2);
        expect(e.durationNs!).toBeGreaterThanOrEqual((n + 1) * 200_000);
        closed++;
      }
    }
    expect(closed).toBeGreaterThanOrEqual(25);
    // Every depth returns, the outer calls too (a start kept per thread alone loses them).
    expect(new Set(s.events.filter((e) => e.type === "return").map((e) => e.ret))).toEqual(new Set(["0", "1", "3", "6", "10"]));
  });

  it("stops at max events", async () => {
    const pid = await started();
    const s = await UprobeSession.start({ pid, symbol: "validate_card", maxEvents: 10, durationMs: 30_000 });
    sessions.push(s);
    const collected = [];
    for await (const e of s) collected.push(e);
    await s.ended();
    expect(collected.length).toBe(10);
    expect(s.events.length).toBe(10);
    expect(s.stopReason).toBe("max_events");
  });

  it("stops at the duration limit and honours the sample rate", async () => {
    const pid = await started();
    const s = await UprobeSession.start({ pid, symbol: "validate_card", durationMs: 1_500, sampleRate: 5, captureArgs: 1 });
    sessions.push(s);
    await s.ended();
    expect(s.stopReason).toBe("duration");
    const args = new Set(s.events.filter((e) => e.type === "entry").map((e) => e.args![0]));
    expect(args.size).toBe(1); // every 5th call of a 5-call cycle: always the same amount
  });

  it("refuses a bad symbol before bpftrace runs, and enforces the session limit", async () => {
    const pid = await started();
    await expect(UprobeSession.start({ pid, symbol: "validate_crd", bpftracePath: "/nonexistent" })).rejects.toMatchObject({
      code: "function_not_found",
      suggestions: ["validate_card"],
    });
    const limiter = new SessionLimiter(1);
    const s = await UprobeSession.start({ pid, symbol: "validate_card", limiter, durationMs: 10_000 });
    sessions.push(s);
    await expect(UprobeSession.start({ pid, symbol: "validate_card", limiter })).rejects.toBeInstanceOf(DebugError);
    await s.stop();
    await s.stop(); // idempotent
    expect(limiter.size).toBe(0);
  });
});
