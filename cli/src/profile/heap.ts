// What a heap profile says, as the text `coral profile heap` prints: the
// allocation sites (the function that allocated, the leaf of each stack)
// with what they still hold and what they allocated, largest first.
import type { HeapProfile } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import type { ProfileHeapResponse } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { formatBytes } from "../format/status.ts";
import { colors, columns, plural } from "../format/text.ts";

export interface AllocationSite {
  function: string;
  module: string;
  inuseBytes: number;
  inuseObjects: number;
  allocBytes: number;
  allocObjects: number;
}

export type HeapSort = "inuse" | "alloc";

/** Sites by the allocating function (stacks merged), largest first by in-use bytes or allocated bytes. */
export function allocationSites(profile: HeapProfile, sort: HeapSort = "inuse"): AllocationSite[] {
  const sites = new Map<string, AllocationSite>();
  for (const stack of profile.stacks) {
    const leaf = stack.frameIds.length > 0 ? profile.frames[stack.frameIds[stack.frameIds.length - 1]!] : undefined;
    const fn = leaf?.function ?? "[unknown]";
    const module = leaf?.module ?? "";
    const key = `${module}\0${fn}`;
    let site = sites.get(key);
    if (!site) {
      site = { function: fn, module, inuseBytes: 0, inuseObjects: 0, allocBytes: 0, allocObjects: 0 };
      sites.set(key, site);
    }
    site.inuseBytes += Number(stack.inuseBytes);
    site.inuseObjects += Number(stack.inuseObjects);
    site.allocBytes += Number(stack.allocBytes);
    site.allocObjects += Number(stack.allocObjects);
  }
  const primary = sort === "alloc" ? (s: AllocationSite) => s.allocBytes : (s: AllocationSite) => s.inuseBytes;
  const secondary = sort === "alloc" ? (s: AllocationSite) => s.inuseBytes : (s: AllocationSite) => s.allocBytes;
  return [...sites.values()].sort((a, b) => primary(b) - primary(a) || secondary(b) - secondary(a) || a.function.localeCompare(b.function));
}

const percent = (n: number, total: number) => (total > 0 ? `${((100 * n) / total).toFixed(1)}%` : "–");
/** 1234567 → "1.2M": object counts, short. */
const count = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(1)}G` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${(n / 1e3).toFixed(1)}k` : String(n));

export function formatHeapProfile(res: ProfileHeapResponse, options: { top: number; sort: HeapSort; color: boolean; width?: number }): string {
  const c = colors(options.color);
  const p = res.profile!;
  const sites = allocationSites(p, options.sort);
  const inuse = sites.reduce((n, s) => n + s.inuseBytes, 0);
  const alloc = sites.reduce((n, s) => n + s.allocBytes, 0);
  const when = p.durationMs > 0 ? `over ${(p.durationMs / 1000).toFixed(p.durationMs % 1000 ? 1 : 0)}s` : "a snapshot";
  // V8's sampling heap profiler reports what is live only: its allocated columns are not zeros but unknown.
  const allocKnown = alloc > 0 || !/\bv8-inspector\b/.test(p.method);
  const lines = [
    c.bold(`Heap profile of ${res.serviceName}`) +
      c.dim(
        ` (agent ${res.agentId}, ${p.method}): ${formatBytes(inuse)} in use, ${allocKnown ? `${formatBytes(alloc)} allocated` : "allocations not reported"}, ${when}, ${plural(p.pids.length, "process", "processes")}`,
      ),
  ];
  if (sites.length === 0) {
    lines.push("", "No allocation samples.");
  } else {
    const top = sites.slice(0, options.top);
    const width = options.width ?? 120;
    // The module column gets what is left of the terminal; long paths keep their end (the file name).
    const moduleWidth = Math.max(12, width - 80);
    const shorten = (m: string) => (m.length <= moduleWidth ? m : `…${m.slice(m.length - moduleWidth + 1)}`);
    const rows = top.map((s) => [
      percent(s.inuseBytes, inuse),
      formatBytes(s.inuseBytes),
      count(s.inuseObjects),
      allocKnown ? formatBytes(s.allocBytes) : "–",
      allocKnown ? count(s.allocObjects) : "–",
      s.function,
      c.dim(shorten(s.module)),
    ]);
    lines.push("", ...columns(["INUSE%", "INUSE", "OBJECTS", "ALLOC", "ALLOC OBJ", "FUNCTION", "MODULE"], rows));
    if (sites.length > top.length) lines.push(c.dim(`… ${sites.length - top.length} more allocation sites (--top ${Math.min(sites.length, options.top * 2)}, or -o heap.pb.gz for the whole picture)`));
  }
  if (p.note) lines.push("", `${c.yellow("Note:")} ${p.note}`);
  return lines.join("\n");
}
