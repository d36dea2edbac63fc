// The differential profile on two known profiles: shares, deltas in
// percentage points, the order (hotter first), the differential flame graph's
// colours and the stored-profile and diff tables.
import { create } from "@bufbuild/protobuf";
import { CpuProfileSchema } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { QueryCpuProfileResponseSchema } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { describe, expect, it } from "vitest";
import { storedWindows } from "../commands/profile-stored.ts";
import { flameTree } from "./analyze.ts";
import { diffProfiles, flameDeltas } from "./diff.ts";
import { flameGraphSvg } from "./flamegraph.ts";
import { formatProfileDiff, formatStoredProfile, formatWindow } from "./format.ts";

const frames = ["main", "work", "hot", "cold", "gc"].map((fn) => ({ function: fn, module: "/srv/app" }));
const profileOf = (stacks: [number[], number][], total: number) =>
  create(CpuProfileSchema, { frames, stacks: stacks.map(([frameIds, n]) => ({ frameIds, samples: BigInt(n), pid: 0 })), totalSamples: BigInt(total), hz: 19, durationMs: 60_000, method: "continuous", processNames: { 0: "api" } });

// Before: hot 50 %, cold 40 %, main 10 % of 100 samples. After (200 samples): hot 70 %, cold 20 %, gc 8 %, main 2 %.
const before = profileOf([[[0, 1, 2], 50], [[0, 1, 3], 40], [[0], 10]], 100);
const after = profileOf([[[0, 1, 2], 140], [[0, 1, 3], 40], [[0, 4], 16], [[0], 4]], 200);

describe("differential CPU profile", () => {
  it("compares self shares in percentage points, hotter first, and keeps the top by |delta|", () => {
    const row = (fn: string, b: number, a: number) => ({ function: fn, module: "/srv/app", kernel: false, beforePercent: b, afterPercent: a, delta: a - b });
    // work never runs itself: no row.
    expect(diffProfiles(before, after)).toEqual([row("hot", 50, 70), row("gc", 0, 8), row("cold", 40, 20), row("main", 10, 2)]);
    // Top 3 by |delta| (hot and cold 20, then gc before main: the larger share now), then hotter first.
    expect(diffProfiles(before, after, 3).map((r) => [r.function, r.delta])).toEqual([["hot", 20], ["gc", 8], ["cold", -20]]);
    expect(diffProfiles(after, after)).toEqual([row("hot", 70, 70), row("cold", 20, 20), row("gc", 8, 8), row("main", 2, 2)].map((r) => ({ ...r, delta: 0 })));
  });

  it("gives every node of the after tree its share change along the same path", () => {
    const tree = flameTree(after);
    const deltas = flameDeltas(flameTree(before), tree);
    const byPath = new Map<string, number>();
    const walk = (n: typeof tree, path: string) => {
      byPath.set(path, deltas.get(n)!);
      n.children.forEach((c) => walk(c, `${path};${c.name}`));
    };
    walk(tree, "all");
    expect(Object.fromEntries(byPath)).toEqual({ all: 0, "all;api": 0, "all;api;main": 0, "all;api;main;work": 0, "all;api;main;work;hot": 20, "all;api;main;work;cold": -20, "all;api;main;gc": 8 });
  });

  it("draws the after profile's shape, red where a share grew and blue where it shrank", () => {
    const svg = flameGraphSvg(after, { baseline: before, width: 1010 });
    const fill = (fn: string) => new RegExp(`<title>${fn} \\(/srv/app\\): [^<]*</title><rect [^>]* fill="([^"]+)"`).exec(svg)?.[1];
    expect(svg).toContain("<title>hot (/srv/app): 140 samples, 70.00% (+20.00 points)</title>");
    expect(fill("hot")).toBe("rgb(255,60,60)");
    expect(fill("cold")).toBe("rgb(60,60,255)");
    expect(fill("gc")).toBe("rgb(255,165,165)");
    expect(fill("work")).toBe("rgb(235,235,235)");
    expect(svg).toContain("red: a larger share than in the baseline (100 samples), blue: smaller");
    // Without a baseline the graph is the normal one.
    expect(flameGraphSvg(after)).not.toMatch(/points\)|rgb\(60,60,255\)/);
  });

  it("prints a stored profile with the always-on rate, minutes and window, and the diff table", () => {
    const from = new Date("2026-12-05T12:00:00Z");
    const until = new Date("2026-12-05T13:00:00Z");
    const res = create(QueryCpuProfileResponseSchema, {
      profile: { ...after, note: "60 minutes of the always-on profiler at 19 Hz; 3 samples in stacks beyond the top kept per minute" },
      baseline: { ...before, note: "1 minute of the always-on profiler at 19 Hz" },
      serviceName: "api",
      minutes: 60,
      baselineMinutes: 1,
    });
    expect(formatWindow(from, until, new Date("2026-12-05T13:00:05Z"))).toBe("12:00–13:00 UTC");
    expect(formatWindow(new Date("2026-12-04T12:00:00Z"), until, until)).toBe("2026-12-04 12:00–2026-12-05 13:00 UTC");
    const text = formatStoredProfile(res, { from, until }, { top: 2, color: false, width: 100 }).split("\n");
    expect(text[0]).toMatch(/^CPU profile of api \(always-on, 19 Hz\): 200 samples over 60 minutes \((2026-12-05 )?12:00–13:00 UTC\)$/);
    expect(text[3]).toMatch(/^70\.0%\s+70\.0%\s+140\s+hot\s+\/srv\/app$/);
    expect(text[4]).toMatch(/^20\.0%\s+20\.0%\s+40\s+cold\s+\/srv\/app$/);
    expect(text.at(-1)).toBe("Note: 3 samples in stacks beyond the top kept per minute");

    const rows = diffProfiles(res.baseline!, res.profile!, 3);
    const diff = formatProfileDiff(res, { window: { from, until }, baseline: { from: new Date(from.getTime() - 86_400_000), until: new Date(until.getTime() - 86_400_000) } }, rows, { top: 3, color: false, more: 1 }).split("\n");
    expect(diff[1]).toMatch(/^ {2}compared with 100 samples over 1 minute \(2026-12-04 12:00–13:00 UTC\)$/);
    expect(diff[3]).toMatch(/^BEFORE\s+AFTER\s+DELTA\s+FUNCTION\s+MODULE$/);
    expect(diff.slice(4, 7).map((l) => l.split(/\s{2,}/).slice(0, 4))).toEqual([
      ["50.0%", "70.0%", "+20.0", "hot"],
      ["0.0%", "8.0%", "+8.0", "gc"],
      ["40.0%", "20.0%", "−20.0", "cold"],
    ]);
    expect(diff[7]).toBe("… 1 more functions changed (--top 6); DELTA is in percentage points of self time");
  });

  it("turns --since, --until and --compare into windows, and refuses --until past --since", () => {
    const now = Date.parse("2026-12-05T13:00:00Z");
    const { window, baseline } = storedWindows({ since: 3_600_000, until: 600_000, compare: 86_400_000 }, now);
    expect([window.from, window.until, baseline!.from, baseline!.until].map((d) => d.toISOString())).toEqual(["2026-12-05T12:00:00.000Z", "2026-12-05T12:50:00.000Z", "2026-12-04T12:00:00.000Z", "2026-12-04T12:50:00.000Z"]);
    expect(storedWindows({ since: 60_000 }, now).baseline).toBeUndefined();
    expect(() => storedWindows({ since: 60_000, until: 60_000 }, now)).toThrow(/--until 1m must be less than --since 1m/);
  });
});
