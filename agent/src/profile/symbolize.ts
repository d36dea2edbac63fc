// Turns bpftrace's raw stacks (addresses, leaf first) into the profile's
// frame table and stacks (root first): user frames by the processes'
// mappings and the mapped files' function tables, kernel frames by the
// names bpftrace gave them. A sample in the kernel has its user stack as
// callers: root … user frames … kernel frames … leaf. Where a file carries
// DWARF, the functions inlined at an address become frames of their own
// (inline.ts).
import type { RawStack } from "./dump.ts";
import { isFileMapping, isVdso, type Mapping, type MappingHistory } from "./maps.ts";
import { fileOffsetOf, fileOffsetToVaddr, type ModuleSymbols, type SymbolCache } from "./symbols.ts";

export interface ProfileFrameData {
  /** Symbolized name, or "0x<address>" (the ELF's own address when the file is known, else the runtime one). */
  function: string;
  /** The file's path, "[kernel]", "[vdso]", "[anonymous]" or "[unknown]" (no mapping held the address). */
  module: string;
  kernel: boolean;
}

export interface ProfileStackData {
  /** Indexes into the frame table, root first. */
  frameIds: number[];
  samples: number;
  pid: number;
}

export interface SymbolizedStacks {
  frames: ProfileFrameData[];
  stacks: ProfileStackData[];
  /** Samples with at least one user frame. */
  userSamples: number;
  /** Of those, samples whose user stack was a single frame, by the module of that frame. */
  shallowSamples: Map<string, number>;
  /** Modules whose symbols could not be read, with the reason. */
  unreadable: Map<string, string>;
}

const hex = (a: bigint) => `0x${a.toString(16)}`;

export async function symbolizeStacks(raw: readonly RawStack[], mappings: MappingHistory, cache: SymbolCache): Promise<SymbolizedStacks> {
  // Load every file the stacks touch once, in parallel.
  const modules = new Map<string, Promise<ModuleSymbols>>();
  const symbolsKey = (pid: number, m: Mapping) => `${pid}:${m.start}:${m.inode}`;
  for (const s of raw)
    s.user.forEach((address, i) => {
      const m = mappings.find(s.pid, lookupAddress(address, i));
      if (m && (isFileMapping(m) || isVdso(m)) && !modules.has(symbolsKey(s.pid, m))) modules.set(symbolsKey(s.pid, m), cache.forMapping(s.pid, m));
    });
  const loaded = new Map<string, ModuleSymbols>();
  await Promise.all([...modules].map(async ([k, p]) => loaded.set(k, await p)));

  // Files with DWARF: the functions inlined at each address, from addr2line, one run per file.
  const wanted = new Map<string, Set<bigint>>();
  const dwarfVaddr = (pid: number, address: bigint, i: number): { path: string; vaddr: bigint } | undefined => {
    const at = lookupAddress(address, i);
    const m = mappings.find(pid, at);
    const mod = m && loaded.get(symbolsKey(pid, m));
    if (!m || !mod?.dwarfPath || mod.segments.length === 0) return undefined;
    return { path: mod.dwarfPath, vaddr: fileOffsetToVaddr(mod.segments, fileOffsetOf(m, at)) };
  };
  for (const s of raw)
    s.user.forEach((address, i) => {
      const d = dwarfVaddr(s.pid, address, i);
      if (d) wanted.set(d.path, (wanted.get(d.path) ?? new Set()).add(d.vaddr));
    });
  const inlined = new Map<string, Map<bigint, string[]>>();
  await Promise.all([...wanted].map(async ([path, vaddrs]) => inlined.set(path, await cache.inline.resolve(path, [...vaddrs]))));
  /** Frames inlined at a user address, innermost first. */
  const inlinedAt = (pid: number, address: bigint, i: number): string[] => {
    const d = dwarfVaddr(pid, address, i);
    return d ? (inlined.get(d.path)?.get(d.vaddr) ?? []) : [];
  };

  const frames: ProfileFrameData[] = [];
  const frameIds = new Map<string, number>();
  const frameId = (f: ProfileFrameData): number => {
    const key = `${f.kernel ? "k" : "u"}\0${f.module}\0${f.function}`;
    let id = frameIds.get(key);
    if (id === undefined) {
      id = frames.length;
      frames.push(f);
      frameIds.set(key, id);
    }
    return id;
  };
  const unreadable = new Map<string, string>();
  const userFrame = (pid: number, address: bigint, i: number): ProfileFrameData => {
    const at = lookupAddress(address, i);
    const m = mappings.find(pid, at);
    if (!m) return { function: hex(address), module: "[unknown]", kernel: false };
    if (!isFileMapping(m) && !isVdso(m)) return { function: hex(address), module: m.path || "[anonymous]", kernel: false };
    const mod = loaded.get(symbolsKey(pid, m));
    if (!mod || mod.segments.length === 0) {
      if (mod?.error) unreadable.set(m.path, mod.error);
      return { function: hex(fileOffsetOf(m, address)), module: m.path, kernel: false };
    }
    const fn = mod.functions.at(fileOffsetToVaddr(mod.segments, fileOffsetOf(m, at)));
    return { function: fn?.name ?? hex(fileOffsetToVaddr(mod.segments, fileOffsetOf(m, address))), module: m.path, kernel: false };
  };

  const stacks = new Map<string, ProfileStackData>();
  let userSamples = 0;
  const shallowSamples = new Map<string, number>();
  for (const s of raw) {
    // Leaf first: at each address, the functions inlined there (innermost first), then the one holding it.
    const user = s.user
      .flatMap((a, i) => {
        const outer = userFrame(s.pid, a, i);
        return [...inlinedAt(s.pid, a, i).map((name) => frameId({ function: name, module: outer.module, kernel: false })), frameId(outer)];
      })
      .reverse();
    const kernel = s.kernel.map((k) => frameId({ function: k.symbol ?? hex(k.address), module: "[kernel]", kernel: true })).reverse();
    const ids = [...user, ...kernel];
    if (user.length > 0) userSamples += s.samples;
    if (s.user.length === 1) {
      const module = frames[user[0]!]!.module;
      shallowSamples.set(module, (shallowSamples.get(module) ?? 0) + s.samples);
    }
    const key = `${s.pid}:${ids.join(",")}`;
    const known = stacks.get(key);
    if (known) known.samples += s.samples;
    else stacks.set(key, { frameIds: ids, samples: s.samples, pid: s.pid });
  }
  return { frames, stacks: [...stacks.values()].sort((a, b) => b.samples - a.samples), userSamples, shallowSamples, unreadable };
}

/**
 * The address to look a frame up by: the leaf's own, and for a caller the
 * byte before its return address (the call instruction), since a call that
 * ends a function returns to the first byte of the next one.
 */
function lookupAddress(address: bigint, indexFromLeaf: number): bigint {
  return indexFromLeaf === 0 || address === 0n ? address : address - 1n;
}
