// Write throughput of the agent store, run by hand:
//   npx tsx agent/src/storage/bench-write.ts [calls] [pointsPerCall]
// The agent records one call per second (one sample of every metric it
// scrapes), so the per-call latency matters as much as rows/s. Prints both,
// for the default shape (200 points per call) and a few larger ones, then the
// cost of summarize() and applyRetention() over what was written.
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openAgentStore, type MetricPoint } from "./index.ts";

const calls = Number(process.argv[2] ?? 2_000);
const pointsPerCall = Number(process.argv[3] ?? 200);
const metricNames = Array.from({ length: 50 }, (_, i) => `metric_${i}`);
const start = Date.UTC(2024, 0, 1);

function sample(second: number, size: number): MetricPoint[] {
  const timestamp = new Date(start + second * 1000);
  return Array.from({ length: size }, (_, i) => ({
    timestamp,
    name: metricNames[i % metricNames.length] as string,
    value: Math.random() * 100,
    labels: i % 4 === 0 ? { path: `/route/${i % 7}`, code: "200" } : undefined,
  }));
}

function pct(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

const dir = await mkdtemp(join(tmpdir(), "agent-bench-"));
const file = join(dir, "agent.sqlite");
const store = await openAgentStore(file, { retentionMs: 6 * 3_600_000 });
try {
  let second = 0;
  let written = 0;
  const shapes: [number, number][] = [
    [calls, pointsPerCall],
    [Math.max(1, Math.floor(calls / 10)), pointsPerCall * 10],
    [Math.max(1, Math.floor(calls / 100)), pointsPerCall * 100],
  ];
  for (const [n, size] of shapes) {
    const batches = Array.from({ length: n }, () => sample(second++, size));
    const latencies: number[] = [];
    let rows = 0;
    const t0 = performance.now();
    for (const points of batches) {
      const c0 = performance.now();
      rows += await store.recordMetrics(points);
      latencies.push(performance.now() - c0);
    }
    const ms = performance.now() - t0;
    written += rows;
    latencies.sort((a, b) => a - b);
    console.log(
      `recordMetrics: ${n} calls x ${size} points = ${rows} rows in ${ms.toFixed(0)} ms ` +
        `= ${Math.round((rows / ms) * 1000).toLocaleString("en")} rows/s; ` +
        `per call p50 ${pct(latencies, 0.5).toFixed(2)} ms, p99 ${pct(latencies, 0.99).toFixed(2)} ms`,
    );
  }

  const end = new Date(start + second * 1000);
  for (const [label, windowS] of [["everything", second], ["last hour", 3600], ["last minute (the agent's summary interval)", 60]] as const) {
    const t0 = performance.now();
    const summary = await store.summarize(new Date(end.getTime() - windowS * 1000), end);
    const rows = summary.reduce((n, m) => n + m.count, 0);
    console.log(
      `summarize ${label}: ${summary.length} metrics, ${rows} of ${written} rows, in ${(performance.now() - t0).toFixed(0)} ms`,
    );
  }
  const r0 = performance.now();
  const deleted = await store.applyRetention(new Date(start + (second + 6 * 3600 - 600) * 1000));
  console.log(`applyRetention deleted ${deleted.metrics} metric rows in ${(performance.now() - r0).toFixed(0)} ms`);
} finally {
  await store.close();
  console.log(`file size after close: ${((await stat(file)).size / 1e6).toFixed(1)} MB`);
  await rm(dir, { recursive: true, force: true });
}
