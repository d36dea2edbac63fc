// The flame graph view's logic without a browser: the tree from a profile's
// stacks, zoom layout, search share, the differential numbers and colours
// (as `coral profile cpu --compare` computes them), the top functions, and
// the view's window from its URL.
import { describe, expect, it } from "vitest";
import {
  buildFlameTree,
  chartRangeToProfile,
  diffColour,
  diffFunctions,
  findFrame,
  fitLabel,
  flameDeltas,
  framePath,
  frameColour,
  layoutFlame,
  otherStacksName,
  parseAgo,
  profileHref,
  profileWindow,
  searchFlame,
  topFunctions,
  type FlameTree,
  type ProfileInput,
} from "@coral/dashboard/logic";

/** A profile like QueryCpuProfile answers, from "root;…;leaf" → samples; `other`: samples in no stack. */
function profile(stacks: Record<string, number>, other = 0): ProfileInput {
  const names: string[] = [];
  const id = (fn: string) => (names.includes(fn) ? names.indexOf(fn) : names.push(fn) - 1);
  const entries = Object.entries(stacks).map(([s, n]) => ({ frameIds: s.split(";").map(id), samples: BigInt(n), pid: 0 }));
  const total = Object.values(stacks).reduce((a, b) => a + b, 0) + other;
  return { frames: names.map((fn) => ({ function: fn, module: fn === "tick" ? "[kernel]" : "/srv/app", kernel: fn === "tick" })), stacks: entries, totalSamples: BigInt(total) };
}

const node = (tree: FlameTree, path: string) => {
  const n = findFrame(tree, path);
  if (!n) throw new Error(`no frame ${path}`);
  return n;
};

describe("flame tree", () => {
  const p = profile({ "main;handle;parse": 60, "main;handle;render": 25, "main;handle": 5, "main;gc;tick": 10 });

  it("merges stacks into a tree under the root and the process, with total and self samples, children largest first", () => {
    const tree = buildFlameTree(p, "checkout");
    expect(tree.total).toBe(100);
    expect(tree.maxDepth).toBe(4);
    const root = tree.nodes[0]!;
    expect(root).toMatchObject({ name: "all", kind: "root", value: 100, self: 0, depth: 0 });
    expect(root.children.map((c) => tree.nodes[c]!.name)).toEqual(["checkout"]); // stored stacks have no pid: named after the service
    expect(node(tree, "all;checkout;main")).toMatchObject({ value: 100, self: 0, depth: 2 });
    expect(node(tree, "all;checkout;main;handle")).toMatchObject({ value: 90, self: 5 });
    expect(node(tree, "all;checkout;main;handle;parse")).toMatchObject({ value: 60, self: 60, module: "/srv/app", kernel: false });
    expect(node(tree, "all;checkout;main;gc;tick")).toMatchObject({ value: 10, self: 10, module: "[kernel]", kernel: true });
    expect(node(tree, "all;checkout;main").children.map((c) => tree.nodes[c]!.name)).toEqual(["handle", "gc"]);
    expect(node(tree, "all;checkout;main;handle").children.map((c) => tree.nodes[c]!.name)).toEqual(["parse", "render"]);
    // Every node's value is its self plus its children's.
    for (const n of tree.nodes) expect(n.value).toBe(n.self + n.children.reduce((s, c) => s + tree.nodes[c]!.value, 0));
    expect(framePath(tree, node(tree, "all;checkout;main;handle;render").id)).toBe("all;checkout;main;handle;render");
    expect(findFrame(tree, "all;checkout;nope")).toBeUndefined();
  });

  it("names processes by the profile's own names when it has them, and puts samples of unkept stacks in one node so widths are true shares", () => {
    const withPids: ProfileInput = { ...profile({ "a;b": 3 }), processNames: { 7: "worker" } };
    withPids.stacks.push({ frameIds: [0], samples: 2n, pid: 7 });
    withPids.totalSamples = 5n;
    const t = buildFlameTree(withPids, "svc");
    expect(t.nodes[0]!.children.map((c) => t.nodes[c]!.name)).toEqual(["svc", "worker"]);

    const other = buildFlameTree(profile({ "main;work": 30 }, 10));
    expect(other.total).toBe(40);
    const rest = node(other, `all;${otherStacksName}`);
    expect(rest).toMatchObject({ kind: "other", value: 10, self: 10 });
    expect(buildFlameTree({ frames: [], stacks: [], totalSamples: 0n }).total).toBe(0);
  });
});

