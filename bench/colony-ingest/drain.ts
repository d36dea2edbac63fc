// Consumer drain: the colony side of ingestion on its own, without publishers
// competing for the CPU. A real nats-server (startManagedNats, as the colony
// starts it) gets the colony's telemetry stream, pre-filled with telemetry
// messages; then the colony's own ingestion (startIngestion, the durable pull
// consumer) drains the whole stream into a fresh store (openStore) at a given
// consumer batch size, each run with its own durable consumer and DuckDB file.
// This is the colony's code, unchanged; only its batchSize option varies.
// "baseline" runs the ingestion as it was before issue 17 (baseline-ingestion.ts)
// in turn with today's, on the same stream, for a same-run comparison.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TelemetryBatchSchema, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { ensureTelemetryStream, startIngestion, startManagedNats, telemetrySubject } from "@coral/colony/nats";
import { openStore } from "@coral/colony/store";
import { PollTimeoutError, pollUntil } from "@coral/common/async";
import { startBaselineIngestion } from "./baseline-ingestion.ts";
import { ingestBatches as ingestBefore, prepareIngest as prepareBeforeStaging } from "./baseline-store-ingest.ts";
import { cpuBetween, cpuSnapshot, round, type CpuUse } from "./lib.ts";
import { buildPayloads, minute } from "./workload.ts";

/**
 * "current": today's consumer and store; "baseline": the consumer as it was
 * before issue 17 (today's store); "store-before": today's consumer with the
 * store's ingest as it was before the 2026-12-05 store work
 * (baseline-store-ingest.ts, DuckDB's default checkpoint threshold).
 */
export type DrainImplementation = "current" | "baseline" | "store-before";

export interface DrainRun {
  implementation: DrainImplementation;
  repeat: number;
  rowsPerMessage: number;
  messages: number;
  rows: number;
  batchSize: number;
  seconds: number;
  rowsPerSecond: number;
  messagesPerSecond: number;
  sinkCalls: number;
  batchesPerSinkCallMean: number;
  /** Time inside store.ingest; the rest is fetching, decoding and acking (the loop is serial). */
  sinkSeconds: number;
  sinkShare: number;
  cpu: CpuUse;
}

export interface DrainPlan {
  rowsPerMessage: number;
  agents: number;
  messagesPerAgent: number;
  batchSizes: number[];
  /** Which ingestion code drains (default: today's only). */
  implementations?: DrainImplementation[];
  /** Runs per batch size (the sizes take turns, so slow spells of the machine spread over all of them). */
  repeats: number;
}

/** The store as it was: its staging tables, DuckDB's default checkpoint threshold. */
async function prepareBefore(c: Parameters<typeof prepareBeforeStaging>[0]): Promise<void> {
  await prepareBeforeStaging(c);
  await c.run("RESET checkpoint_threshold");
}

async function prefill(nc: NatsConnection, colonyId: string, plan: DrainPlan): Promise<void> {
  const js = jetstream(nc);
  const baseMs = Math.floor(Date.now() / minute) * minute - 23 * 60 * minute;
  for (let a = 0; a < plan.agents; a++) {
    const agentId = `drain-${a}`;
    const subject = telemetrySubject(colonyId, agentId);
    const payloads = buildPayloads({ messagesPerAgent: plan.messagesPerAgent, rowsPerMessage: plan.rowsPerMessage, baseMs }, a);
    for (let i = 0; i < payloads.length; i += 200) {
      await Promise.all(
        payloads.slice(i, i + 200).map((metrics, j) => {
          const batch: TelemetryBatch = create(TelemetryBatchSchema, {
            batchId: `${agentId}-${i + j}`,
            agentId,
            serviceName: `drain-svc-${a}`,
            createdAt: timestampFromDate(new Date()),
            metrics,
          });
          const h = headers();
          h.set("Nats-Msg-Id", batch.batchId);
          return js.publish(subject, toBinary(TelemetryBatchSchema, batch), { headers: h, timeout: 10_000 });
        }),
      );
    }
  }
}

