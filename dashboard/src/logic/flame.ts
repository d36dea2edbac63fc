// The flame graph view's logic, without the DOM: a CPU profile (as
// ProfileService.QueryCpuProfile answers it) as a tree of frames, the boxes to
// draw for a zoomed frame, search matches and their share, the differential
// colours against a baseline (the same numbers as the CLI's
// `coral profile cpu --compare`: per frame, its share of all samples now minus
// its share at the same path in the baseline, in percentage points), the top
// functions table, and the view's window from its URL.

/** The fields of coral.agent.v1.CpuProfile this view reads. */
export interface ProfileInput {
  frames: { function: string; module: string; kernel: boolean }[];
  stacks: { frameIds: number[]; samples: bigint | number; pid: number }[];
  /** All samples, including stacks beyond the top the agent keeps per minute (they have no frames). */
  totalSamples: bigint | number;
  processNames?: { [pid: number]: string };
}

export interface FlameNode {
  /** Index in FlameTree.nodes; the root is 0. */
  id: number;
  /** Index of the parent, -1 for the root. */
  parent: number;
  depth: number;
  name: string;
  module: string;
  kernel: boolean;
  /** What the node is: the root ("all"), a process, a function, or the samples whose stacks were not kept. */
  kind: "root" | "process" | "frame" | "other";
  /** Samples in this frame and below it. */
  value: number;
  /** Samples where this frame was the leaf (running itself). */
  self: number;
  /** Children ids, most samples first. */
  children: number[];
}

export interface FlameTree {
  nodes: FlameNode[];
  /** All samples (the root's value). */
  total: number;
  maxDepth: number;
}

/** The node of the samples that have no stored stack (the agent keeps the top stacks per minute). */
export const otherStacksName = "(stacks beyond the top kept)";

const frameKey = (n: { kernel: boolean; module: string; name: string }) => `${n.kernel ? "k" : "u"}|${n.module}|${n.name}`;

/**
 * Builds the tree: the root ("all"), then each process (`processName` names
 * processes the profile does not: stored profiles carry no pids), then the
 * stack frames root first. Samples counted in the total but in no stack go to
 * one "other" node under the root, so every width is a true share.
 */
export function buildFlameTree(profile: ProfileInput, processName?: string): FlameTree {
  const nodes: FlameNode[] = [{ id: 0, parent: -1, depth: 0, name: "all", module: "", kernel: false, kind: "root", value: 0, self: 0, children: [] }];
  const index = new Map<number, Map<string, number>>();
  const child = (parent: FlameNode, name: string, module: string, kernel: boolean, kind: FlameNode["kind"]): FlameNode => {
    let map = index.get(parent.id);
    if (!map) index.set(parent.id, (map = new Map()));
    const key = `${kind}|${frameKey({ kernel, module, name })}`;
    const id = map.get(key);
    if (id !== undefined) return nodes[id]!;
    const node: FlameNode = { id: nodes.length, parent: parent.id, depth: parent.depth + 1, name, module, kernel, kind, value: 0, self: 0, children: [] };
    nodes.push(node);
    map.set(key, node.id);
    parent.children.push(node.id);
    return node;
  };
  const root = nodes[0]!;
  let inStacks = 0;
  for (const stack of profile.stacks) {
    const n = Number(stack.samples);
    if (!(n > 0)) continue;
    inStacks += n;
    root.value += n;
    let node = child(root, profile.processNames?.[stack.pid] ?? processName ?? `pid ${stack.pid}`, "", false, "process");
    node.value += n;
    for (const id of stack.frameIds) {
      const f = profile.frames[id];
      node = child(node, f?.function ?? `frame ${id}`, f?.module ?? "", f?.kernel ?? false, "frame");
      node.value += n;
    }
    node.self += n;
  }
  const other = Number(profile.totalSamples) - inStacks;
  if (other > 0) {
    const node = child(root, otherStacksName, "", false, "other");
    node.value = node.self = other;
    root.value += other;
  }
  let maxDepth = 0;
  for (const node of nodes) {
    maxDepth = Math.max(maxDepth, node.depth);
    node.children.sort((a, b) => nodes[b]!.value - nodes[a]!.value || nodes[a]!.name.localeCompare(nodes[b]!.name));
  }
  return { nodes, total: root.value, maxDepth };
}

/** The ids from the root down to `id` (both included). */
export function ancestry(tree: FlameTree, id: number): number[] {
  const path: number[] = [];
  for (let n = tree.nodes[id]; n; n = tree.nodes[n.parent]) path.unshift(n.id);
  return path;
}