describe("zoom layout", () => {
  const tree = buildFlameTree(profile({ "main;handle;parse": 60, "main;handle;render": 20, "main;gc": 20 }), "svc");

  it("draws each frame as wide as its share of the samples, children left to right inside their parent", () => {
    const boxes = layoutFlame(tree, 0, 1000);
    const at = (path: string) => boxes.find((b) => b.id === node(tree, path).id)!;
    expect(at("all")).toMatchObject({ x: 0, w: 1000, depth: 0, ancestor: false });
    expect(at("all;svc;main;handle")).toMatchObject({ x: 0, w: 800 });
    expect(at("all;svc;main;handle;parse")).toMatchObject({ x: 0, w: 600 });
    expect(at("all;svc;main;handle;render")).toMatchObject({ x: 600, w: 200 });
    expect(at("all;svc;main;gc")).toMatchObject({ x: 800, w: 200, depth: 3 });
    expect(boxes).toHaveLength(tree.nodes.length);
  });

  it("zooms a frame to the full width: ancestors full width, siblings left out, descendants scaled; tiny frames left out", () => {
    const handle = node(tree, "all;svc;main;handle");
    const boxes = layoutFlame(tree, handle.id, 1000);
    const byName = Object.fromEntries(boxes.map((b) => [tree.nodes[b.id]!.name, b]));
    expect(Object.keys(byName).sort()).toEqual(["all", "handle", "main", "parse", "render", "svc"]);
    expect(byName.all).toMatchObject({ x: 0, w: 1000, ancestor: true });
    expect(byName.main).toMatchObject({ x: 0, w: 1000, ancestor: true });
    expect(byName.handle).toMatchObject({ x: 0, w: 1000, ancestor: false });
    expect(byName.parse).toMatchObject({ x: 0, w: 750 });
    expect(byName.render).toMatchObject({ x: 750, w: 250 });
    // At 2 px per 100 samples, a 20-sample frame (0.4 px) is below the 0.5 px cut.
    expect(layoutFlame(tree, 0, 2).map((b) => tree.nodes[b.id]!.name)).not.toContain("gc");
    expect(layoutFlame(buildFlameTree({ frames: [], stacks: [], totalSamples: 0n }), 0, 100)).toEqual([]);
  });
});

describe("search", () => {
  const tree = buildFlameTree(profile({ "main;handle;parse": 50, "main;parse_header": 10, "main;handle;render": 30, "main;gc": 10 }), "svc");

  it("matches function names case-insensitively and counts each sample once, of all and of the zoomed frame", () => {
    const r = searchFlame(tree, "PARSE");
    expect([...r.matches].map((id) => tree.nodes[id]!.name).sort()).toEqual(["parse", "parse_header"]);
    expect(r.samples).toBe(60);
    expect(r.percent).toBeCloseTo(60);
    // Nested matches count once: "a" matches main, handle, parse, parse_header: all 100 samples, not more.
    const nested = searchFlame(tree, "a");
    expect(nested.samples).toBe(100);
    expect(nested.percent).toBeCloseTo(100);
    const inHandle = searchFlame(tree, "parse", node(tree, "all;svc;main;handle").id);
    expect(inHandle.samples).toBe(60);
    expect(inHandle.focusSamples).toBe(50);
    expect(inHandle.focusPercent).toBeCloseTo(62.5);
    // Zoomed into a matching frame: all of it matched.
    expect(searchFlame(tree, "handle", node(tree, "all;svc;main;handle;render").id).focusPercent).toBe(100);
    // Modules match too; the root never does; empty and unknown queries match nothing.
    expect(searchFlame(tree, "/srv/app").samples).toBe(100);
    expect(searchFlame(tree, "all").matches.size).toBe(0);
    expect(searchFlame(tree, "  ")).toMatchObject({ samples: 0, percent: 0 });
    expect(searchFlame(tree, "nothing-like-it")).toMatchObject({ samples: 0, percent: 0 });
  });
});