/** Runs every plan; each gets its own stream (colony id), filled once and drained once per batch size. */
export async function consumerDrain(plans: DrainPlan[], log: (msg: string) => void): Promise<DrainRun[]> {
  const dir = await mkdtemp(join(tmpdir(), "coral-bench-drain-"));
  const nats = await startManagedNats({ dataDir: join(dir, "nats-data"), port: 0 });
  const { user, password, inboxPrefix } = nats.colonyCredentials;
  const nc = await connect({ servers: nats.url, user, pass: password, inboxPrefix, name: "bench-drain" });
  const runs: DrainRun[] = [];
  try {
    for (const [p, plan] of plans.entries()) {
      const colonyId = `drain${p}`;
      await ensureTelemetryStream(await jetstreamManager(nc), colonyId);
      const t = performance.now();
      await prefill(nc, colonyId, plan);
      const messages = plan.agents * plan.messagesPerAgent;
      const rows = messages * plan.rowsPerMessage;
      log(`drain: stream ${colonyId} holds ${messages.toLocaleString("en-US")} messages × ${plan.rowsPerMessage} rows (filled in ${((performance.now() - t) / 1000).toFixed(1)} s)`);
      const implementations = plan.implementations ?? ["current"];
      const order = Array.from({ length: plan.repeats }, (_, repeat) => plan.batchSizes.flatMap((batchSize) => implementations.map((implementation) => ({ repeat, batchSize, implementation })))).flat();
      for (const { repeat, batchSize, implementation } of order) {
        const storeFile = join(dir, `${colonyId}-${batchSize}-${implementation}-${repeat}.duckdb`);
        const store = await openStore(storeFile);
        if (implementation === "store-before") await store.write((c) => prepareBefore(c));
        const ingest = (b: TelemetryBatch[]) => (implementation === "store-before" ? store.write((c) => ingestBefore(c, b)) : store.ingest(b));
        let committed = 0;
        let sinkMs = 0;
        let sinkCalls = 0;
        let batches = 0;
        const cpu0 = await cpuSnapshot({ "nats-server": nats.pid });
        const t0 = performance.now();
        let tEnd = 0;
        const start = implementation === "baseline" ? startBaselineIngestion : startIngestion;
        const ingestion = start({
          nc,
          colonyId,
          batchSize,
          durableName: `bench-drain-${batchSize}-${implementation}-${repeat}`,
          sink: async (b: TelemetryBatch[]) => {
            const s = performance.now();
            const result = await ingest(b);
            const e = performance.now();
            sinkMs += e - s;
            sinkCalls++;
            batches += b.length;
            committed += result.metricRows;
            if (committed >= rows) tEnd = e;
            return result;
          },
        });
        try {
          await pollUntil(() => (committed >= rows ? true : undefined), { what: "the drain", timeoutMs: 120_000, intervalMs: 5 }).catch((err: unknown) => {
            if (!(err instanceof PollTimeoutError)) throw err;
            throw new Error(`drain of ${colonyId} at batch size ${batchSize} timed out (${committed} of ${rows} rows)`);
          });
        } finally {
          await ingestion.stop();
          await store.close();
        }
        const cpu = cpuBetween(cpu0, await cpuSnapshot({ "nats-server": nats.pid }), "colony (node)");
        const seconds = (tEnd - t0) / 1000;
        await rm(storeFile, { force: true });
        await rm(`${storeFile}.wal`, { force: true });
        const run: DrainRun = {
          implementation,
          repeat,
          rowsPerMessage: plan.rowsPerMessage,
          messages,
          rows,
          batchSize,
          seconds: round(seconds, 2),
          rowsPerSecond: Math.round(rows / seconds),
          messagesPerSecond: Math.round(messages / seconds),
          sinkCalls,
          batchesPerSinkCallMean: round(batches / sinkCalls, 1),
          sinkSeconds: round(sinkMs / 1000, 2),
          sinkShare: round(sinkMs / (tEnd - t0), 2),
          cpu,
        };
        runs.push(run);
        log(`drain #${repeat + 1} (${implementation}): ${plan.rowsPerMessage} rows/message, consumer batch size ${batchSize}: ${run.rowsPerSecond.toLocaleString("en-US")} rows/s (${Math.round(run.sinkShare * 100)} % in store.ingest, other processes ${run.cpu.other} cores)`);
      }
    }
  } finally {
    await nc.drain().catch(() => {});
    await nats.stop();
    await rm(dir, { recursive: true, force: true });
  }
  return runs;
}
