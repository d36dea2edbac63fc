import { describe, expect, it } from "vitest";
import { continuousProfileProgram, profileParameters, profileProgram } from "./program.ts";

describe("profileParameters", () => {
  it.each([
    [{}, { hz: 99, durationMs: 30_000 }],
    [{ hz: 0, durationMs: 0 }, { hz: 99, durationMs: 30_000 }],
    [{ hz: 1, durationMs: 1 }, { hz: 1, durationMs: 1 }],
    [{ hz: 1000, durationMs: 300_000 }, { hz: 1000, durationMs: 300_000 }],
    [{ hz: 49, durationMs: 5_000 }, { hz: 49, durationMs: 5_000 }],
  ])("%j → %j", (req, expected) => {
    expect(profileParameters(req)).toEqual(expected);
  });

  it.each([
    [{ hz: 5000 }, "hz: must be from 1 to 1000 samples per second (got 5000)"],
    [{ hz: 1001 }, "hz: must be from 1 to 1000 samples per second (got 1001)"],
    [{ hz: -3 }, "hz: must be from 1 to 1000 samples per second (got -3)"],
    [{ hz: 9.5 }, "hz: must be from 1 to 1000 samples per second (got 9.5)"],
    [{ durationMs: 400_000 }, "duration_ms: at most 5 minutes (got 400s)"],
    [{ durationMs: 300_001 }, "duration_ms: at most 5 minutes (got 300s)"],
    [{ durationMs: -1 }, "duration_ms: must be a whole number of milliseconds, at least 1 (got -1)"],
  ])("refuses %j", (req, error) => {
    expect(profileParameters(req)).toEqual({ error });
  });
});

describe("profileProgram", () => {
  it("fills in the rate, the duration and one seed line per pid, and nothing else", () => {
    const p = profileProgram({ pids: [42, 43, 42], hz: 99, durationMs: 4_000 });
    expect(p.pids).toEqual([42, 43]);
    expect(p.source).toContain("  @pids[42] = 1;\n  @pids[43] = 1;");
    expect(p.source).toContain("profile:hz:99 /@pids[pid]/");
    expect(p.source).toContain("interval:ms:4000 {");
    expect(p.source).toContain("ustack(perf, 127), kstack(perf, 64)");
    expect(p.source).not.toMatch(/\{\{/);
  });

  it.each([
    [{ pids: [], hz: 99, durationMs: 1000 }, /no process/],
    [{ pids: [0], hz: 99, durationMs: 1000 }, /invalid pid 0/],
    [{ pids: [1.5], hz: 99, durationMs: 1000 }, /invalid pid 1.5/],
    [{ pids: [2 ** 40], hz: 99, durationMs: 1000 }, /invalid pid/],
    [{ pids: [1], hz: 2000, durationMs: 1000 }, /hz: must be/],
  ])("refuses %j", (opts, message) => {
    expect(() => profileProgram(opts)).toThrow(message);
  });

  it("seeds at most 2048 pids", () => {
    const p = profileProgram({ pids: Array.from({ length: 3000 }, (_, i) => i + 1), hz: 99, durationMs: 1000 });
    expect(p.pids).toHaveLength(2048);
  });
});

describe("continuousProfileProgram", () => {
  it("dumps and clears every window, and ends after its lifetime", () => {
    const p = continuousProfileProgram({ pids: [7], hz: 19, windowMs: 60_000, lifetimeMs: 3_600_000 });
    expect(p).toMatchObject({ pids: [7], hz: 19, windowMs: 60_000, durationMs: 3_600_000 });
    expect(p.source).toContain("profile:hz:19 /@pids[pid]/");
    expect(p.source).toMatch(/interval:ms:60000 \{\n {2}printf\("\{\\"ev\\":\\"window\\"[^]*print\(@stacks\);[^]*clear\(@stacks\);/);
    expect(p.source).toContain("interval:ms:3600000 {\n  exit();");
    expect(p.source).not.toMatch(/\{\{/);
  });

  it.each([
    [{ windowMs: 50 }, /window: must be from 100 ms to 10 minutes \(got 50\)/],
    [{ windowMs: 700_000 }, /window: must be from 100 ms/],
    [{ hz: 2000 }, /hz: must be/],
  ])("refuses %j", (bad, message) => {
    expect(() => continuousProfileProgram({ pids: [7], hz: 19, windowMs: 60_000, lifetimeMs: 3_600_000, ...bad })).toThrow(message);
  });
});
