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

async function means(): Promise<number[]> {
  const reader = await store.read((c) => c.runAndReadAll("SELECT mean FROM metric_summaries ORDER BY timestamp"));
  return reader.getRowObjectsJS().map((r) => Number(r.mean));
}

describe("ingest of metric rows whose key is already stored", () => {
  it("keeps the stored row and stores the rest of the call (replicas of one service repeat keys)", async () => {
    await store.ingest([batch("b1", 0, 1)]);
    // A second replica of "api" reports the same minute, beside a new minute.
    const r = await store.ingest([batch("b2", 0, 99, "a2"), batch("b3", 1, 2, "a2")]);
    expect(r).toMatchObject({ stored: 2, metricRows: 1 });
    expect(await means()).toEqual([1, 2]);
    // And again while conflicts are expected, and after.
    for (let i = 0; i < 3; i++) expect(await store.ingest([batch(`c${i}`, 0, 50 + i, "a3"), batch(`d${i}`, 2 + i, 3 + i)])).toMatchObject({ stored: 2, metricRows: 1 });
    expect(await means()).toEqual([1, 2, 3, 4, 5]);
  });
});
