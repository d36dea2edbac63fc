import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TelemetryBatchSchema, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore, type ColonyStore } from "./index.ts";

let dir: string;
let store: ColonyStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "colony-ingest-"));
  store = await openStore(join(dir, "colony.duckdb"));
});
afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const t0 = Date.parse("2026-06-01T12:00:00Z");
const batch = (id: string, minute: number, mean: number, agentId = "a1"): TelemetryBatch =>
  create(TelemetryBatchSchema, {
    batchId: id,
    agentId,
    serviceName: "api",
    metrics: [{ metricName: "cpu", interval: "1m", timestamp: timestampFromDate(new Date(t0 + minute * 60_000)), mean, count: 1n }],
  });

async function rows(interval = "1m"): Promise<Array<{ mean: number; count: number }>> {
  const reader = await store.read((c) =>
    c.runAndReadAll(`SELECT mean, count FROM metric_summaries WHERE interval = '${interval}' ORDER BY timestamp, mean`),
  );
  return reader.getRowObjectsJS().map((r) => ({ mean: Number(r.mean), count: Number(r.count) }));
}

describe("ingest of metric rows whose key is already stored (no row key: exactly once is per batch)", () => {
  it("stores every replica's row for the same minute, skips redelivered batches, and the rollup weighs them together", async () => {
    await store.ingest([batch("b1", 0, 1)]);
    // A second replica of "api" reports the same minute, beside a new minute.
    expect(await store.ingest([batch("b2", 0, 99, "a2"), batch("b3", 1, 2, "a2")])).toMatchObject({ stored: 2, metricRows: 2 });
    expect((await rows()).map((r) => r.mean)).toEqual([1, 99, 2]);
    // A redelivered batch beside a new one: only the new one is stored.
    expect(await store.ingest([batch("b2", 0, 99, "a2"), batch("b4", 2, 3)])).toMatchObject({ stored: 1, duplicates: 1, metricRows: 1 });
    expect((await rows()).map((r) => r.mean)).toEqual([1, 99, 2, 3]);
    // The 5-minute window holds all four rows, each counted once: mean (1 + 99 + 2 + 3) / 4.
    const rolled = await store.rollup(new Date(t0 + 5 * 60_000));
    expect(rolled["5m"]).toBe(1);
    expect(await rows("5m")).toEqual([{ mean: 26.25, count: 4 }]);
    // A late row for that window replaces the rollup's row, not adds one.
    await store.ingest([batch("b5", 4, 5)]);
    expect((await store.rollup(new Date(t0 + 5 * 60_000)))["5m"]).toBe(1);
    expect(await rows("5m")).toEqual([{ mean: 22, count: 5 }]);
  });
});
