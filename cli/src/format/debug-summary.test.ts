import { create } from "@bufbuild/protobuf";
import { UprobeEventSchema } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import { DebugSessionSchema } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { describe, expect, it } from "vitest";
import { eventStats, formatEventLine, formatSummary } from "./index.ts";

describe("formatSummary", () => {
  const stats = eventStats([], 100);

  it("says how many processes were probed and, when no call was seen, where calls may be happening", () => {
    const session = create(DebugSessionSchema, {
      state: "active",
      slowThresholdMs: 100,
      sampleRate: 1,
      summary: { processCount: 5, note: "no calls yet in 5 processes of the service; the function runs in processes outside the service's process tree: pids 4242" },
    });
    const text = formatSummary(session, stats, { color: false });
    expect(text).toContain("  Processes probed: 5\n");
    expect(text).toContain("  Note: no calls yet in 5 processes of the service; the function runs in processes outside the service's process tree: pids 4242");
  });

  it("leaves both out when the agent did not report them (an older agent)", () => {
    const text = formatSummary(create(DebugSessionSchema, { state: "active", slowThresholdMs: 100, sampleRate: 1, summary: {} }), stats, { color: false });
    expect(text).not.toMatch(/Processes probed|Note:/);
  });
});

describe("errors in the summary", () => {
  const ret = (returnValue: string) => create(UprobeEventSchema, { type: "return", pid: 1, tid: 1, durationNs: 1000n, returnValue });
  const calls = [ret("-1"), ret("-22"), ret("3"), ret('"-1"'), ret("!TypeError: boom"), ret("!Error: rejected"), ret("")];

  it("counts a Node call as an error when it threw or rejected, never for a negative value it returned", () => {
    const session = create(DebugSessionSchema, { state: "completed", slowThresholdMs: 100, sampleRate: 1, runtime: "node" });
    const stats = eventStats(calls, 100, "node");
    expect(stats).toMatchObject({ calls: 7, errors: 2 });
    expect(formatSummary(session, stats, { color: false })).toContain("  Errors (threw or rejected): 2 (28.6%)\n");
    expect(formatEventLine(ret("-1"), session, { color: false })).toHaveLength(1);
    const threw = formatEventLine(ret("!TypeError: boom"), session, { color: false });
    expect(threw[0]).not.toContain("ret=");
    expect(threw[1]).toBe("  └─ error: threw TypeError: boom");
  });

  it("keeps the C convention elsewhere: a negative integer returned is an error, known with --capture-return", () => {
    const session = create(DebugSessionSchema, { state: "completed", slowThresholdMs: 100, sampleRate: 1, runtime: "native", captureReturn: true });
    const stats = eventStats(calls, 100, "native");
    expect(stats.errors).toBe(2);
    expect(formatSummary(session, stats, { color: false })).toContain("  Errors: 2 (28.6%)\n");
    expect(formatEventLine(ret("-22"), session, { color: false })[1]).toBe("  └─ error: returned -22");
    // An older colony says no runtime: the C rule, as before.
    expect(eventStats(calls, 100).errors).toBe(2);
  });
});
