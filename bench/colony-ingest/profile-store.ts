// Profiles the store's ingest alone, today's against the one before
// (baseline-store-ingest.ts), each on its own fresh store, call for call in
// turn: per round 6 calls of 500 batches × 100 rows (the end-to-end bench's
// shape: 10 agents, one minute per message). Prints each one's rows/s and
// commit times; PROFILE_EACH=1 adds the time of every DuckDB call made inside
// (appender fill = JavaScript between createAppender and flush).
//   node --conditions=coral-source --import tsx bench/colony-ingest/profile-store.ts [rounds]
// PROFILE_ONLY=current|baseline runs one; PROFILE_SQL="SET …" runs a statement on both writers first.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { MetricSummarySchema, TelemetryBatchSchema, type MetricSummary, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { performance } from "node:perf_hooks";
import type { DuckDBConnection } from "@duckdb/node-api";
import { openStore, type ColonyStore } from "@coral/colony/store";
import { ingestBatches as baselineIngest, prepareIngest as baselinePrepare } from "./baseline-store-ingest.ts";
import { loadavg } from "node:os";

// As workload.ts builds them (not imported: it pulls in the synthetic agent and the CLI).
const minute = 60_000;
function summary(metricName: string, at: Date, seed: number): MetricSummary {
  const base = 10 + (seed % 17);
  return create(MetricSummarySchema, { timestamp: timestampFromDate(at), metricName, interval: "1m", p50: base, p95: base * 2, p99: base * 3, mean: base * 1.1, max: base * 4, min: base / 2, count: 60n });
}
function buildPayloads(config: { messagesPerAgent: number; rowsPerMessage: number; baseMs: number }, a: number): MetricSummary[][] {
  return Array.from({ length: config.messagesPerAgent }, (_, i) =>
    Array.from({ length: config.rowsPerMessage }, (_, r) => summary(`metric_${String(r).padStart(3, "0")}`, new Date(config.baseMs + i * minute), a + i + r)),
  );
}

const rounds = Number(process.argv[2] ?? 3);
const agents = 10;
const messages = 300;
const baseMs = Date.UTC(2026, 0, 1);

function batchesFor(round: number): TelemetryBatch[][] {
  const all: TelemetryBatch[] = [];
  const payloads = Array.from({ length: agents }, (_, a) => buildPayloads({ messagesPerAgent: messages, rowsPerMessage: 100, baseMs: baseMs + round * messages * minute }, a));
  for (let i = 0; i < messages; i++)
    for (let a = 0; a < agents; a++)
      all.push(create(TelemetryBatchSchema, { batchId: `r${round}-a${a}-${i}`, agentId: `agent-${a}`, serviceName: `svc-${a}`, createdAt: timestampFromDate(new Date()), metrics: payloads[a]![i]! }));
  const calls: TelemetryBatch[][] = [];
  for (let i = 0; i < all.length; i += 500) calls.push(all.slice(i, i + 500));
  return calls;
}

const timings = new Map<string, { ms: number; n: number }>();
const add = (k: string, ms: number) => {
  const t = timings.get(k) ?? { ms: 0, n: 0 };
  t.ms += ms;
  t.n++;
  timings.set(k, t);
};
const label = (sql: string) => sql.replace(/\s+/g, " ").trim().slice(0, 60);

function instrument(conn: DuckDBConnection, v: Variant): DuckDBConnection {
  for (const name of ["run", "runAndReadAll", "createAppender"] as const) {
    const orig = (conn[name] as (...a: unknown[]) => Promise<unknown>).bind(conn);
    (conn as unknown as Record<string, unknown>)[name] = async (...args: unknown[]) => {
      const t0 = performance.now();
      try {
        const r = await orig(...args);
        if (name === "createAppender") {
          const a = r as { flushSync(): void; closeSync(): void };
          const flush = a.flushSync.bind(a);
          const tCreate = performance.now();
          a.flushSync = () => {
            add(`${v.name} appender ${String(args[0])}: fill (JS)`, performance.now() - tCreate);
            const t1 = performance.now();
            flush();
            add(`${v.name} appender ${String(args[0])}: flush`, performance.now() - t1);
          };
        }
        return r;
      } finally {
        const ms = performance.now() - t0;
        add(`${v.name} ${name === "createAppender" ? `createAppender ${String(args[0])}` : label(String(args[0]))}`, ms);
        if (String(args[0]).startsWith("COMMIT")) v.commits.push(Math.round(ms));
      }
    };
  }
  return conn;
}

// Today's ingest and the one before (baseline-store-ingest.ts) on two fresh
// stores, call for call in turn (the order swapped every round), so both see
// the same load on this shared machine.
interface Variant {
  name: string;
  ingest: (store: ColonyStore, batches: TelemetryBatch[]) => Promise<{ metricRows: number }>;
  /** After openStore, on the writer. */
  prepare?: (c: DuckDBConnection) => Promise<void>;
  store?: ColonyStore;
  ms: number;
  rows: number;
  commits: number[];
}
const variants: Variant[] = [
  {
    name: "baseline",
    ingest: (s, b) => s.write((c) => baselineIngest(c, b)),
    prepare: async (c) => {
      await baselinePrepare(c);
      await c.run("RESET checkpoint_threshold");
    },
    ms: 0,
    rows: 0,
    commits: [],
  },
  { name: "current", ingest: (s, b) => s.ingest(b), ms: 0, rows: 0, commits: [] },
];
const only = process.env.PROFILE_ONLY;
const active = variants.filter((v) => !only || v.name === only);

const dir = await mkdtemp(join(tmpdir(), "colony-profile-"));
for (const v of active) {
  v.store = await openStore(join(dir, `${v.name}.duckdb`));
  await v.store.write(async (c) => {
    await v.prepare?.(c);
    if (process.env.PROFILE_SQL) await c.run(process.env.PROFILE_SQL);
    instrument(c, v);
  });
}
try {
  for (let round = 0; round < rounds; round++) {
    const calls = batchesFor(round);
    const order = round % 2 === 0 ? active : [...active].reverse();
    for (const v of active) {
      v.ms = 0;
      v.rows = 0;
    }
    timings.clear();
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (const batches of calls)
      for (const v of order) {
        const t1 = performance.now();
        v.rows += (await v.ingest(v.store!, batches)).metricRows;
        v.ms += performance.now() - t1;
      }
    const ms = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0);
    console.log(`round ${round}: main thread busy ${Math.round(elu.utilization * 100)} %; this process ${((cpu.user + cpu.system) / 1000 / ms).toFixed(2)} cores; load ${loadavg()[0]!.toFixed(2)}`);
    for (const v of active) console.log(`  ${v.name}: ${v.rows} rows in ${v.ms.toFixed(0)} ms = ${Math.round((v.rows / v.ms) * 1000)} rows/s; commits ${v.commits.splice(0).join(" ")} ms`);
    if (process.env.PROFILE_EACH) for (const [k, t] of [...timings].sort((a, b) => b[1].ms - a[1].ms)) console.log(`   ${(t.ms / calls.length).toFixed(1).padStart(7)} ms/call  ${k} (${t.n})`);
  }
} finally {
  for (const v of active) await v.store?.close();
  await rm(dir, { recursive: true, force: true });
}
