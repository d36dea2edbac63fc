// Go targets: returns probed on RET instructions (never a uretprobe), paired
// by goroutine, through the colony, on a real Go program whose goroutine
// stacks grow during the probed call; the program keeps running.
import { execFileSync, type ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentClientPool } from "@coral/colony/testing";
import { waitFor } from "../helpers/wait.ts";
import { bpfSkipReason, compileGoPayments, debugApi, request, startObservedTarget, type ObservedTarget } from "./helpers.ts";

const skip = bpfSkipReason(["go", "objdump", "unshare"]);
if (skip) console.log(`go.test: SKIPPING Go uprobe tests: ${skip}`);

describe.skipIf(skip !== undefined)("live debugging a Go program", () => {
  let fixture: ObservedTarget | undefined;
  let port: number;
  let target: ChildProcess;
  let api: ReturnType<typeof debugApi>;

  beforeAll(async () => {
    fixture = await startObservedTarget(compileGoPayments(), "payments-go", { pattern: "ValidateCard" });
    ({ port, api, target } = fixture);
  }, 180_000);

  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
  });

  it("pairs entry and return by goroutine with arguments and return values; the program survives stack growth", async () => {
    const fns = await api.listFunctions({ serviceName: "payments-go", pattern: "ValidateCard" });
    expect(fns.isGo).toBe(true);
    expect(fns.functions.map((f) => f.name)).toContain("main.ValidateCard");

    const attached = await api.attachUprobe({ serviceName: "payments-go", functionName: "main.ValidateCard", durationMs: 60_000, captureArgs: 1, captureReturn: true });
    expect(attached.session?.isGo).toBe(true);
    expect(await request(port, "40 30")).toBe(`ok ${40 * 435}`);
    const detached = await api.detachUprobe({ sessionId: attached.session!.sessionId });
    expect(detached.session?.state).toBe("completed");

    const { events } = await api.queryUprobeEvents({ sessionId: attached.session!.sessionId, limit: 1000 });
    const entries = events.filter((e) => e.type === "entry");
    const returns = events.filter((e) => e.type === "return");
    expect(entries).toHaveLength(40);
    expect(returns).toHaveLength(40);
    for (const e of entries) expect(e.args).toEqual(["30"]);
    for (const r of returns) {
      expect(r.returnValue).toBe("435");
      expect(Number(r.durationNs)).toBeGreaterThanOrEqual(3_000_000); // time.Sleep(3 ms)
      expect(Number(r.durationNs)).toBeLessThan(2_000_000_000);
    }
    // Every return closes the open entry of its own goroutine, whatever thread it ran on.
    const open = new Map<string, number>();
    for (const e of events) {
      if (e.type === "entry") {
        expect(open.has(e.goroutine)).toBe(false);
        open.set(e.goroutine, e.tid);
      } else {
        expect(open.has(e.goroutine)).toBe(true);
        open.delete(e.goroutine);
      }
    }
    expect(open.size).toBe(0);
    expect(new Set(entries.map((e) => e.goroutine)).size).toBeGreaterThan(1);

    // Still alive and still right after the session.
    expect(target.exitCode).toBeNull();
    expect(await request(port, "5 30")).toBe(`ok ${5 * 435}`);
  }, 120_000);

  it("pairs each return of a recursive function with its own call while the stack grows", async () => {
    const attached = await api.attachUprobe({ serviceName: "payments-go", functionName: "main.grow", durationMs: 60_000, captureArgs: 1, captureReturn: true });
    // ValidateCard(30) calls grow(30), which recurses down to grow(0) through 1 KiB frames.
    expect(await request(port, "1 30")).toBe(`ok 435`);
    await api.detachUprobe({ sessionId: attached.session!.sessionId });
    const { events } = await api.queryUprobeEvents({ sessionId: attached.session!.sessionId, limit: 1000 });
    expect(events.filter((e) => e.type === "entry")).toHaveLength(31);
    expect(events.filter((e) => e.type === "return")).toHaveLength(31);
    // Each return closes the innermost open call of its goroutine: grow(n) returns n*(n+1)/2,
    // and an outer call lasts at least as long as the inner one that returned before it.
    const open: number[] = [];
    let lastDuration = 0;
    for (const e of events) {
      if (e.type === "entry") open.push(Number(e.args[0]));
      else {
        const n = open.pop()!;
        expect(Number(e.returnValue)).toBe((n * (n + 1)) / 2);
        expect(Number(e.durationNs)).toBeGreaterThanOrEqual(lastDuration);
        lastDuration = Number(e.durationNs);
      }
    }
    expect(open).toEqual([]);
    expect(new Set(events.map((e) => e.goroutine)).size).toBe(1);
    expect(target.exitCode).toBeNull();
  }, 120_000);

  it("expires a Go session on its deadline and leaves the program running", async () => {
    const attached = await api.attachUprobe({ serviceName: "payments-go", functionName: "main.ValidateCard", durationMs: 2000 });
    const driving = request(port, "200 30");
    const ended = await waitFor("Go session expires", async () => {
      const s = (await api.getDebugSession({ sessionId: attached.session!.sessionId })).session!;
      return s.state === "expired" ? s : undefined;
    }, { timeoutMs: 40_000, intervalMs: 250 });
    expect(Number(ended.summary?.calls)).toBeGreaterThan(0);
    expect(await driving).toBe(`ok ${200 * 435}`);
    expect(target.exitCode).toBeNull();
  }, 90_000);

  it("keeps a call that returned just before the collector was stopped (10 times over)", async () => {
    const { project, agent } = fixture!;
    const onAgent = new AgentClientPool(project.colonyKey).get(agent.agentId, agent.apiUrl);
    const kept: number[] = [];
    const before = new Set(kernelUprobeGroups());
    for (let round = 0; round < 10; round++) {
      const started = await onAgent.startUprobeCollector({ functionName: "main.ValidateCard", durationMs: 60_000, captureArgs: 1, captureReturn: true });
      expect(await request(port, "1 7")).toBe("ok 14");
      // Stopped as soon as the call's answer is in: its return was recorded before the stop.
      const stopped = await onAgent.stopUprobeCollector({ collectorId: started.collectorId });
      const { events } = await onAgent.queryUprobeEvents({ collectorId: started.collectorId, limit: 10 });
      expect(events.map((e) => `${e.type}:${e.type === "entry" ? e.args.join(",") : e.returnValue}`)).toEqual(["entry:7", "return:14"]);
      expect(Number(stopped.summary?.calls)).toBe(1);
      expect(stopped.summary?.stopReason).toBe("stopped");
      kept.push(events.length);
    }
    expect(kept).toEqual(Array(10).fill(2));
    expect(target.exitCode).toBeNull();
    // Every stopped session took its probes out of the kernel (they used to stay, hundreds of them).
    // Only groups this test added count: sessions of earlier files in this worker may still run.
    await waitFor("this test's Go probes removed from the kernel", () => kernelUprobeGroups().every((g) => before.has(g) || !g.startsWith(`coral_${process.pid}_`)), { timeoutMs: 30_000 });
  }, 180_000);
});

/** The uprobe event groups the kernel holds, read through a private tracefs mount. */
function kernelUprobeGroups(): string[] {
  const out = execFileSync("unshare", ["-m", "--propagation", "private", "sh", "-c", 'T="$(mktemp -d)"; mount -t tracefs nodev "$T" && cat "$T/uprobe_events"; umount "$T"; rmdir "$T"'], { encoding: "utf8" });
  return out.split("\n").flatMap((line) => /^p:([^/]+)\//.exec(line)?.[1] ?? []);
}
