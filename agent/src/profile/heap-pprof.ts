// Go's heap profile (/debug/pprof/heap: gzipped profile.proto) as Coral's
// heap stacks: the four sample types by name, each location's functions as
// frames (root first; the module is the mapping's file), equal stacks merged.
import { gunzipSync } from "node:zlib";
import { Profile } from "pprof-format";
import type { ProfileFrameData } from "./symbolize.ts";

export interface HeapStackData {
  /** Indexes into the frames, root first, the allocating function last. */
  frameIds: number[];
  inuseBytes: number;
  inuseObjects: number;
  allocBytes: number;
  allocObjects: number;
  pid: number;
}

export interface DecodedHeap {
  frames: ProfileFrameData[];
  stacks: HeapStackData[];
  /** Average bytes between samples (Go's runtime.MemProfileRate), 0 when the profile does not say. */
  samplingIntervalBytes: number;
}

const valueNames = { inuse_space: "inuseBytes", inuse_objects: "inuseObjects", alloc_space: "allocBytes", alloc_objects: "allocObjects" } as const;
type ValueKey = (typeof valueNames)[keyof typeof valueNames];

/** Thrown for a body that is not a heap profile (the caller words the error). */
export class NotAHeapProfile extends Error {
  override name = "NotAHeapProfile";
}

/** Decodes a pprof heap profile (gzipped or not) taken of process `pid`. */
export function decodeGoHeap(body: Uint8Array, pid: number): DecodedHeap {
  let profile: Profile;
  try {
    // Gzip's magic: Go always compresses, but a proxy may already have inflated it.
    const raw = body[0] === 0x1f && body[1] === 0x8b ? gunzipSync(body) : body;
    profile = Profile.decode(raw);
  } catch (err) {
    throw new NotAHeapProfile(`not a pprof profile (${(err as Error).message})`);
  }
  const str = (i: number | bigint) => profile.stringTable.strings[Number(i)] ?? "";
  const columns = profile.sampleType.map((t) => valueNames[str(t.type) as keyof typeof valueNames] as ValueKey | undefined);
  if (!columns.includes("inuseBytes")) throw new NotAHeapProfile(`a pprof profile without inuse_space (sample types: ${profile.sampleType.map((t) => str(t.type)).join(", ") || "none"})`);

  const mappings = new Map(profile.mapping.map((m) => [Number(m.id), str(m.filename)]));
  const functions = new Map(profile.function.map((f) => [Number(f.id), str(f.name) || str(f.systemName)]));
  const frames: ProfileFrameData[] = [];
  const frameIndex = new Map<string, number>();
  const frameOf = (fn: string, module: string) => {
    const key = `${module}\0${fn}`;
    let id = frameIndex.get(key);
    if (id === undefined) {
      id = frames.length;
      frames.push({ function: fn, module, kernel: false });
      frameIndex.set(key, id);
    }
    return id;
  };
  // A location's lines list inlined functions callee first; root first means reversed.
  const locations = new Map<number, number[]>();
  for (const loc of profile.location) {
    const module = mappings.get(Number(loc.mappingId)) ?? "";
    const names = loc.line.length > 0 ? loc.line.map((l) => functions.get(Number(l.functionId)) || `0x${BigInt(loc.address).toString(16)}`) : [`0x${BigInt(loc.address).toString(16)}`];
    locations.set(Number(loc.id), names.reverse().map((fn) => frameOf(fn, module)));
  }

  const stacks = new Map<string, HeapStackData>();
  for (const sample of profile.sample) {
    // pprof lists a sample's locations leaf first.
    const frameIds = [...sample.locationId].reverse().flatMap((id) => locations.get(Number(id)) ?? []);
    const key = frameIds.join(",");
    let stack = stacks.get(key);
    if (!stack) {
      stack = { frameIds, inuseBytes: 0, inuseObjects: 0, allocBytes: 0, allocObjects: 0, pid };
      stacks.set(key, stack);
    }
    sample.value.forEach((v, i) => {
      const column = columns[i];
      if (column) stack[column] += Number(v);
    });
  }
  const kept = [...stacks.values()].filter((s) => s.inuseBytes || s.inuseObjects || s.allocBytes || s.allocObjects);
  kept.sort((a, b) => b.inuseBytes - a.inuseBytes || b.allocBytes - a.allocBytes);
  return { frames, stacks: kept, samplingIntervalBytes: Number(profile.period) || 0 };
}
