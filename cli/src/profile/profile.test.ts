// The profile outputs on a known profile: per-function self and total,
// folded stacks, the flame graph's boxes, and pprof read back by
// pprof-format and by Go's own `go tool pprof` (when Go is installed).
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { create } from "@bufbuild/protobuf";
import { CpuProfileSchema } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { ProfileCpuResponseSchema } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { Profile } from "pprof-format";
import { describe, expect, it } from "vitest";
import { outputKind } from "../commands/profile.ts";
import { flameTree, foldedStacks, topFunctions } from "./analyze.ts";
import { flameGraphSvg } from "./flamegraph.ts";
import { formatProfile } from "./format.ts";
import { toPprof } from "./pprof.ts";
import { hottestPaths } from "../tools/profile.ts";

// main → work → hot (75), main → work → cold (20), main → fib → fib (recursion, 4), a kernel frame under hot (1).
const profile = create(CpuProfileSchema, {
  frames: [
    { function: "main", module: "/srv/app" },
    { function: "work", module: "/srv/app" },
    { function: "hot", module: "/srv/app" },
    { function: "cold", module: "/srv/app" },
    { function: "fib", module: "/srv/app" },
    { function: "vfs_write", module: "[kernel]", kernel: true },
  ],
  stacks: [
    { frameIds: [0, 1, 2], samples: 74n, pid: 10 },
    { frameIds: [0, 1, 2, 5], samples: 1n, pid: 10 },
    { frameIds: [0, 1, 3], samples: 20n, pid: 11 },
    { frameIds: [0, 4, 4], samples: 4n, pid: 10 },
    { frameIds: [0], samples: 1n, pid: 10 },
  ],
  totalSamples: 100n,
  hz: 99,
  durationMs: 5000,
  startedAt: { seconds: 1_800_000_000n, nanos: 0 },
  pids: [10, 11],
  method: "ebpf",
  processNames: { 10: "app", 11: "app worker" },
});

describe("profile analysis", () => {
  it("counts self time at the leaf and total time once per sample, recursion included", () => {
    const top = topFunctions(profile);
    expect(top.map((f) => [f.function, f.self, f.total])).toEqual([
      ["hot", 74, 75],
      ["cold", 20, 20],
      ["fib", 4, 4],
      ["main", 1, 100],
      ["vfs_write", 1, 1],
      ["work", 0, 95],
    ]);
    expect(top.find((f) => f.function === "vfs_write")?.kernel).toBe(true);
  });

  it("writes folded stacks with the process first and kernel frames marked", () => {
    expect(foldedStacks(profile).split("\n")).toEqual([
      "app;main;work;hot 74",
      "app_worker;main;work;cold 20",
      "app;main;fib;fib 4",
      "app;main 1",
      "app;main;work;hot;vfs_write_[k] 1",
      "",
    ]);
  });

  it("builds the flame tree with children largest first and values that add up", () => {
    const tree = flameTree(profile);
    expect(tree.value).toBe(100);
    expect(tree.children.map((c) => [c.name, c.value])).toEqual([["app", 80], ["app worker", 20]]);
    const work = tree.children[0]!.children[0]!.children[0]!;
    expect([work.name, work.value, work.children.map((c) => c.name)]).toEqual(["work", 75, ["hot"]]);
  });

  it("draws a flame graph SVG with a titled box per frame, widths by share", () => {
    const svg = flameGraphSvg(profile, { title: "CPU <test>", width: 1010 });
    // hot: 74 samples of its own and 1 in the kernel below it.
    expect(svg).toContain("<title>hot (/srv/app): 75 samples, 75.00%</title>");
    expect(svg).toContain("CPU &lt;test&gt;");
    expect(svg).not.toContain("<script");
    // 990 usable pixels for 100 samples: hot is 75 % of them.
    expect(svg).toMatch(/<title>hot \(\/srv\/app\): 75 samples, 75\.00%<\/title><rect x="[\d.]+" y="\d+" width="742\.5"/);
  });

  it("encodes pprof that decodes to the same samples and stacks (leaf first)", () => {
    const decoded = Profile.decode(gunzipSync(toPprof(profile)));
    const s = decoded.stringTable.strings;
    expect(decoded.sampleType.map((t) => `${s[Number(t.type)]}/${s[Number(t.unit)]}`)).toEqual(["samples/count", "cpu/nanoseconds"]);
    const fnName = (locId: number | bigint) => s[Number(decoded.function[Number(decoded.location[Number(locId) - 1]!.line[0]!.functionId) - 1]!.name)];
    const stacks = decoded.sample.map((x) => [x.locationId.map(fnName).join("<"), Number(x.value[0])]);
    expect(stacks).toContainEqual(["hot<work<main", 74]);
    expect(stacks).toContainEqual(["vfs_write<hot<work<main", 1]);
    expect(decoded.sample.reduce((n, x) => n + Number(x.value[0]), 0)).toBe(100);
    expect(Number(decoded.period)).toBe(Math.round(1e9 / 99));
  });

  it.skipIf(!haveGo())("is read by go tool pprof, with the same top function", () => {
    const dir = mkdtempSync(join(tmpdir(), "coral-pprof-"));
    const file = join(dir, "profile.pb.gz");
    writeFileSync(file, toPprof(profile));
    const out = execFileSync("go", ["tool", "pprof", "-top", "-sample_index=samples", file], { encoding: "utf8", env: { ...process.env, HOME: dir, GOFLAGS: "" } });
    const first = out.split("\n").find((l) => /^\s+\d+\s+[\d.]+%/.test(l));
    expect(first).toMatch(/^\s+74\s+74(\.00)?%.*\bhot$/);
  });

  it("prints the hottest functions as a table with the agent's note", () => {
    const text = formatProfile(create(ProfileCpuResponseSchema, { profile: { ...profile, note: "most stacks are one frame deep" }, serviceName: "api", agentId: "api-1" }), { top: 3, color: false, width: 100 });
    const lines = text.split("\n");
    expect(lines[0]).toBe("CPU profile of api (agent api-1, ebpf): 100 samples at 99 Hz over 5s, 2 processes");
    expect(lines[2]).toMatch(/^SELF\s+TOTAL\s+SAMPLES\s+FUNCTION\s+MODULE$/);
    expect(lines[3]).toMatch(/^74\.0%\s+75\.0%\s+74\s+hot\s+\/srv\/app$/);
    expect(lines[6]).toBe("… 3 more functions (--top 6, or -o profile.svg for the whole picture)");
    expect(text).toContain("Note: most stacks are one frame deep");
  });

  it("gives an assistant the hottest paths, including time spent in a caller itself", () => {
    expect(hottestPaths(flameTree(profile), 4)).toEqual([
      { path: ["app", "main", "work", "hot"], samples: 74 },
      { path: ["app worker", "main", "work", "cold"], samples: 20 },
      { path: ["app", "main", "fib", "fib"], samples: 4 },
      { path: ["app", "main"], samples: 1 },
    ]);
  });

  it("picks what -o writes from the file name, and refuses a name that says nothing", () => {
    expect(outputKind("cpu.pb.gz")).toBe("pprof");
    expect(outputKind("x/CPU.SVG")).toBe("svg");
    expect(outputKind("a.folded")).toBe("folded");
    expect(() => outputKind("profile.png")).toThrow(/\.pb\.gz \(pprof\), \.svg \(flame graph\) or \.folded/);
  });
});

function haveGo(): boolean {
  try {
    execFileSync("go", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}
