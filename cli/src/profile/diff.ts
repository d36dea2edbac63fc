// A differential CPU profile: per function, its share of self time in a
// baseline and now, in percentage points, so "what got hotter" reads off
// directly. Shares, not sample counts: the two windows rarely hold the same
// number of samples (load, minutes with data), and shares compare anyway.
import type { CpuProfile } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { topFunctions, type FlameNode } from "./analyze.ts";

export interface DiffRow {
  function: string;
  module: string;
  kernel: boolean;
  /** Self samples as a percentage of all samples, before (baseline) and after. */
  beforePercent: number;
  afterPercent: number;
  /** afterPercent − beforePercent, in percentage points. */
  delta: number;
}

const share = (n: number, total: number) => (total > 0 ? (100 * n) / total : 0);
const keyOf = (f: { function: string; module: string; kernel: boolean }) => `${f.kernel ? "k" : "u"}|${f.module}|${f.function}`;

/**
 * The `top` functions whose self share moved most (|delta|), hotter ones
 * first (largest rise first), then cooler ones (largest drop first).
 */
export function diffProfiles(before: CpuProfile, after: CpuProfile, top = Infinity): DiffRow[] {
  const rows = new Map<string, DiffRow>();
  const add = (p: CpuProfile, field: "beforePercent" | "afterPercent") => {
    const total = Number(p.totalSamples);
    for (const f of topFunctions(p)) {
      const key = keyOf(f);
      const row = rows.get(key) ?? { function: f.function, module: f.module, kernel: f.kernel, beforePercent: 0, afterPercent: 0, delta: 0 };
      row[field] += share(f.self, total);
      rows.set(key, row);
    }
  };
  add(before, "beforePercent");
  add(after, "afterPercent");
  const all = [...rows.values()].map((r) => ({ ...r, delta: r.afterPercent - r.beforePercent })).filter((r) => r.beforePercent > 0 || r.afterPercent > 0);
  const byMagnitude = all.sort((a, b) => Math.abs(b.delta) - Math.abs(a.delta) || b.afterPercent - a.afterPercent || a.function.localeCompare(b.function)).slice(0, top);
  return [...byMagnitude.filter((r) => r.delta > 0), ...byMagnitude.filter((r) => r.delta <= 0)];
}

/**
 * Each node of `after`'s flame tree, keyed by path, mapped to its share change
 * (percentage points of all samples) against the same path in `before`.
 */
export function flameDeltas(before: FlameNode, after: FlameNode): Map<FlameNode, number> {
  const out = new Map<FlameNode, number>();
  const childKey = (n: FlameNode) => `${n.kernel ? "k" : "u"}|${n.module}|${n.name}`;
  const walk = (a: FlameNode, b: FlameNode | undefined) => {
    out.set(a, share(a.value, after.value) - share(b?.value ?? 0, before.value));
    const byKey = new Map((b?.children ?? []).map((c) => [childKey(c), c]));
    for (const c of a.children) walk(c, byKey.get(childKey(c)));
  };
  walk(after, before);
  return out;
}
