// The agent's uprobe collectors with real bpftrace on a real compiled C
// program, driven over AgentDebugService as the colony drives it.
import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentClientPool } from "@coral/colony/testing";
import { generateIdentityKey } from "@coral/proto";
import { testAgent } from "../helpers/agents.ts";
import { type TestProject } from "../helpers/colony.ts";
import { rejection } from "../helpers/errors.ts";
import { waitFor } from "../helpers/wait.ts";
import { bpfSkipReason, compilePayments, request, startObservedTarget, type ObservedTarget } from "./helpers.ts";

const skip = bpfSkipReason();
if (skip) console.log(`agent-collector.test: SKIPPING real bpftrace tests: ${skip}`);

describe.skipIf(skip !== undefined)("agent uprobe collectors on a C target", () => {
  let fixture: ObservedTarget | undefined;
  let project: TestProject;
  let agent: Awaited<ReturnType<typeof testAgent>>;
  let port: number;
  let pid: number;
  let client: ReturnType<AgentClientPool["get"]>;

  beforeAll(async () => {
    fixture = await startObservedTarget(compilePayments(), "payments", { pattern: "validate" });
    ({ port, project, agent } = fixture);
    pid = fixture.target.pid!;
    client = new AgentClientPool(project.colonyKey).get(agent.agentId, agent.apiUrl);
  }, 120_000);

  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
  });

  it("lists the observed process's functions", async () => {
    const res = await client.listFunctions({ pattern: "card" });
    expect(res.pid).toBe(pid);
    expect(res.isGo).toBe(false);
    expect(res.functions.map((f) => f.name)).toContain("validate_card");
  });

  it("N calls give N entry/return pairs with durations in bounds, stored and paged", async () => {
    const start = await client.startUprobeCollector({ functionName: "validate_card", durationMs: 60_000, captureArgs: 1, captureReturn: true });
    expect(start.pid).toBe(pid);
    expect(start.returnProbe).toBe("uretprobe");
    expect(await request(port, "25 30")).toBe(`ok ${25 * 60}`);
    const stop = await client.stopUprobeCollector({ collectorId: start.collectorId });
    expect(stop.summary?.stopReason).toBe("stopped");
    expect(Number(stop.summary?.calls)).toBe(25);

    // Page through with a small limit: 50 events in pages of 20.
    const all = [];
    let after = 0n;
    for (let page = 0; page < 10; page++) {
      const res = await client.queryUprobeEvents({ collectorId: start.collectorId, afterSeq: after, limit: 20 });
      all.push(...res.events);
      after = res.nextAfterSeq;
      expect(res.running).toBe(false);
      if (!res.hasMore) break;
    }
    expect(all.map((e) => Number(e.seq))).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    const entries = all.filter((e) => e.type === "entry");
    const returns = all.filter((e) => e.type === "return");
    expect(entries).toHaveLength(25);
    expect(returns).toHaveLength(25);
    for (const e of entries) expect(e.args).toEqual(["30"]);
    for (const r of returns) {
      expect(r.returnValue).toBe("60");
      expect(Number(r.durationNs)).toBeGreaterThanOrEqual(3_000_000); // usleep(3 ms)
      expect(Number(r.durationNs)).toBeLessThan(250_000_000);
      expect(r.pid).toBe(pid);
    }

    // Time filters: nothing after the session, everything in its window.
    const first = all[0]!.timestamp!;
    const none = await client.queryUprobeEvents({ collectorId: start.collectorId, since: { seconds: first.seconds + 3600n, nanos: 0 } });
    expect(none.events).toHaveLength(0);
    const window = await client.queryUprobeEvents({ collectorId: start.collectorId, since: { seconds: first.seconds - 1n, nanos: 0 }, limit: 1000 });
    expect(window.events).toHaveLength(50);
  });

  it("honours sample rate and max events", async () => {
    const sampled = await client.startUprobeCollector({ functionName: "validate_card", sampleRate: 5, captureArgs: 1 });
    await request(port, "20 10");
    await client.stopUprobeCollector({ collectorId: sampled.collectorId });
    const s = await client.queryUprobeEvents({ collectorId: sampled.collectorId });
    expect(s.events.filter((e) => e.type === "entry")).toHaveLength(4);

    const capped = await client.startUprobeCollector({ functionName: "validate_card", maxEvents: 7 });
    await request(port, "20 10");
    const res = await waitFor("collector stops at max events", async () => {
      const r = await client.queryUprobeEvents({ collectorId: capped.collectorId });
      return r.running ? undefined : r;
    });
    expect(res.events).toHaveLength(7);
    expect(res.summary?.stopReason).toBe("max_events");
  });

  it("stops a collector at its own deadline without being called", async () => {
    const short = await client.startUprobeCollector({ functionName: "validate_card", durationMs: 1500 });
    const res = await waitFor("collector deadline", async () => {
      const r = await client.queryUprobeEvents({ collectorId: short.collectorId });
      return r.running ? undefined : r;
    }, { timeoutMs: 20_000 });
    expect(res.summary?.stopReason).toBe("duration");
  });

  it("answers bad requests with clear errors", async () => {
    const notFound = await rejection(client.startUprobeCollector({ functionName: "validate_crd" }));
    expect(notFound.code).toBe(Code.NotFound);
    expect(notFound.rawMessage).toMatch(/close matches: validate_card/);
    expect((await rejection(client.startUprobeCollector({ functionName: "validate_card", durationMs: 600_001 }))).code).toBe(Code.ResourceExhausted);
    expect((await rejection(client.startUprobeCollector({ functionName: "" }))).code).toBe(Code.InvalidArgument);
    expect((await rejection(client.queryUprobeEvents({ collectorId: "nope" }))).code).toBe(Code.NotFound);
    expect((await rejection(client.queryUprobeEvents({ collectorId: "nope", limit: 10_001 }))).code).toBe(Code.InvalidArgument);
  });

  it("refuses callers without the colony's identity key", async () => {
    const stranger = new AgentClientPool(await generateIdentityKey()).get(agent.agentId, agent.apiUrl);
    expect((await rejection(stranger.listFunctions({}))).code).toBe(Code.Unauthenticated);
  });
});
