import { create } from "@bufbuild/protobuf";
import { DebugSessionSchema } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { describe, expect, it } from "vitest";
import { eventStats, formatSummary } from "./index.ts";

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
