// A CPU profile as pprof (profile.proto, gzipped), read by `go tool pprof`,
// Pyroscope, Parca and Speedscope; encoded with Datadog's pprof-format.
import { gzipSync } from "node:zlib";
import { Function as PprofFunction, Location, Mapping, Profile, Sample, StringTable, ValueType } from "pprof-format";
import type { CpuProfile } from "@coral/proto/gen/coral/agent/v1/profile_pb";

export function toPprof(profile: CpuProfile): Buffer {
  const strings = new StringTable();
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
  // One function and one location per frame of the table (frames are already distinct).
  const functions = profile.frames.map((f, i) => new PprofFunction({ id: i + 1, name: strings.dedup(f.function), systemName: strings.dedup(f.function), filename: strings.dedup(f.module) }));
  const locations = profile.frames.map((f, i) => new Location({ id: i + 1, mappingId: mappingOf(f.module), line: [{ functionId: i + 1 }] }));
  const periodNs = Math.round(1e9 / Math.max(1, profile.hz));
  const pidKey = strings.dedup("pid");
  const processKey = strings.dedup("process");
  const samples = profile.stacks.map(
    (s) =>
      new Sample({
        // pprof lists a sample's locations leaf first.
        locationId: [...s.frameIds].reverse().map((id) => id + 1),
        value: [Number(s.samples), Number(s.samples) * periodNs],
        label: [{ key: pidKey, num: s.pid }, { key: processKey, str: strings.dedup(profile.processNames[s.pid] ?? "") }],
      }),
  );
  const startedMs = profile.startedAt ? Number(profile.startedAt.seconds) * 1000 + Math.floor(profile.startedAt.nanos / 1e6) : Date.now();
  const encoded = new Profile({
    sampleType: [new ValueType({ type: strings.dedup("samples"), unit: strings.dedup("count") }), new ValueType({ type: strings.dedup("cpu"), unit: strings.dedup("nanoseconds") })],
    sample: samples,
    mapping,
    location: locations,
    function: functions,
    stringTable: strings,
    timeNanos: BigInt(startedMs) * 1_000_000n,
    durationNanos: BigInt(profile.durationMs) * 1_000_000n,
    periodType: new ValueType({ type: strings.dedup("cpu"), unit: strings.dedup("nanoseconds") }),
    period: periodNs,
    comment: [strings.dedup(`coral profile cpu: ${profile.method}, ${profile.hz} Hz`)],
  }).encode();
  return gzipSync(encoded);
}
