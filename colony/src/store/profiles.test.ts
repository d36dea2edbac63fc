import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TelemetryBatchSchema, type ProfileWindowSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, profileStacksPerMinute, readProfileWindow, type ColonyStore } from "./index.ts";

let dir: string;
let store: ColonyStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "colony-profiles-"));
  store = await openStore(join(dir, "colony.duckdb"));
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const t0 = Date.parse("2026-06-01T12:00:00Z");
const at = (minute: number, seconds = 0) => timestampFromDate(new Date(t0 + minute * 60_000 + seconds * 1000));
type WindowInit = MessageInitShape<typeof ProfileWindowSchema>;

/** main → handle → leaf{n}: frame ids differ per window on purpose (the store keys stacks by frames). */
function win(minute: number, samples: number[], extra: Pick<WindowInit & object, "frames" | "stacks" | "totalSamples" | "otherSamples"> = {}): WindowInit {
  const frames = [{ function: "main", module: "/app" }, { function: "handle", module: "/app" }, ...samples.map((_, i) => ({ function: `leaf${i}`, module: "/app" }))];
  frames.reverse();
  const id = (name: string) => frames.findIndex((f) => f.function === name);
  const stacks = samples.map((n, i) => ({ frameIds: [id("main"), id("handle"), id(`leaf${i}`)], samples: BigInt(n), pid: 7 }));
  const total = samples.reduce((a, b) => a + b, 0);
  return { timestamp: at(minute, 5), durationMs: 60_000, hz: 19, frames, stacks, totalSamples: BigInt(total), otherSamples: 0n, ...extra };
}

const batch = (id: string, profiles: WindowInit[], agentId = "a1") => create(TelemetryBatchSchema, { batchId: id, agentId, serviceName: "api", profiles });
const read = (fromMinute: number, untilMinute: number) => store.read((c) => readProfileWindow(c, "api", new Date(t0 + fromMinute * 60_000), new Date(t0 + untilMinute * 60_000)));

describe("always-on profiles in the store", () => {
  it("sums windows of one minute (two agents), keeps minutes apart, and stores a redelivered batch once", async () => {
    await store.ingest([batch("b1", [win(0, [10, 5])])]);
    await store.ingest([batch("b2", [win(0, [1, 2], { totalSamples: 7n, otherSamples: 4n })], "a2"), batch("b3", [win(1, [100])])]);
    await store.ingest([batch("b1", [win(0, [10, 5])])]);
    const w = await read(0, 1);
    expect(w.minutes).toBe(1);
    expect(w.totalSamples).toBe(22n);
    expect(w.otherSamples).toBe(4n);
    expect(w.hz).toEqual([19]);
    expect(w.stacks.map((s) => [s.frames.map((f) => f[0]).join(";"), s.samples])).toEqual([
      ["main;handle;leaf0", 11n],
      ["main;handle;leaf1", 7n],
    ]);
    const both = await read(0, 2);
    expect(both.minutes).toBe(2);
    expect(both.stacks[0]).toMatchObject({ samples: 111n });
    expect(both.firstMinute).toEqual(new Date(t0));
  });

  it("keeps the top stacks of a minute and folds the rest into other_samples", async () => {
    const n = profileStacksPerMinute + 20;
    // Two windows of the same minute: the cut is made on the minute's sums.
    await store.ingest([batch("b1", [win(0, Array.from({ length: n }, (_, i) => i + 1))])]);
    await store.ingest([batch("b2", [win(0, [1000])], "a2")]);
    const w = await read(0, 1);
    expect(w.stacks).toHaveLength(profileStacksPerMinute);
    const kept = w.stacks.reduce((a, s) => a + s.samples, 0n);
    const sent = BigInt((n * (n + 1)) / 2 + 1000);
    expect(w.totalSamples).toBe(sent);
    expect(w.otherSamples).toBe(sent - kept);
    // leaf0's first sample was folded away by the first call; later samples count again.
    expect(w.stacks[0]).toMatchObject({ samples: 1000n });
  });

  it("drops minutes (and frames nobody uses any more) with metrics_1m's retention", async () => {
    await store.ingest([batch("old", [win(0, [3])]), batch("new", [win(30, [4], { frames: [{ function: "other" }], stacks: [{ frameIds: [0], samples: 4n }] })])]);
    const deleted = await store.applyRetention(new Date(t0 + 30 * 60_000 + store.retention.metrics_1m));
    expect(deleted).toMatchObject({ profile_minutes: 1, profile_stacks: 1, profile_frames: 1 });
    expect((await read(0, 60)).stacks.map((s) => s.samples)).toEqual([4n]);
  });
});
