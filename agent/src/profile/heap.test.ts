// Heap profiles, agent side, without a Go toolchain: the parameters' limits,
// pprof decoding (inlined frames, merged stacks, sample types by name) on a
// profile built here, and the refusals a person must be able to act on.
import { spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { gzipSync } from "node:zlib";
import { Function as PprofFunction, Location, Mapping, Profile, Sample, StringTable, ValueType } from "pprof-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ProfileError } from "./errors.ts";
import { decodeGoHeap, NotAHeapProfile } from "./heap-pprof.ts";
import { HeapProfiler, heapParameters } from "./heap.ts";

/** A Go-like heap profile: main.main → (inlined) main.load → main.grow, twice, and a churn stack. */
function goHeap(): Buffer {
  const s = new StringTable();
  const fn = (id: number, name: string) => new PprofFunction({ id, name: s.dedup(name), systemName: s.dedup(name) });
  const type = (name: string, unit: string) => new ValueType({ type: s.dedup(name), unit: s.dedup(unit) });
  const profile = new Profile({
    sampleType: [type("alloc_objects", "count"), type("alloc_space", "bytes"), type("inuse_objects", "count"), type("inuse_space", "bytes")],
    mapping: [new Mapping({ id: 1, filename: s.dedup("/srv/api"), hasFunctions: true })],
    function: [fn(1, "main.main"), fn(2, "main.load"), fn(3, "main.grow"), fn(4, "main.churn")],
    location: [
      new Location({ id: 1, mappingId: 1, address: 0x1000, line: [{ functionId: 1 }] }),
      // main.load inlined into main.grow's caller site: callee first, as Go writes it.
      new Location({ id: 2, mappingId: 1, address: 0x2000, line: [{ functionId: 3 }, { functionId: 2 }] }),
      new Location({ id: 3, mappingId: 1, address: 0x3000, line: [{ functionId: 4 }] }),
    ],
    sample: [
      new Sample({ locationId: [2, 1], value: [2, 2048, 1, 1024] }),
      new Sample({ locationId: [2, 1], value: [1, 1024, 1, 1024] }),
      new Sample({ locationId: [3], value: [100, 1_000_000, 0, 0] }),
      new Sample({ locationId: [3, 1], value: [0, 0, 0, 0] }),
    ],
    stringTable: s,
    periodType: type("space", "bytes"),
    period: 524288,
  });
  return gzipSync(profile.encode());
}

describe("heapParameters", () => {
  it("fills defaults and names the field that is out of range", () => {
    expect(heapParameters({})).toEqual({ durationMs: 10_000, samplingIntervalBytes: 524_288, pprofPort: 0 });
    expect(heapParameters({ durationMs: 400_000 })).toEqual({ error: "duration_ms: at most 5 minutes (got 400s)" });
    expect(heapParameters({ samplingIntervalBytes: 10 })).toEqual({ error: "sampling_interval_bytes: must be from 1024 to 16777216 (got 10)" });
    expect(heapParameters({ pprofPort: 70_000 })).toEqual({ error: "pprof_port: must be a port from 1 to 65535, or 0 for the service's own port (got 70000)" });
  });
});

describe("decodeGoHeap", () => {
  it("maps sample types by name, frames root first (inlined ones too), and merges equal stacks", () => {
    const heap = decodeGoHeap(goHeap(), 42);
    expect(heap.samplingIntervalBytes).toBe(524288);
    const named = heap.stacks.map((s) => ({ ...s, frames: s.frameIds.map((i) => heap.frames[i]!.function) }));
    expect(named).toEqual([
      { frameIds: expect.any(Array), frames: ["main.main", "main.load", "main.grow"], inuseBytes: 2048, inuseObjects: 2, allocBytes: 3072, allocObjects: 3, pid: 42 },
      { frameIds: expect.any(Array), frames: ["main.churn"], inuseBytes: 0, inuseObjects: 0, allocBytes: 1_000_000, allocObjects: 100, pid: 42 },
    ]);
    expect(new Set(heap.frames.map((f) => f.module))).toEqual(new Set(["/srv/api"]));
  });

  it("refuses what is not a heap profile", () => {
    expect(() => decodeGoHeap(Buffer.from("<html>hello</html>"), 1)).toThrow(NotAHeapProfile);
    const s = new StringTable();
    const cpu = new Profile({ sampleType: [new ValueType({ type: s.dedup("samples"), unit: s.dedup("count") })], stringTable: s });
    expect(() => decodeGoHeap(cpu.encode(), 1)).toThrow(/without inuse_space \(sample types: samples\)/);
  });
});

describe("HeapProfiler", () => {
  let server: http.Server;
  let port = 0;
  beforeAll(async () => {
    const body = goHeap();
    server = http.createServer((req, res) => (req.url?.startsWith("/debug/pprof/heap") ? res.end(body) : res.writeHead(404).end()));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => void server.close());
  const request = { durationMs: 10_000, samplingIntervalBytes: 524_288, pprofPort: 0, label: "test" };

  it("refuses with no observed process (Node processes: node-heap.test.ts)", async () => {
    const none = new HeapProfiler({ observedPid: () => null, servicePort: () => port });
    await expect(none.profile(request)).rejects.toMatchObject({ code: "no_process" });
  });

  it("on the service's own port without pprof, says to start net/http/pprof or pass --pprof-port", async () => {
    const plain = http.createServer((_, res) => res.writeHead(404).end());
    await new Promise<void>((resolve) => plain.listen(0, "127.0.0.1", resolve));
    // Any process that is not node stands for the Go service.
    const sleeper = spawn("sleep", ["30"], { stdio: "ignore" });
    try {
      const servicePort = (plain.address() as AddressInfo).port;
      const profiler = new HeapProfiler({ observedPid: () => sleeper.pid!, servicePort: () => servicePort });
      const err = (await profiler.profile(request).catch((e: unknown) => e)) as ProfileError;
      expect(err.code).toBe("no_pprof");
      expect(err.message).toBe(`nothing serves /debug/pprof/heap on 127.0.0.1:${servicePort} (HTTP 404) — start net/http/pprof on the service's port (import _ "net/http/pprof") or pass --pprof-port`);
    } finally {
      sleeper.kill("SIGKILL");
      plain.close();
    }
  });

  it("takes the profile from the pprof port, and says what to do when nothing serves it", async () => {
    const profiler = new HeapProfiler({ observedPid: () => process.pid, servicePort: () => 1 });
    const heap = await profiler.profile({ ...request, pprofPort: port });
    expect(heap).toMatchObject({ method: "pprof", pids: [process.pid], durationMs: 0, note: "" });
    expect(heap.stacks[0]!.inuseBytes).toBe(2048);

    const small = new HeapProfiler({ observedPid: () => process.pid, servicePort: () => 1, maxBodyBytes: 10 });
    await expect(small.profile({ ...request, pprofPort: port })).rejects.toMatchObject({ code: "pprof_failed" });
    const noted = await profiler.profile({ ...request, pprofPort: port, samplingIntervalBytes: 4096 });
    expect(noted.note).toMatch(/sampling_interval_bytes applies to Node only/);

    server.close();
    server.closeAllConnections();
    const gone = await profiler.profile({ ...request, pprofPort: port }).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(ProfileError);
    expect((gone as ProfileError).code).toBe("no_pprof");
    expect((gone as ProfileError).message).toMatch(new RegExp(`^nothing answers on 127\\.0\\.0\\.1:${port}: ECONNREFUSED`));
  });
});
