import { describe, expect, it } from "vitest";
import type { UprobeCollectorRecord } from "./index.ts";
import { at, tempStores } from "./testing.ts";

const collector = (id: string, startedAt: Date): UprobeCollectorRecord => ({
  collectorId: id,
  label: "dbg-1",
  functionName: "validate_card",
  durationMs: 60_000,
  captureArgs: 1,
  captureReturn: true,
  sampleRate: 1,
  maxEvents: 100,
  slowThresholdMs: 250,
  startedAt,
  expiresAt: new Date(startedAt.getTime() + 60_000),
  binary: "/srv/payments",
  isGo: false,
  pid: 42,
  endedAt: null,
  stopReason: null,
  stopDetail: null,
  kind: "function",
  expression: "",
  condition: "",
  snapshotCount: 0,
});

describe("uprobe collector records", () => {
  it("keeps a collector's request across a reopen, ends it once, and lists the running and recently ended ones", async () => {
    await using t = await tempStores();
    let store = await t.open("agent.sqlite");
    await store.saveUprobeCollector(collector("c-running", at(0)));
    await store.saveUprobeCollector(collector("c-old", at(1)));
    await store.saveUprobeCollector(collector("c-recent", at(2)));
    await store.endUprobeCollector("c-old", { at: at(10), stopReason: "stopped", detail: null });
    await store.endUprobeCollector("c-recent", { at: at(100), stopReason: "resume_failed", detail: "function gone" });
    // The first end wins.
    await store.endUprobeCollector("c-recent", { at: at(200), stopReason: "stopped", detail: null });
    await store.close();

    store = await t.open("agent.sqlite");
    const listed = await store.listUprobeCollectors(at(50));
    expect(listed.map((c) => c.collectorId)).toEqual(["c-running", "c-recent"]);
    expect(listed[0]).toEqual(collector("c-running", at(0)));
    expect(listed[1]).toMatchObject({ endedAt: at(100), stopReason: "resume_failed", stopDetail: "function gone" });
  });

  it("keeps a logpoint's expression and condition, a snapshot's count, and the records' values (migration 6)", async () => {
    await using t = await tempStores();
    let store = await t.open("agent.sqlite");
    const logpoint: UprobeCollectorRecord = { ...collector("c-log", at(0)), functionName: "app.mjs:12", kind: "logpoint", expression: "a + b", condition: "a > 1" };
    await store.saveUprobeCollector(logpoint);
    await store.saveUprobeCollector({ ...collector("c-snap", at(1)), functionName: "app.mjs:12", kind: "snapshot", snapshotCount: 3 });
    await store.recordUprobeEvents("c-log", [
      { seq: 1, timestamp: at(2), type: "log", pid: 42, tid: 42, value: "3" },
      { seq: 2, timestamp: at(3), type: "log", pid: 42, tid: 42, value: "!TypeError: x" },
    ]);
    await store.recordUprobeEvents("c-snap", [{ seq: 1, timestamp: at(4), type: "snapshot", pid: 42, tid: 42, value: '{"a":"1"}' }]);
    await store.close();
    store = await t.open("agent.sqlite");
    const listed = await store.listUprobeCollectors(at(0));
    expect(listed[0]).toEqual(logpoint);
    expect(listed[1]).toMatchObject({ kind: "snapshot", snapshotCount: 3, expression: "" });
    expect((await store.queryUprobeEvents({ collectorId: "c-log", limit: 10 })).rows.map((r) => [r.type, r.value])).toEqual([
      ["log", "3"],
      ["log", "!TypeError: x"],
    ]);
    // Records count as the summary's entries.
    expect(await store.uprobeHistory("c-snap")).toMatchObject({ lastSeq: 1, count: 1, entries: 1, durationsNs: [] });
  });

  it("says where a collector's seq stands and the durations of its calls", async () => {
    await using t = await tempStores();
    const store = await t.open("agent.sqlite");
    expect(await store.uprobeHistory("c")).toEqual({ lastSeq: 0, count: 0, entries: 0, durationsNs: [] });
    const ev = { pid: 1, tid: 1, timestamp: at(1) };
    await store.recordUprobeEvents("c", [
      { ...ev, seq: 1, type: "entry" },
      { ...ev, seq: 2, type: "return", durationNs: 500 },
      { ...ev, seq: 3, type: "entry" },
    ]);
    await store.recordUprobeEvents("other", [{ ...ev, seq: 9, type: "entry" }]);
    expect(await store.uprobeHistory("c")).toEqual({ lastSeq: 3, count: 3, entries: 2, durationsNs: [500] });
  });

  it("retention removes ended collectors before the cutoff, never a running one", async () => {
    await using t = await tempStores();
    const store = await t.open("agent.sqlite", { retentionMs: 3_600_000 });
    await store.saveUprobeCollector(collector("running", at(0)));
    await store.saveUprobeCollector(collector("ended", at(0)));
    await store.endUprobeCollector("ended", { at: at(60), stopReason: "duration", detail: null });
    expect((await store.applyRetention(at(3 * 3600))).uprobeCollectors).toBe(1);
    expect((await store.listUprobeCollectors(at(0))).map((c) => c.collectorId)).toEqual(["running"]);
  });
});
