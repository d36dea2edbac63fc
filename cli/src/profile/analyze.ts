// What a CPU profile says, as tables and folded stacks: per function, the
// samples where it was running (self) and where it was on the stack at all
// (total, counted once per sample even when it recurses).
import type { CpuProfile } from "@coral/proto/gen/coral/agent/v1/profile_pb";

export interface FunctionCost {
  function: string;
  module: string;
  kernel: boolean;
  self: number;
  total: number;
}

/** Functions by self samples (then total), most first. */
export function topFunctions(profile: CpuProfile): FunctionCost[] {
  const byKey = new Map<string, FunctionCost>();
  const keyOf = (id: number) => {
    const f = profile.frames[id];
    return f ? `${f.kernel ? "k" : "u"}|${f.module}|${f.function}` : `?|${id}`;
  };
  const entry = (id: number) => {
    const key = keyOf(id);
    let e = byKey.get(key);
    if (!e) {
      const f = profile.frames[id];
      e = { function: f?.function ?? `frame ${id}`, module: f?.module ?? "", kernel: f?.kernel ?? false, self: 0, total: 0 };
      byKey.set(key, e);
    }
    return e;
  };
  for (const stack of profile.stacks) {
    const n = Number(stack.samples);
    if (stack.frameIds.length === 0) continue;
    entry(stack.frameIds[stack.frameIds.length - 1]!).self += n;
    for (const key of new Set(stack.frameIds.map(keyOf))) {
      const id = stack.frameIds.find((i) => keyOf(i) === key)!;
      entry(id).total += n;
    }
  }
  return [...byKey.values()].sort((a, b) => b.self - a.self || b.total - a.total || a.function.localeCompare(b.function));
}

/** A frame as folded stacks write it: kernel frames get Brendan Gregg's `_[k]` suffix; no `;` or newline inside. */
function foldedName(f: { function: string; kernel: boolean }): string {
  const name = f.function.replace(/[;\r\n]/g, "_").replace(/ /g, "_") || "[unknown]";
  return f.kernel ? `${name}_[k]` : name;
}

/**
 * Folded stacks (Brendan Gregg's format, read by flamegraph.pl, Speedscope,
 * inferno): one line per stack, `process;root;…;leaf count`, most samples first.
 */
export function foldedStacks(profile: CpuProfile): string {
  const lines = new Map<string, number>();
  for (const stack of profile.stacks) {
    const process = (profile.processNames[stack.pid] ?? `pid ${stack.pid}`).replace(/[;\s]/g, "_");
    const frames = stack.frameIds.map((id) => foldedName(profile.frames[id] ?? { function: `frame ${id}`, kernel: false }));
    const key = [process, ...frames].join(";");
    lines.set(key, (lines.get(key) ?? 0) + Number(stack.samples));
  }
  return [...lines.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .map(([k, n]) => `${k} ${n}\n`)
    .join("");
}

/** A tree of frames (root → leaves) with sample counts, what flame graphs draw. */
export interface FlameNode {
  name: string;
  module: string;
  kernel: boolean;
  /** Samples in this node and below it. */
  value: number;
  children: FlameNode[];
}

/** Builds the flame tree: one root ("all"), then each process, then the stacks; children largest first. */
export function flameTree(profile: CpuProfile): FlameNode {
  const root: FlameNode = { name: "all", module: "", kernel: false, value: 0, children: [] };
  const index = new WeakMap<FlameNode, Map<string, FlameNode>>();
  const child = (parent: FlameNode, name: string, module: string, kernel: boolean) => {
    let map = index.get(parent);
    if (!map) index.set(parent, (map = new Map()));
    const key = `${kernel ? "k" : "u"}|${module}|${name}`;
    let node = map.get(key);
    if (!node) {
      node = { name, module, kernel, value: 0, children: [] };
      map.set(key, node);
      parent.children.push(node);
    }
    return node;
  };
  for (const stack of profile.stacks) {
    const n = Number(stack.samples);
    root.value += n;
    let node = child(root, profile.processNames[stack.pid] ?? `pid ${stack.pid}`, "", false);
    node.value += n;
    for (const id of stack.frameIds) {
      const f = profile.frames[id];
      node = child(node, f?.function ?? `frame ${id}`, f?.module ?? "", f?.kernel ?? false);
      node.value += n;
    }
  }
  const sort = (n: FlameNode) => {
    n.children.sort((a, b) => b.value - a.value || a.name.localeCompare(b.name));
    n.children.forEach(sort);
  };
  sort(root);
  return root;
}
