// Ingestion throughput: `npx tsx colony/src/store/bench-ingest.ts [rows] [rowsPerBatch] [batchesPerCall]`.
// Prints metric rows per second into a fresh DuckDB file (target: >= 50,000/s on 2 cores).
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { MetricSummarySchema, TelemetryBatchSchema, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { openStore } from "./index.ts";

const total = Number(process.argv[2] ?? 100_000);
const perBatch = Number(process.argv[3] ?? 500);
const perCall = Number(process.argv[4] ?? 20);
const services = 20;
const start = Date.UTC(2024, 0, 1);

function makeBatches(round: number): TelemetryBatch[] {
  const batches: TelemetryBatch[] = [];
  let row = 0;
  for (let b = 0; row < total; b++) {
    const svc = b % services;
    const metrics = [];
    for (let i = 0; i < perBatch && row < total; i++, row++) {
      // distinct (timestamp, service, metric) keys
      const minute = Math.floor(row / (services * 50));
      metrics.push(
        create(MetricSummarySchema, {
          timestamp: timestampFromDate(new Date(start + (round * 1_000_000 + minute) * 60_000)),
          metricName: `metric_${row % 50}_${Math.floor(row / 50) % services}`,
          p50: Math.random() * 10,
          p95: 20,
          p99: 30,
          mean: 5,
          max: 40,
          min: 0.1,
          count: 60n,
        }),
      );
    }
    batches.push(
      create(TelemetryBatchSchema, {
        batchId: `r${round}-b${b}`,
        agentId: `agent-${svc}`,
        serviceName: `svc-${svc}`,
        metrics,
      }),
    );
  }
  return batches;
}

const dir = await mkdtemp(join(tmpdir(), "colony-bench-"));
const store = await openStore(join(dir, "colony.duckdb"));
try {
  for (let round = 0; round < 3; round++) {
    const batches = makeBatches(round);
    const t0 = performance.now();
    let rows = 0;
    for (let i = 0; i < batches.length; i += perCall) {
      rows += (await store.ingest(batches.slice(i, i + perCall))).metricRows;
    }
    const ms = performance.now() - t0;
    console.log(
      `round ${round}: ${rows} metric rows in ${ms.toFixed(0)} ms = ${Math.round((rows / ms) * 1000)} rows/s ` +
        `(${perBatch} rows/batch, ${perCall} batches/call)`,
    );
  }
  for (let i = 0; i < 2; i++) {
    const t0 = performance.now();
    const r = await store.rollup(new Date(start + 4_000_000 * 60_000));
    console.log(`rollup ${i}: ${JSON.stringify(r)} in ${(performance.now() - t0).toFixed(0)} ms`);
  }
} finally {
  await store.close();
  await rm(dir, { recursive: true, force: true });
}
