import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TelemetryBatchSchema, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { describe, expect, it } from "vitest";
import { batchLimits } from "./limits.ts";
import { validateTelemetryBatch } from "./validate.ts";

const now = Date.parse("2026-06-01T12:00:00Z");
const ts = (ms = now) => timestampFromDate(new Date(ms));

function good(): TelemetryBatch {
  return create(TelemetryBatchSchema, {
    batchId: "agent-1-b1",
    agentId: "agent-1",
    serviceName: "api",
    profiles: [
      {
        timestamp: ts(now - 60_000),
        durationMs: 60_000,
        hz: 19,
        frames: [{ function: "main", module: "/app" }, { function: "tick", module: "[kernel]", kernel: true }],
        stacks: [{ frameIds: [0, 1], samples: 5n, pid: 7 }, { frameIds: [0], samples: 3n, pid: 7 }],
        totalSamples: 10n,
        otherSamples: 2n,
      },
    ],
  });
}

describe("validateTelemetryBatch: profile windows", () => {
  it("accepts a well-formed window", () => {
    expect(validateTelemetryBatch(good(), now)).toBeNull();
  });

  it.each<[string, (b: TelemetryBatch) => void, RegExp]>([
    ["no timestamp", (b) => delete b.profiles[0]!.timestamp, /profile window #0 has no timestamp/],
    ["a timestamp two days ahead", (b) => (b.profiles[0]!.timestamp = ts(now + 2 * 86_400_000)), /more than a day in the future/],
    ["hz 0", (b) => (b.profiles[0]!.hz = 0), /hz 0 \(expected 1\.\.1000\)/],
    ["hz 5000", (b) => (b.profiles[0]!.hz = 5000), /hz 5000/],
    ["duration 0", (b) => (b.profiles[0]!.durationMs = 0), /duration_ms 0/],
    ["a frame id out of range", (b) => (b.profiles[0]!.stacks[0]!.frameIds = [0, 2]), /stack #0 has frame id 2, out of range/],
    ["an empty stack", (b) => (b.profiles[0]!.stacks[1]!.frameIds = []), /stack #1 has no frames/],
    ["a stack too deep", (b) => (b.profiles[0]!.stacks[0]!.frameIds = Array(batchLimits.profileStackDepth + 1).fill(0)), /at most 256/],
    ["too many frames", (b) => (b.profiles[0]!.frames = Array.from({ length: batchLimits.profileFrames + 1 }, () => b.profiles[0]!.frames[0]!)), /5001 frames \(at most 5000\)/],
    ["too many stacks", (b) => (b.profiles[0]!.stacks = Array.from({ length: batchLimits.profileStacks + 1 }, () => b.profiles[0]!.stacks[1]!)), /2001 stacks \(at most 2000\)/],
    ["a function with no name", (b) => (b.profiles[0]!.frames[0]!.function = ""), /frame #0 function is empty/],
    ["a module name over the cap", (b) => (b.profiles[0]!.frames[0]!.module = "m".repeat(2000)), /frame #0 module is longer than 1024/],
    ["a control character in a function", (b) => (b.profiles[0]!.frames[1]!.function = "a\u0000b"), /control characters/],
    ["stacks with more samples than the total", (b) => (b.profiles[0]!.totalSamples = 9n), /add up to more than total_samples \(9\)/],
    ["a total the store cannot hold", (b) => (b.profiles[0]!.totalSamples = 2n ** 64n - 1n), /more than the store holds/],
    ["too many windows", (b) => (b.profiles = Array.from({ length: batchLimits.profileWindows + 1 }, () => b.profiles[0]!)), /profile windows \(at most 120\)/],
  ])("refuses %s", (_, spoil, reason) => {
    const b = good();
    spoil(b);
    expect(validateTelemetryBatch(b, now)).toMatch(reason);
  });
});
