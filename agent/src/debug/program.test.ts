import { describe, expect, it } from "vitest";
import type { FunctionList } from "./elf.ts";
import { DebugError, generateProgram } from "./program.ts";
import { parseEventLine, SessionLimiter, summarize, type UprobeEvent } from "./session.ts";

const fl: FunctionList = {
  binary: "/proc/42/exe",
  isGo: false,
  machine: 62,
  functions: [{ name: "validate_card", address: 0x1139n, size: 40 }],
};

describe("generateProgram", () => {
  it("fills the template with integers only", () => {
    const p = generateProgram({ pid: 42, symbol: "validate_card", functions: fl, captureArgs: 2, captureReturn: true, sampleRate: 3 });
    expect(p.source).toContain("uprobe:/proc/42/exe:0x1139 {");
    expect(p.source).toContain("uretprobe:/proc/42/exe:0x1139 /@pids[pid] && @depth[tid] > 0/");
    // The process set: the listener alone by default.
    expect(p.source).toMatch(/BEGIN \{\n {2}@pids\[42\] = 1;\n {2}printf/);
    expect(p.source).toContain("@seen % 3 == 0");
    expect(p.source).toContain(", arg0, arg1);");
    expect(p.source).toContain(", retval);");
    expect(p.source).not.toContain("{{");
    expect(p.source).not.toContain("validate_card");
  });

  it("seeds the process set and the drain trigger with integers", () => {
    const p = generateProgram({ pid: 42, pids: [42, 43, 44, 43], drainToken: 0x40_0001 + 7, symbol: "validate_card", functions: fl });
    expect(p.pids).toEqual([42, 43, 44]);
    expect(p.source).toContain("  @pids[42] = 1;\n  @pids[43] = 1;\n  @pids[44] = 1;\n");
    expect(p.source).toContain(`(args->pid & 0xffffffff) == ${2 ** 32 - (0x40_0001 + 7)}/`);
    expect(() => generateProgram({ pid: 42, drainToken: 5, symbol: "validate_card", functions: fl })).toThrow(/drainToken/);
    expect(() => generateProgram({ pid: 42, pids: [0], symbol: "validate_card", functions: fl })).toThrow(/invalid pid/);
  });

  it.each([
    ["unknown symbol", { symbol: "validate_crd" }, "function_not_found"],
    ["injection attempt", { symbol: 'x { system("id") }' }, "function_not_found"],
    ["duration above 600 s", { durationMs: 601_000 }, "limit_reached"],
    ["too many args", { captureArgs: 7 }, "limit_reached"],
    ["zero sample rate", { sampleRate: 0 }, "invalid_option"],
    ["bad pid", { pid: -1 }, undefined],
  ])("refuses %s", (_n, over, code) => {
    let err: unknown;
    try {
      generateProgram({ pid: 42, symbol: "validate_card", functions: fl, ...over });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(Error);
    if (code) expect((err as DebugError).code).toBe(code);
  });

  it("offers close matches for unknown functions", () => {
    try {
      generateProgram({ pid: 42, symbol: "validate_crd", functions: fl });
      expect.unreachable();
    } catch (e) {
      expect((e as DebugError).suggestions).toEqual(["validate_card"]);
    }
  });

  it("Go: entry-only template, no uretprobe, refuses return capture", () => {
    const go = { ...fl, isGo: true };
    const p = generateProgram({ pid: 42, symbol: "validate_card", functions: go, captureArgs: 1 });
    expect(p.template).toBe("uprobe-entry-go");
    expect(p.source).not.toMatch(/^uretprobe:/m);
    expect(p.source).toContain('reg("ax")');
    expect(() => generateProgram({ pid: 42, symbol: "validate_card", functions: go, captureReturn: true })).toThrow(/RET/);
  });
});

describe("event parsing and summary", () => {
  it("parses entry/return lines", () => {
    expect(parseEventLine('{"ev":"entry","ts":123456789012345678,"pid":7,"tid":8,"args":[10,-1]}')).toMatchObject({
      type: "entry", ns: 123456789012345678n, pid: 7, tid: 8, args: ["10", "-1"],
    });
    expect(parseEventLine('{"ev":"return","ts":5,"pid":7,"tid":8,"dur":1500,"ret":20}')).toMatchObject({
      type: "return", durationNs: 1500, ret: "20",
    });
    expect(parseEventLine("Attaching 3 probes...")).toBeUndefined();
  });

  it("summarizes percentiles and slow calls", () => {
    const evs: UprobeEvent[] = Array.from({ length: 100 }, (_, i) => ({
      type: "return", ns: 0n, timeMs: 0, pid: 1, tid: 1, durationNs: (i + 1) * 1000,
    }));
    const s = summarize(evs, { function: "f", slowThresholdNs: 90_000 });
    expect(s).toMatchObject({ calls: 100, p50Ns: 50_000, p95Ns: 95_000, p99Ns: 99_000, maxNs: 100_000, slowCalls: 10, avgNs: 50_500 });
  });

  it("limits concurrent sessions", () => {
    const l = new SessionLimiter(2);
    l.acquire("a");
    l.acquire("b");
    expect(() => l.acquire("c")).toThrow(/at most 2/);
    l.release("a");
    l.acquire("c");
    expect(l.size).toBe(2);
  });
});
