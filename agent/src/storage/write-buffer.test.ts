import { describe, expect, it } from "vitest";
import { at, tempStores, waitFor } from "./testing.ts";
import { WriteBuffer, type BufferedRows } from "./write-buffer.ts";

describe("the raw-sample write buffer", () => {
  it("writes what was added once the interval has passed, in one batch", async () => {
    const batches: BufferedRows[] = [];
    const buffer = new WriteBuffer(50, async (rows) => void batches.push(rows), undefined);
    buffer.addMetrics([{ timestamp: at(0), name: "cpu", value: 1 }]);
    buffer.addSnapshot({ timestamp: at(0), pid: 7, cpuPercent: 1, memoryBytes: 2, fdCount: 3, threadCount: 4 });
    buffer.addConnections([{ localAddr: "a:1", remoteAddr: "b:2", state: "ESTABLISHED" }], at(0));
    expect(batches).toHaveLength(0);
    await waitFor("one batch written", () => batches.length === 1, 10_000);
    expect(batches[0]!.metrics.map((m) => m.name)).toEqual(["cpu"]);
    expect(batches[0]!.snapshots.map((s) => s.pid)).toEqual([7]);
    expect(batches[0]!.connections.map((c) => c.list[0]!.remoteAddr)).toEqual(["b:2"]);
  });

  it("keeps a batch whose write failed and writes it with the next one", async () => {
    const written: string[][] = [];
    let failNext = true;
    const logged: string[] = [];
    const buffer = new WriteBuffer(
      0,
      async (rows) => {
        if (failNext) {
          failNext = false;
          throw new Error("disk full");
        }
        written.push(rows.metrics.map((m) => m.name));
      },
      (_level, msg) => void logged.push(msg),
    );
    buffer.addMetrics([{ timestamp: at(0), name: "first", value: 1 }]);
    await buffer.flush();
    expect(written).toEqual([]);
    expect(logged.join("\n")).toMatch(/will retry/);
    buffer.addMetrics([{ timestamp: at(1), name: "second", value: 2 }]);
    await buffer.flush();
    expect(written).toEqual([["first", "second"]]);
  });
});

describe("an agent store with a write buffer", () => {
  it("answers queries with every accepted sample and keeps them across close", async () => {
    await using t = await tempStores();
    const store = await t.open("buffered.sqlite", { writeBufferMs: 3_600_000 });
    expect(await store.recordMetrics([{ timestamp: at(0), name: "cpu", value: 1 }, { timestamp: at(1), name: "cpu", value: Number.NaN }])).toBe(1);
    await store.recordSnapshot({ timestamp: at(0), pid: 9, cpuPercent: 1, memoryBytes: 2, fdCount: 3, threadCount: 4 });
    await store.recordConnections([{ localAddr: "a:1", remoteAddr: "b:2", state: "ESTABLISHED" }], at(0));
    // Bad input is refused at once, not at the next flush.
    await expect(store.recordMetrics([{ timestamp: at(2), name: "", value: 3 }])).rejects.toThrow(/has no name/);
    await expect(store.recordSnapshot({ timestamp: at(2), pid: 0, cpuPercent: 1, memoryBytes: 2, fdCount: 3, threadCount: 4 })).rejects.toThrow(/pid/);

    expect((await store.queryMetrics({ limit: 10 })).rows.map((r) => r.value)).toEqual([1]);
    expect((await store.querySnapshots({ limit: 10 })).rows.map((r) => r.pid)).toEqual([9]);
    expect((await store.queryConnections({ limit: 10 })).rows.map((r) => r.remoteAddr)).toEqual(["b:2"]);

    await store.recordMetrics([{ timestamp: at(3), name: "mem", value: 5 }]);
    await store.close();
    const reopened = await t.open("buffered.sqlite");
    expect((await reopened.queryMetrics({ limit: 10 })).rows.map((r) => r.name).sort()).toEqual(["cpu", "mem"]);
  });
});
