// A CPU or heap profile as pprof (profile.proto, gzipped), read by `go tool pprof`,
// Pyroscope, Parca and Speedscope; encoded with Datadog's pprof-format.
import { gzipSync } from "node:zlib";
import { Function as PprofFunction, Location, Mapping, Profile, Sample, StringTable, ValueType } from "pprof-format";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { CpuProfile, HeapProfile, ProfileFrame } from "@coral/proto/gen/coral/agent/v1/profile_pb";

/** pprof's mappings, functions and locations for a frame table: one function and one location per frame (frames are already distinct). */
function frameTables(frames: readonly ProfileFrame[], strings: StringTable) {
  const modules = new Map<string, number>();
  const mapping: Mapping[] = [];
  const mappingOf = (module: string) => {
    let id = modules.get(module);
    if (id === undefined) {
      id = mapping.length + 1;
      modules.set(module, id);
      mapping.push(new Mapping({ id, filename: strings.dedup(module), hasFunctions: true }));
    }
    return id;
  };
  const functions = frames.map((f, i) => new PprofFunction({ id: i + 1, name: strings.dedup(f.function), systemName: strings.dedup(f.function), filename: strings.dedup(f.module) }));
  const locations = frames.map((f, i) => new Location({ id: i + 1, mappingId: mappingOf(f.module), line: [{ functionId: i + 1 }] }));
  return { mapping, function: functions, location: locations };
}

const millisOf = (t: Timestamp | undefined) => (t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : Date.now());

/** A pprof sample of one stack with its values, labelled with the process it was taken in. */
function sampleMaker(strings: StringTable, processNames: Record<number, string>) {
  const pidKey = strings.dedup("pid");
  const processKey = strings.dedup("process");
  return (s: { frameIds: number[]; pid: number }, value: (number | bigint)[]) =>
    new Sample({
      // pprof lists a sample's locations leaf first.
      locationId: [...s.frameIds].reverse().map((id) => id + 1),
      value,
      label: [{ key: pidKey, num: s.pid }, { key: processKey, str: strings.dedup(processNames[s.pid] ?? "") }],
    });
}

export function toPprof(profile: CpuProfile): Buffer {
  const strings = new StringTable();
  const tables = frameTables(profile.frames, strings);
  const periodNs = Math.round(1e9 / Math.max(1, profile.hz));
  const sample = sampleMaker(strings, profile.processNames);
  const samples = profile.stacks.map((s) => sample(s, [Number(s.samples), Number(s.samples) * periodNs]));
  const encoded = new Profile({
    sampleType: [new ValueType({ type: strings.dedup("samples"), unit: strings.dedup("count") }), new ValueType({ type: strings.dedup("cpu"), unit: strings.dedup("nanoseconds") })],
    sample: samples,
    ...tables,
    stringTable: strings,
    timeNanos: BigInt(millisOf(profile.startedAt)) * 1_000_000n,
    durationNanos: BigInt(profile.durationMs) * 1_000_000n,
    periodType: new ValueType({ type: strings.dedup("cpu"), unit: strings.dedup("nanoseconds") }),
    period: periodNs,
    comment: [strings.dedup(`coral profile cpu: ${profile.method}, ${profile.hz} Hz`)],
  }).encode();
  return gzipSync(encoded);
}

/** A heap profile as pprof, with Go's four sample types (inuse_space the default, as `go tool pprof` shows a Go heap). */
export function toHeapPprof(profile: HeapProfile): Buffer {
  const strings = new StringTable();
  const tables = frameTables(profile.frames, strings);
  const sample = sampleMaker(strings, profile.processNames);
  const samples = profile.stacks.map((s) => sample(s, [s.allocObjects, s.allocBytes, s.inuseObjects, s.inuseBytes]));
  const type = (name: string, unit: string) => new ValueType({ type: strings.dedup(name), unit: strings.dedup(unit) });
  const sampleType = [type("alloc_objects", "count"), type("alloc_space", "bytes"), type("inuse_objects", "count"), type("inuse_space", "bytes")];
  const encoded = new Profile({
    sampleType,
    sample: samples,
    ...tables,
    stringTable: strings,
    timeNanos: BigInt(millisOf(profile.takenAt)) * 1_000_000n,
    durationNanos: BigInt(profile.durationMs) * 1_000_000n,
    periodType: type("space", "bytes"),
    period: profile.samplingIntervalBytes,
    comment: [strings.dedup(`coral profile heap: ${profile.method}`)],
    defaultSampleType: sampleType[3]!.type,
  }).encode();
  return gzipSync(encoded);
}