/** A node's frames from the root, "all;process;main;handle", for links and tests. */
export function framePath(tree: FlameTree, id: number): string {
  return ancestry(tree, id)
    .map((i) => tree.nodes[i]!.name)
    .join(";");
}

/** The node at a path of names from the root ("all;checkout;main"), if any. */
export function findFrame(tree: FlameTree, path: string): FlameNode | undefined {
  const names = path.split(";");
  let node = tree.nodes[0];
  if (!node || names[0] !== node.name) return undefined;
  for (const name of names.slice(1)) {
    const next: FlameNode | undefined = node.children.map((c) => tree.nodes[c]!).find((c) => c.name === name);
    if (!next) return undefined;
    node = next;
  }
  return node;
}

export interface FlameBox {
  id: number;
  depth: number;
  /** Left edge and width in pixels. */
  x: number;
  w: number;
  /** An ancestor of the zoomed frame (drawn full width, dimmed). */
  ancestor: boolean;
}

/**
 * The boxes to draw with frame `focus` zoomed to the full `width`: its
 * ancestors full width too, its descendants as wide as their share of it,
 * everything else left out; boxes narrower than `minWidth` are left out with
 * their subtrees (as flamegraph.pl does).
 */
export function layoutFlame(tree: FlameTree, focus: number, width: number, minWidth = 0.5): FlameBox[] {
  const start = tree.nodes[focus] ?? tree.nodes[0];
  if (!start || start.value <= 0) return [];
  const boxes: FlameBox[] = ancestry(tree, start.id)
    .slice(0, -1)
    .map((id) => ({ id, depth: tree.nodes[id]!.depth, x: 0, w: width, ancestor: true }));
  const perSample = width / start.value;
  const walk = (node: FlameNode, x: number) => {
    const w = node.value * perSample;
    if (w < minWidth) return;
    boxes.push({ id: node.id, depth: node.depth, x, w, ancestor: false });
    let cx = x;
    for (const c of node.children) {
      const child = tree.nodes[c]!;
      walk(child, cx);
      cx += child.value * perSample;
    }
  };
  walk(start, 0);
  return boxes;
}

export interface SearchResult {
  /** Ids of the frames whose function (or module) contains the query. */
  matches: Set<number>;
  /** Samples with a matching frame anywhere on the stack (counted once even when several match). */
  samples: number;
  /** Those samples as a share of all samples, and of the zoomed frame's. */
  percent: number;
  focusSamples: number;
  focusPercent: number;
}

/** Frames matching `query` (case-insensitive substring of the function or module; empty: none) and the share of samples they are on. */
export function searchFlame(tree: FlameTree, query: string, focus = 0): SearchResult {
  const q = query.trim().toLowerCase();
  const matches = new Set<number>();
  if (q)
    for (const n of tree.nodes) if (n.kind !== "root" && (n.name.toLowerCase().includes(q) || n.module.toLowerCase().includes(q))) matches.add(n.id);
  // Samples under a match whose ancestors do not match: each sample once.
  const covered = (from: number): number => {
    const node = tree.nodes[from];
    if (!node) return 0;
    if (matches.has(node.id)) return node.value;
    return node.children.reduce((sum, c) => sum + covered(c), 0);
  };
  const samples = matches.size ? covered(0) : 0;
  const focusNode = tree.nodes[focus] ?? tree.nodes[0]!;
  const focusMatched = ancestry(tree, focusNode.id).some((id) => matches.has(id));
  const focusSamples = !matches.size ? 0 : focusMatched ? focusNode.value : covered(focusNode.id);
  return { matches, samples, percent: share(samples, tree.total), focusSamples, focusPercent: share(focusSamples, focusNode.value) };
}

export const share = (n: number, total: number) => (total > 0 ? (100 * n) / total : 0);

/**
 * Each node of `after` mapped to its change in share of all samples
 * (percentage points) against the node at the same path in `before` (0 there
 * when the path is new): cli/src/profile/diff.ts's flameDeltas.
 */
export function flameDeltas(before: FlameTree, after: FlameTree): number[] {
  const out = new Array<number>(after.nodes.length).fill(0);
  const childrenByKey = (t: FlameTree, n: FlameNode | undefined) => new Map((n?.children ?? []).map((c) => [`${t.nodes[c]!.kind}|${frameKey(t.nodes[c]!)}`, t.nodes[c]!]));
  const walk = (a: FlameNode, b: FlameNode | undefined) => {
    out[a.id] = share(a.value, after.total) - share(b?.value ?? 0, before.total);
    const byKey = childrenByKey(before, b);
    for (const c of a.children) {
      const child = after.nodes[c]!;
      walk(child, byKey.get(`${child.kind}|${frameKey(child)}`));
    }
  };
  if (after.nodes[0]) walk(after.nodes[0], before.nodes[0]);
  return out;
}