describe("differential", () => {
  const before = profile({ "main;handle;parse": 20, "main;handle;render": 60, "main;gc": 20 });
  const after = profile({ "main;handle;parse": 120, "main;handle;render": 60, "main;gc": 10, "main;new": 10 });

  it("gives each frame its change in share of all samples against the same path in the baseline, in points", () => {
    const a = buildFlameTree(after, "svc");
    const d = flameDeltas(buildFlameTree(before, "svc"), a);
    const delta = (path: string) => d[node(a, path).id]!;
    expect(delta("all")).toBeCloseTo(0);
    expect(delta("all;svc;main")).toBeCloseTo(0);
    expect(delta("all;svc;main;handle;parse")).toBeCloseTo(60 - 20); // 120/200 vs 20/100
    expect(delta("all;svc;main;handle;render")).toBeCloseTo(30 - 60);
    expect(delta("all;svc;main;handle")).toBeCloseTo(90 - 80);
    expect(delta("all;svc;main;gc")).toBeCloseTo(5 - 20);
    expect(delta("all;svc;main;new")).toBeCloseTo(5); // new: all of its share is a rise
  });

  it("colours hotter red and colder blue, deeper the larger the change against the largest, near white when unchanged", () => {
    expect(diffColour(40, 40)).toBe("rgb(255,60,60)");
    expect(diffColour(-40, 40)).toBe("rgb(60,60,255)");
    expect(diffColour(20, 40)).toBe("rgb(255,148,148)");
    expect(diffColour(-10, 40)).toBe("rgb(191,191,255)");
    expect(diffColour(0.001, 40)).toBe("rgb(235,235,235)");
    expect(diffColour(5, 0)).toBe("rgb(255,235,235)");
    // Normal colours: stable per name, kernel orange-ish, structure grey.
    const f = { name: "parse", kernel: false, kind: "frame" as const };
    expect(frameColour(f)).toBe(frameColour({ ...f }));
    expect(frameColour({ name: "all", kernel: false, kind: "root" })).toBe("rgb(200,200,200)");
    expect(frameColour({ name: "tick", kernel: true, kind: "frame" })).toMatch(/^rgb\(230,/);
  });

  it("lists functions by how much their self share moved, hotter first, then colder", () => {
    const rows = diffFunctions(before, after);
    expect(rows.map((r) => [r.function, Math.round(r.beforePercent), Math.round(r.selfPercent), Math.round(r.delta)])).toEqual([
      ["parse", 20, 60, 40],
      ["new", 0, 5, 5],
      ["render", 60, 30, -30],
      ["gc", 20, 5, -15],
    ]);
  });
});

describe("top functions", () => {
  it("gives self and total samples (recursion counted once) as shares of all samples, unkept stacks included in the total", () => {
    const rows = topFunctions(profile({ "main;walk;walk;leaf": 30, "main;walk": 10, "main": 10 }, 50));
    expect(rows.map((r) => [r.function, r.self, r.total, r.selfPercent, r.totalPercent])).toEqual([
      ["leaf", 30, 30, 30, 30],
      ["main", 10, 50, 10, 50],
      ["walk", 10, 40, 10, 40],
    ]);
  });
});

describe("the view's window and links", () => {
  const now = Date.UTC(2026, 11, 5, 12, 0, 0);
  const q = (s: string) => new URLSearchParams(s);

  it("reads a window back from now (default 1h), a fixed from/to, and a compare offset", () => {
    expect(parseAgo("15m")).toBe(900_000);
    expect(parseAgo("7d")).toBe(7 * 86_400_000);
    expect(parseAgo("0m")).toBeUndefined();
    expect(parseAgo("1w")).toBeUndefined();
    expect(profileWindow(q(""), now)).toEqual({ from: now - 3_600_000, until: now, window: "1h" });
    expect(profileWindow(q("window=15m&compare=24h"), now)).toEqual({ from: now - 900_000, until: now, window: "15m", compare: "24h", baseline: { from: now - 900_000 - 86_400_000, until: now - 86_400_000 } });
    const fixed = profileWindow(q("from=2026-12-05T10:00:00.000Z&to=2026-12-05T10:30:00.000Z&compare=1h"), now);
    expect(fixed).toMatchObject({ from: Date.UTC(2026, 11, 5, 10), until: Date.UTC(2026, 11, 5, 10, 30), baseline: { from: Date.UTC(2026, 11, 5, 9), until: Date.UTC(2026, 11, 5, 9, 30) } });
    expect(fixed.window).toBeUndefined();
    expect(profileWindow(q(`from=${now - 60_000}`), now)).toMatchObject({ from: now - 60_000, until: now });
  });

  it("says what is wrong with a bad URL and falls back to the last hour", () => {
    expect(profileWindow(q("window=forever"), now)).toMatchObject({ from: now - 3_600_000, error: expect.stringMatching(/window: "forever"/) });
    expect(profileWindow(q("window=40d"), now).error).toMatch(/at most 31 days/);
    expect(profileWindow(q("from=2026-12-05T11:00:00Z&to=2026-12-05T10:00:00Z"), now)).toMatchObject({ from: now - 3_600_000, error: "from must be before to" });
    expect(profileWindow(q("from=yesterday"), now).error).toMatch(/not a time/);
    expect(profileWindow(q("compare=soon"), now)).toMatchObject({ error: expect.stringMatching(/compare: "soon"/) });
  });

  it("makes shareable links, and a chart's range (seconds) into whole minutes", () => {
    expect(profileHref("check out", { window: "1h" }, "24h")).toBe("/components/check%20out/profile?window=1h&compare=24h");
    expect(profileHref("api", { from: Date.UTC(2026, 11, 5, 10), to: Date.UTC(2026, 11, 5, 10, 5) })).toBe("/components/api/profile?from=2026-12-05T10%3A00%3A00.000Z&to=2026-12-05T10%3A05%3A00.000Z");
    const t = Date.UTC(2026, 11, 5, 10) / 1000;
    expect(chartRangeToProfile(t + 20, t + 130)).toEqual({ from: t * 1000, to: (t + 180) * 1000 });
    expect(chartRangeToProfile(t, t)).toEqual({ from: t * 1000, to: (t + 60) * 1000 });
    // A link's window reads back as the same range.
    const href = profileHref("api", chartRangeToProfile(t + 20, t + 130), "1h");
    expect(profileWindow(new URL(href, "http://x").searchParams, now)).toMatchObject({ from: t * 1000, until: (t + 180) * 1000, compare: "1h" });
  });

  it("fits labels to their box", () => {
    expect(fitLabel("handle_request", 200)).toBe("handle_request");
    expect(fitLabel("handle_request", 60)).toBe("handle_…");
    expect(fitLabel("handle_request", 10)).toBe("");
  });
});