/** Red (grew) or blue (shrank), deeper the larger the change against the largest one; near white when unchanged (the CLI's colours). */
export function diffColour(delta: number, maxAbs: number): string {
  if (Math.abs(delta) < 0.005) return "rgb(235,235,235)";
  const k = maxAbs > 0 ? Math.min(1, Math.abs(delta) / maxAbs) : 0;
  const fade = Math.round(235 - 175 * k);
  return delta > 0 ? `rgb(255,${fade},${fade})` : `rgb(${fade},${fade},255)`;
}

/** A stable warm colour per function name; kernel frames orange; the root, processes and "other" grey (the CLI's flame graph colours). */
export function frameColour(node: Pick<FlameNode, "name" | "kernel" | "kind">): string {
  if (node.kind !== "frame") return "rgb(200,200,200)";
  let h = 0;
  for (const c of node.name) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  if (node.kernel) return `rgb(230,${120 + (h % 60)},${40 + (h % 30)})`;
  return `rgb(${205 + (h % 50)},${70 + ((h >>> 8) % 130)},${40 + ((h >>> 16) % 40)})`;
}

/** The colour of search matches. */
export const matchColour = "rgb(200,90,230)";

/** `text` cut to fit `widthPx` at `charPx` per character, with an ellipsis; "" when not even two characters fit. */
export function fitLabel(text: string, widthPx: number, charPx = 6.6): string {
  const chars = Math.floor((widthPx - 6) / charPx);
  if (chars < 2) return "";
  return text.length <= chars ? text : `${text.slice(0, chars - 1)}…`;
}

export interface FunctionRow {
  function: string;
  module: string;
  kernel: boolean;
  /** Samples where it was the leaf, and where it was on the stack (once per sample even when it recurses). */
  self: number;
  total: number;
  selfPercent: number;
  totalPercent: number;
}

/** Per function, self and total samples and their share of all samples; by self, then total. */
export function topFunctions(profile: ProfileInput): FunctionRow[] {
  const all = Number(profile.totalSamples);
  const byKey = new Map<string, FunctionRow>();
  const keyOf = (id: number) => {
    const f = profile.frames[id];
    return f ? frameKey({ kernel: f.kernel, module: f.module, name: f.function }) : `?|${id}`;
  };
  const entry = (id: number, key: string) => {
    let e = byKey.get(key);
    if (!e) {
      const f = profile.frames[id];
      e = { function: f?.function ?? `frame ${id}`, module: f?.module ?? "", kernel: f?.kernel ?? false, self: 0, total: 0, selfPercent: 0, totalPercent: 0 };
      byKey.set(key, e);
    }
    return e;
  };
  for (const stack of profile.stacks) {
    const n = Number(stack.samples);
    if (stack.frameIds.length === 0 || !(n > 0)) continue;
    const leaf = stack.frameIds[stack.frameIds.length - 1]!;
    entry(leaf, keyOf(leaf)).self += n;
    const seen = new Set<string>();
    for (const id of stack.frameIds) {
      const key = keyOf(id);
      if (seen.has(key)) continue;
      seen.add(key);
      entry(id, key).total += n;
    }
  }
  const total = Math.max(all, 0);
  return [...byKey.values()]
    .map((r) => ({ ...r, selfPercent: share(r.self, total), totalPercent: share(r.total, total) }))
    .sort((a, b) => b.self - a.self || b.total - a.total || a.function.localeCompare(b.function));
}

export interface DiffRow extends FunctionRow {
  /** Self share in the baseline, and the change (percentage points) since. */
  beforePercent: number;
  delta: number;
}

/** The functions of both windows with their self share now and before: hotter ones first (largest rise first), then cooler (largest drop first); as `coral profile cpu --compare`. */
export function diffFunctions(before: ProfileInput, after: ProfileInput): DiffRow[] {
  const key = (r: { kernel: boolean; module: string; function: string }) => frameKey({ kernel: r.kernel, module: r.module, name: r.function });
  const rows = new Map<string, DiffRow>();
  for (const r of topFunctions(after)) rows.set(key(r), { ...r, beforePercent: 0, delta: 0 });
  for (const r of topFunctions(before)) {
    const row = rows.get(key(r)) ?? { ...r, self: 0, total: 0, selfPercent: 0, totalPercent: 0, beforePercent: 0, delta: 0 };
    row.beforePercent = r.selfPercent;
    rows.set(key(r), row);
  }
  // Functions with no self samples in either window moved nothing: left out, as in the CLI.
  const all = [...rows.values()].map((r) => ({ ...r, delta: r.selfPercent - r.beforePercent })).filter((r) => r.beforePercent > 0 || r.selfPercent > 0);
  const byMagnitude = all.sort((a, b) => Math.abs(b.delta) - Math.abs(a.delta) || b.selfPercent - a.selfPercent || a.function.localeCompare(b.function));
  return [...byMagnitude.filter((r) => r.delta > 0), ...byMagnitude.filter((r) => r.delta <= 0)];
}

// --- the view's window, from and to its URL ---

const units: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "90s", "15m", "1h", "7d" → milliseconds; undefined when malformed. */
export function parseAgo(text: string | null | undefined): number | undefined {
  const m = /^(\d+)(s|m|h|d)$/.exec((text ?? "").trim());
  if (!m) return undefined;
  const ms = Number(m[1]) * units[m[2]!]!;
  return ms > 0 ? ms : undefined;
}

/** A time in a URL: unix milliseconds or an ISO 8601 string. */
function parseTime(text: string): number | undefined {
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  return Number.isFinite(ms) ? ms : undefined;
}

/** The windows the colony keeps stored profiles for, at most. */
export const maxProfileWindowMs = 31 * 86_400_000;

export const profileWindowPresets = ["15m", "1h", "6h", "24h", "7d"] as const;
export const compareOffsets = ["1h", "24h", "7d"] as const;

export interface ProfileWindow {
  from: number;
  until: number;
  /** The same-length window `compare` earlier, to compare with. */
  baseline?: { from: number; until: number };
  /** The preset of a window relative to now ("1h"), or undefined for fixed from/to. */
  window?: string;
  compare?: string;
  /** What is wrong with the URL's window, for the page to say (the default window is used instead). */
  error?: string;
}

/**
 * The view's window from its query: `from`/`to` (unix ms or ISO, a fixed range,
 * e.g. from a chart's zoom) or `window` (a duration back from now, default 1h),
 * and `compare` (a duration: the baseline is the same window that much earlier).
 */
export function profileWindow(query: URLSearchParams, now = Date.now()): ProfileWindow {
  let out: ProfileWindow;
  const fromText = query.get("from");
  let error: string | undefined;
  if (fromText) {
    const from = parseTime(fromText);
    const until = query.get("to") ? parseTime(query.get("to")!) : now;
    if (from === undefined || until === undefined) error = "from/to: not a time (unix milliseconds or ISO 8601)";
    else if (from >= until) error = "from must be before to";
    else if (until - from > maxProfileWindowMs) error = "the window is at most 31 days";
    out = error ? defaultWindow(now) : { from: from!, until: until! };
  } else {
    const text = query.get("window");
    const ms = text ? parseAgo(text) : parseAgo("1h");
    if (ms === undefined || ms > maxProfileWindowMs) {
      error = `window: "${text}" is not a duration of at most 31 days (like 15m, 1h, 7d)`;
      out = defaultWindow(now);
    } else out = { from: now - ms, until: now, window: text ?? "1h" };
  }
  const compareText = query.get("compare");
  if (compareText) {
    const offset = parseAgo(compareText);
    if (offset === undefined) error ??= `compare: "${compareText}" is not a duration (like 1h, 24h, 7d)`;
    else {
      out.compare = compareText;
      out.baseline = { from: out.from - offset, until: out.until - offset };
    }
  }
  return error ? { ...out, error } : out;
}

function defaultWindow(now: number): ProfileWindow {
  return { from: now - 3_600_000, until: now, window: "1h" };
}

/** The profile view's path for `service`: a fixed range (unix seconds or ms) or a window back from now, optionally compared. */
export function profileHref(service: string, range: { from: number; to: number } | { window: string }, compare?: string): string {
  const q = new URLSearchParams();
  if ("window" in range) q.set("window", range.window);
  else {
    q.set("from", new Date(range.from).toISOString());
    q.set("to", new Date(range.to).toISOString());
  }
  if (compare) q.set("compare", compare);
  return `/components/${encodeURIComponent(service)}/profile?${q.toString()}`;
}

/**
 * The range a chart shows (unix seconds, uPlot's x scale) as a profile range
 * in milliseconds, widened to whole minutes: profiles are stored per minute.
 */
export function chartRangeToProfile(minSeconds: number, maxSeconds: number): { from: number; to: number } {
  const minute = 60_000;
  const from = Math.floor((minSeconds * 1000) / minute) * minute;
  const to = Math.max(from + minute, Math.ceil((maxSeconds * 1000) / minute) * minute);
  return { from, to };
}
