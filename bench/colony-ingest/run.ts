// Colony ingest benchmark. Prints tables and writes bench/results/colony-ingest-<date>T<time>Z.json.
//
//   node --conditions=coral-source --import tsx bench/colony-ingest/run.ts [--agents 10] [--messages 1000]
//     [--rows 100] [--window 50] [--query-agents 50] [--query-metrics 5] [--calls 200] [--repeat 3]
//     [--poison-every 100] [--ingest-only]
//
// 1. Ingest, end to end: a real colony (temp project after `coral init`; the
//    colony runtime in this process with its own nats-server and DuckDB file).
//    --agents synthetic agents enroll over Connect (invitation, own key) and
//    heartbeat, then each publishes --messages TelemetryBatch protobufs of
//    --rows metric summaries (distinct keys) to JetStream with Nats-Msg-Id,
//    --window publishes in flight per agent (each window's acks awaited).
//    Measured: first publish → commit of the last row. The store's ingest()
//    is wrapped here (no code change) to time every call the colony's
//    ingestion consumer makes. Variants:
//      A. agents in a separate process, batches encoded beforehand and their
//         bytes published, as the real agent's outbox does (the main figure:
//         the median of --repeat runs, each on a fresh colony);
//      P. as A, but 1 in --poison-every batches is poison (bad details_json,
//         a count of 2^64-1, a metric without timestamp, an event without
//         type, in turn): every one must be set aside, every good row stored.
//         A and P take turns, so each P run pairs with the A run before it;
//      B. agents in a separate process, SyntheticAgent.publish (encodes each
//         batch when publishing);
//      C. as B, but the agents share the colony's process.
//    After A #1, the DuckDB-only rate: the same store's ingest() called directly
//    with pre-built batches, 500 per call (and 100, 10, 1 to compare).
// 1b. Consumer drain (drain.ts): the ingestion code alone emptying a pre-filled
//    stream into a fresh store; today's code and the code before issue 17
//    (baseline-ingestion.ts) take turns on the same stream (--repeat runs each,
//    median reported), and so does today's consumer with the store's ingest as
//    it was before 2026-12-05 ("store-before", baseline-store-ingest.ts).
//    Decoding is timed on its own, before and today.
// 2. Query latency: a second colony, --query-agents agents registered for real
//    and heartbeating, 24 h of 1-minute summaries for --query-metrics metrics
//    each (loaded through store.ingest), one rollup, then --calls sequential
//    calls each of GetStatus and QueryMetrics through the Connect API (JSON,
//    like the coral CLI; the client runs in the colony's process, so its
//    decoding counts in the latency), plus binary and store-only comparisons.
//    --ingest-only skips B, C, the direct sweep and this part.
//
// Other work on the machine skews everything: the run measures and reports
// the CPU other processes used before and during each phase.
// Exits non-zero only when something breaks, never because a target is missed.
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { pollUntil } from "@coral/common/async";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { TelemetryBatchSchema, type MetricSummary, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import type { RunningColony } from "@coral/colony";
import type { IngestResult } from "@coral/colony/store";
import { colonyApi, createTestProject } from "../../tests/helpers/colony.ts";
import { SyntheticAgent } from "../../tests/helpers/synthetic-agent.ts";
import { decodeTelemetryMessage, telemetrySubject } from "@coral/colony/nats";
import { consumerDrain, type DrainRun } from "./drain.ts";
import { childProcesses, cpuBetween, cpuSnapshot, loadAverage, machineInfo, median, round, sleep, summarize, table, type CpuUse, type LatencySummary } from "./lib.ts";
import { buildPayloads, minute, poisonPerAgent, startPublishers, summary, type PublisherConfig, type PublisherMessage, type Publishers } from "./workload.ts";
import { positive } from "../args.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
// Issue 17: at or above the median before it (84,000), at least 100,000, and < 10 % lost to 1 % poison batches.
const target = { ingestRowsPerSecond: 100_000, previousMedianRowsPerSecond: 84_000, poisonMaxDrop: 0.1, p95Ms: 50 };
const publisherScript = join(repoRoot, "bench/colony-ingest/publisher.ts");

const { values: args } = parseArgs({
  options: {
    agents: { type: "string", default: "10" },
    messages: { type: "string", default: "1000" },
    rows: { type: "string", default: "100" },
    window: { type: "string", default: "50" },
    "query-agents": { type: "string", default: "50" },
    "query-metrics": { type: "string", default: "5" },
    calls: { type: "string", default: "200" },
    repeat: { type: "string", default: "3" },
    "poison-every": { type: "string", default: "100" },
    /** Only the end-to-end A/P runs and the consumer drain (no B, C, direct sweep or queries). */
    "ingest-only": { type: "boolean", default: false },
  },
});


const options = {
  agents: positive("agents", args.agents),
  messagesPerAgent: positive("messages", args.messages),
  rowsPerMessage: positive("rows", args.rows),
  window: positive("window", args.window),
  queryAgents: positive("query-agents", args["query-agents"]),
  queryMetrics: positive("query-metrics", args["query-metrics"]),
  calls: positive("calls", args.calls),
  repeat: positive("repeat", args.repeat),
  poisonEvery: positive("poison-every", args["poison-every"]),
  ingestOnly: args["ingest-only"] ?? false,
};
if (options.messagesPerAgent > 1380) throw new Error("--messages: at most 1380 (one minute each, all inside the last 24 h)");

const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

async function countRows(colony: RunningColony, table: "metric_summaries" | "dead_letters"): Promise<number> {
  const reader = await colony.store.read((conn) => conn.runAndReadAll(`select count(*) as n from ${table}`));
  return Number(reader.getRowObjectsJS()[0]?.n ?? 0);
}

const countMetricRows = (colony: RunningColony) => countRows(colony, "metric_summaries");

async function waitUntil(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number, intervalMs = 10): Promise<void> {
  await pollUntil(async () => ((await check()) ? true : undefined), { what, timeoutMs, intervalMs, onError: "throw" });
}

// --------------------------------------------------------- 1. ingest throughput

type AgentsWhere = "separate process" | "colony process";

interface Variant {
  where: AgentsWhere;
  encoding: PublisherConfig["encoding"];
  /** Every poisonEvery-th message of each agent is a poison batch (0: none). */
  poisonEvery?: number;
}

const variantName = (v: Variant) =>
  `agents in ${v.where}, ${v.encoding === "outbox" ? "pre-encoded (outbox)" : "SyntheticAgent.publish"}${v.poisonEvery ? `, 1 in ${v.poisonEvery} batches poison` : ""}`;

interface SinkCall {
  startMs: number;
  endMs: number;
  batches: number;
  metricRows: number;
}

interface DirectRun {
  batchesPerCall: number;
  rowsPerBatch: number;
  calls: number;
  rows: number;
  seconds: number;
  rowsPerSecond: number;
  msPerCallMean: number;
  /** Share of the time the main thread was busy (the rest is DuckDB working off-thread). */
  eventLoopUtilization: number;
}

interface EndToEnd {
  /** "A #1", "B", ... */
  label: string;
  variant: string;
  agentsIn: AgentsWhere;
  encoding: PublisherConfig["encoding"];
  agents: number;
  messages: number;
  rowsPerMessage: number;
  rows: number;
  /** Poison batches sent (and set aside); their messages carry no rows. */
  poisonMessages: number;
  deadLetters: number;
  payloadBytesPerMessage: number;
  window: number;
  registerSeconds: number;
  publishSeconds: number;
  publishMessagesPerSecond: number;
  endToEndSeconds: number;
  endToEndRowsPerSecond: number;
  firstCommitMs: number;
  rowsCountedInDuckDB: number;
  sinkCalls: number;
  batchesPerSinkCall: { mean: number; min: number; max: number };
  sinkBusySeconds: number;
  sinkBusyShare: number;
  sinkRowsPerBusySecond: number;
  /** Event-loop utilisation of the colony's process (main thread) over the window. */
  colonyEventLoopUtilization: number;
  cpu: CpuUse;
  loadAverage1m: { before: number; after: number };
  sinkTimeline: Array<{ startMs: number; endMs: number; batches: number }>;
  timeline: Array<{ tMs: number; acked: number; committedRows: number }>;
}

async function directIngest(colony: RunningColony, batchesPerCall: number, calls: number, rowsPerBatch: number, tag: string): Promise<DirectRun> {
  // Pre-built outside the timing; one service per call keeps every key distinct.
  const base = Math.floor(Date.now() / minute) * minute - 22 * 60 * minute;
  const groups: TelemetryBatch[][] = [];
  for (let c = 0; c < calls; c++) {
    const group: TelemetryBatch[] = [];
    for (let b = 0; b < batchesPerCall; b++) {
      const at = new Date(base + (b % 1200) * minute);
      const metrics = Array.from({ length: rowsPerBatch }, (_, r) => summary(`m${r}_${Math.floor(b / 1200)}`, at, r + b));
      group.push(create(TelemetryBatchSchema, { batchId: `${tag}-c${c}-b${b}`, agentId: `${tag}-agent-${c}`, serviceName: `${tag}-svc-${c}`, createdAt: timestampFromDate(new Date()), metrics }));
    }
    groups.push(group);
  }
  let rows = 0;
  const elu0 = performance.eventLoopUtilization();
  const t0 = performance.now();
  for (const group of groups) rows += (await colony.store.ingest(group)).metricRows;
  const ms = performance.now() - t0;
  const elu = performance.eventLoopUtilization(elu0).utilization;
  const expected = batchesPerCall * calls * rowsPerBatch;
  if (rows !== expected) throw new Error(`direct ingest stored ${rows} rows, expected ${expected}`);
  return { batchesPerCall, rowsPerBatch, calls, rows, seconds: round(ms / 1000, 2), rowsPerSecond: Math.round((rows / ms) * 1000), msPerCallMean: round(ms / calls, 1), eventLoopUtilization: round(elu, 2) };
}

/** The synthetic agents, registered and connected; go() publishes everything and resolves when all is acked. */
interface RunningPublishers extends Publishers {
  pid: number | undefined;
}

async function inProcessPublishers(config: PublisherConfig): Promise<RunningPublishers> {
  return { pid: undefined, ...(await startPublishers(config)) };
}

async function separateProcessPublishers(config: PublisherConfig): Promise<RunningPublishers> {
  const child = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", publisherScript, JSON.stringify(config)], { cwd: repoRoot, stdio: ["pipe", "pipe", "pipe"] });
  const stderr: string[] = [];
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => stderr.push(chunk));
  const exited = new Promise<number | null>((done) => child.once("exit", (code) => done(code)));
  const failure = () => new Error(`the publisher process exited early: ${stderr.join("").trim().slice(-2000) || "(no output)"}`);
  let acked = 0;
  let ready!: (m: { payloadBytes: number }) => void;
  let done!: () => void;
  const isReady = new Promise<{ payloadBytes: number }>((r) => (ready = r));
  const isDone = new Promise<void>((r) => (done = r));
  createInterface({ input: child.stdout }).on("line", (line) => {
    const m = JSON.parse(line) as PublisherMessage;
    if (m.type === "ready") ready(m);
    else {
      acked = m.acked;
      if (m.type === "done") done();
    }
  });
  const early = exited.then(() => {
    throw failure();
  });
  early.catch(() => {});
  const { payloadBytes } = await Promise.race([isReady, early]);
  return {
    pid: child.pid,
    payloadBytes,
    acked: () => acked,
    async go() {
      child.stdin.write("go\n");
      await Promise.race([isDone, early]);
    },
    async close() {
      child.stdin.end();
      if (child.exitCode === null) {
        const code = await Promise.race([exited, sleep(10_000).then(() => "timeout" as const)]);
        if (code === "timeout") child.kill("SIGKILL");
      }
    },
  };
}

async function ingestEndToEnd(variant: Variant, afterwards?: (colony: RunningColony) => Promise<void>): Promise<EndToEnd> {
  const { agents: agentCount, messagesPerAgent, rowsPerMessage, window } = options;
  await using project = await createTestProject({ app: "bench" });
  const colony = await project.start();
  const natsPid = (await childProcesses(process.pid)).find((p) => p.comm.startsWith("nats-server"))?.pid;

  // Time every ingest the colony makes: store.ingest() and the ingestion's store-with-dead-letters
  // both run through store.write(); the calls that answer an IngestResult are the ingests.
  const sinkCalls: SinkCall[] = [];
  let committedRows = 0;
  const original = colony.store.write.bind(colony.store);
  colony.store.write = async <T>(fn: Parameters<RunningColony["store"]["write"]>[0]): Promise<T> => {
    const startMs = performance.now();
    const result = (await original(fn)) as T;
    const rows = (result as Partial<IngestResult> | null)?.metricRows;
    if (typeof rows === "number" && rows > 0) {
      sinkCalls.push({ startMs, endMs: performance.now(), batches: (result as IngestResult).stored, metricRows: rows });
      committedRows += rows;
    }
    return result;
  };

  const config: PublisherConfig = {
    colonyUrl: colony.url,
    localToken: project.localToken,
    agents: Array.from({ length: agentCount }, (_, a) => ({ agentId: `ingest-${a}`, serviceName: `ingest-svc-${a}`, port: 9000 + a })),
    messagesPerAgent,
    rowsPerMessage,
    window,
    baseMs: Math.floor(Date.now() / minute) * minute - 23 * 60 * minute,
    encoding: variant.encoding,
    poisonEvery: variant.poisonEvery ?? 0,
  };
  const poisonMessages = agentCount * poisonPerAgent(config);
  const mode = variantName(variant);
  const tReg = performance.now();
  const publishers = variant.where === "separate process" ? await separateProcessPublishers(config) : await inProcessPublishers(config);
  try {
    const registerSeconds = (performance.now() - tReg) / 1000;
    log(`[${mode}] ${agentCount} agents registered and connected in ${registerSeconds.toFixed(1)} s`);
    const expectedRows = (agentCount * messagesPerAgent - poisonMessages) * rowsPerMessage;
    const before = await countMetricRows(colony);
    await sleep(1000); // let registration's after-effects settle

    const load0 = await loadAverage();
    const pids = { "nats-server": natsPid, ...(publishers.pid ? { publisher: publishers.pid } : {}) };
    const cpu0 = await cpuSnapshot(pids);
    const elu0 = performance.eventLoopUtilization();
    const t0 = performance.now();
    const timeline: EndToEnd["timeline"] = [];
    const sampler = setInterval(() => timeline.push({ tMs: Math.round(performance.now() - t0), acked: publishers.acked(), committedRows }), 100);
    await publishers.go();
    const publishedAt = performance.now();
    log(`[${mode}] published ${fmt(agentCount * messagesPerAgent)} messages (${fmt(expectedRows)} rows) in ${((publishedAt - t0) / 1000).toFixed(2)} s; waiting for the store`);
    await waitUntil("every row to be committed", () => committedRows >= expectedRows, 180_000, 5);
    clearInterval(sampler);
    const elu = performance.eventLoopUtilization(elu0);
    const cpu1 = await cpuSnapshot(pids);
    const load1 = await loadAverage();
    const lastCommit = Math.max(...sinkCalls.map((c) => c.endMs));
    const firstCommit = Math.min(...sinkCalls.map((c) => c.endMs));
    const counted = (await countMetricRows(colony)) - before;
    if (counted !== expectedRows) throw new Error(`DuckDB holds ${counted} new metric rows, expected ${expectedRows}`);
    // Every poison batch set aside (recorded in the dead-letter table), none stored.
    let deadLetters = 0;
    await waitUntil(
      `${poisonMessages} dead letters`,
      async () => (deadLetters = await countRows(colony, "dead_letters")) >= poisonMessages,
      60_000,
      50,
    );
    if (deadLetters !== poisonMessages) throw new Error(`${deadLetters} dead letters, expected ${poisonMessages}`);

    const e2eMs = lastCommit - t0;
    const busyMs = sinkCalls.reduce((s, c) => s + (c.endMs - c.startMs), 0);
    const perCall = sinkCalls.map((c) => c.batches);
    const figures: EndToEnd = {
      label: "",
      variant: mode,
      agentsIn: variant.where,
      encoding: variant.encoding,
      agents: agentCount,
      messages: agentCount * messagesPerAgent,
      rowsPerMessage,
      rows: expectedRows,
      poisonMessages,
      deadLetters,
      payloadBytesPerMessage: publishers.payloadBytes,
      window,
      registerSeconds: round(registerSeconds, 2),
      publishSeconds: round((publishedAt - t0) / 1000, 2),
      publishMessagesPerSecond: Math.round((agentCount * messagesPerAgent) / ((publishedAt - t0) / 1000)),
      endToEndSeconds: round(e2eMs / 1000, 2),
      endToEndRowsPerSecond: Math.round(expectedRows / (e2eMs / 1000)),
      firstCommitMs: Math.round(firstCommit - t0),
      rowsCountedInDuckDB: counted,
      sinkCalls: sinkCalls.length,
      batchesPerSinkCall: { mean: round(perCall.reduce((s, v) => s + v, 0) / perCall.length, 1), min: Math.min(...perCall), max: Math.max(...perCall) },
      sinkBusySeconds: round(busyMs / 1000, 2),
      sinkBusyShare: round(busyMs / e2eMs, 2),
      sinkRowsPerBusySecond: Math.round(expectedRows / (busyMs / 1000)),
      colonyEventLoopUtilization: round(elu.utilization, 2),
      cpu: cpuBetween(cpu0, cpu1, variant.where === "separate process" ? "colony (node)" : "colony + agents (node)"),
      loadAverage1m: { before: load0, after: load1 },
      sinkTimeline: sinkCalls.map((c) => ({ startMs: Math.round(c.startMs - t0), endMs: Math.round(c.endMs - t0), batches: c.batches })),
      timeline,
    };
    log(`[${mode}] end to end: ${fmt(figures.endToEndRowsPerSecond)} rows/s over ${figures.endToEndSeconds} s (${figures.sinkCalls} sink calls)`);
    colony.store.write = original;
    await afterwards?.(colony);
    return figures;
  } finally {
    await publishers.close();
  }
}

interface DecodeCost {
  /** The reflective fromBinary the colony used before issue 17. */
  legacy: boolean;
  rowsPerMessage: number;
  messages: number;
  microsPerMessage: number;
  microsPerRow: number;
}

/** What the consumer's decode costs on the main thread: today's decodeTelemetryMessage (decode + validation) or the old fromBinary. */
function decodeCost(rowsPerMessage: number, messages: number, legacy = false): DecodeCost {
  const colonyId = "benchdecode";
  const payloads = buildPayloads({ messagesPerAgent: messages, rowsPerMessage, baseMs: Date.now() - (messages + 60) * minute }, 0);
  const subject = telemetrySubject(colonyId, "decode-0");
  const encoded = payloads.map((metrics, i) =>
    toBinary(TelemetryBatchSchema, create(TelemetryBatchSchema, { batchId: `decode-0-${i}`, agentId: "decode-0", serviceName: "decode", createdAt: timestampFromDate(new Date()), metrics })),
  );
  const decode = legacy
    ? (data: Uint8Array) => fromBinary(TelemetryBatchSchema, data).agentId !== "decode-0"
    : (data: Uint8Array) => "error" in decodeTelemetryMessage(colonyId, subject, data);
  for (const data of encoded.slice(0, 100)) decode(data); // warm-up
  const t0 = performance.now();
  for (const data of encoded) if (decode(data)) throw new Error("decode failed");
  const us = ((performance.now() - t0) * 1000) / messages;
  return { legacy, rowsPerMessage, messages, microsPerMessage: Math.round(us), microsPerRow: round(us / rowsPerMessage, 2) };
}

async function directIngestSweep(colony: RunningColony, out: DirectRun[]): Promise<void> {
  // DuckDB only: the same store, called directly with pre-built batches.
  for (const [perCallBatches, calls] of [
    [500, 6],
    [100, 10],
    [10, 40],
    [1, 150],
  ] as const) {
    const run = await directIngest(colony, perCallBatches, calls, options.rowsPerMessage, `direct${perCallBatches}`);
    out.push(run);
    log(`direct ingest, ${perCallBatches} batches/call: ${fmt(run.rowsPerSecond)} rows/s`);
  }
}

// ------------------------------------------------------------ 2. query latency

interface QueryFigures {
  agents: number;
  metricsPerAgent: number;
  rowsLoaded: number;
  registerSeconds: number;
  loadSeconds: number;
  loadRowsPerSecond: number;
  rollupSeconds: number;
  rollup: Record<string, number>;
  heartbeats: number;
  /** Cores busy while the calls were measured. */
  cpu: CpuUse;
  latency: Array<{ name: string; required: boolean; points: number; summary: LatencySummary }>;
}

async function queryBenchmark(): Promise<QueryFigures> {
  const { queryAgents, queryMetrics, calls } = options;
  await using project = await createTestProject({ app: "bench-query" });
  const colony = await project.start();
  // colonyApi speaks Connect with JSON, as the coral CLI does; the binary client shows what the encoding costs.
  const api = colonyApi(colony.url, project.localToken);
  const bearer: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${project.localToken}`);
    return next(req);
  };
  const binaryApi = createClient(ColonyService, createConnectTransport({ baseUrl: colony.url, httpVersion: "1.1", useBinaryFormat: true, interceptors: [bearer] }));
  const metricNames = ["http_latency_ms", "cpu_percent", "memory_bytes", "requests_per_s", "errors_per_s", ...Array.from({ length: Math.max(0, queryMetrics - 5) }, (_, i) => `extra_${i}`)].slice(0, queryMetrics);

  const agents = Array.from(
    { length: queryAgents },
    (_, a) => new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: `q-${a}`, serviceName: `svc-${String(a).padStart(2, "0")}`, port: 10_000 + a }),
  );
  let heartbeats = 0;
  let stopHeartbeats = false;
  let heartbeatLoop: Promise<void> = Promise.resolve();
  try {
    const tReg = performance.now();
    for (const agent of agents) {
      await agent.register();
      await agent.heartbeat();
      heartbeats++;
    }
    const registerSeconds = (performance.now() - tReg) / 1000;
    log(`registered ${queryAgents} agents in ${registerSeconds.toFixed(1)} s`);
    // Heartbeats keep going (every agent every 10 s, spread out) during the load and the measurements.
    heartbeatLoop = (async () => {
      while (!stopHeartbeats) {
        for (const agent of agents) {
          if (stopHeartbeats) break;
          await agent.heartbeat();
          heartbeats++;
          await sleep(10_000 / agents.length);
        }
      }
    })();

    // 24 h of 1-minute summaries ending at the last complete minute; one batch per agent-hour.
    const end = Math.floor(Date.now() / minute) * minute - minute;
    const first = end - 1439 * minute;
    const batches: TelemetryBatch[] = [];
    agents.forEach((agent, a) => {
      for (let h = 0; h < 24; h++) {
        const metrics: MetricSummary[] = [];
        for (let m = 0; m < 60; m++) {
          const at = new Date(first + (h * 60 + m) * minute);
          metricNames.forEach((name, k) => metrics.push(summary(name, at, a + h + m + k)));
        }
        batches.push(create(TelemetryBatchSchema, { batchId: `load-${a}-${h}`, agentId: agent.options.agentId, serviceName: agent.options.serviceName, createdAt: timestampFromDate(new Date()), metrics }));
      }
    });
    const tLoad = performance.now();
    let rowsLoaded = 0;
    for (let i = 0; i < batches.length; i += 100) rowsLoaded += (await colony.store.ingest(batches.slice(i, i + 100))).metricRows;
    const loadSeconds = (performance.now() - tLoad) / 1000;
    log(`loaded ${fmt(rowsLoaded)} 1m rows in ${loadSeconds.toFixed(1)} s`);
    const tRollup = performance.now();
    const rolled = await colony.store.rollup(new Date());
    const rollupSeconds = (performance.now() - tRollup) / 1000;
    log(`rollup: ${JSON.stringify(rolled)} in ${rollupSeconds.toFixed(1)} s`);

    const natsPid = (await childProcesses(process.pid)).find((p) => p.comm.startsWith("nats-server"))?.pid;
    const cpu0 = await cpuSnapshot({ "nats-server": natsPid });
    const latency: QueryFigures["latency"] = [];
    async function measure(name: string, required: boolean, call: (i: number) => Promise<number>): Promise<void> {
      for (let i = 0; i < 10; i++) await call(i); // warm-up
      const samples: number[] = [];
      let points = 0;
      for (let i = 0; i < calls; i++) {
        const t = performance.now();
        points = await call(i);
        samples.push(performance.now() - t);
      }
      latency.push({ name, required, points, summary: summarize(samples) });
      log(`${name}: p50 ${latency.at(-1)!.summary.p50Ms} ms, p95 ${latency.at(-1)!.summary.p95Ms} ms`);
    }
    const service = (i: number) => agents[(i * 7) % agents.length]!.options.serviceName;
    const ago = (ms: number) => timestampFromDate(new Date(Date.now() - ms));
    const now = () => timestampFromDate(new Date());
    const pointsOf = (r: { series: Array<{ points: unknown[] }> }) => r.series.reduce((n, s) => n + s.points.length, 0);

    await measure("GetStatus", true, async () => {
      const status = await api.getStatus({});
      if (status.services.length !== queryAgents) throw new Error(`GetStatus listed ${status.services.length} services, expected ${queryAgents}`);
      return status.services.length;
    });
    await measure("QueryMetrics 24h, 1 metric (auto → 5m)", true, async (i) => {
      const r = await api.queryMetrics({ service: service(i), metricName: metricNames[0]!, since: ago(24 * 60 * minute), until: now() });
      if (r.series[0]?.interval !== "5m") throw new Error(`expected the 5m interval, got ${r.series[0]?.interval}`);
      return pointsOf(r);
    });
    await measure("QueryMetrics 1h, 1 metric, interval 1m", true, async (i) => {
      const r = await api.queryMetrics({ service: service(i), metricName: metricNames[0]!, since: ago(60 * minute), until: now(), interval: "1m" });
      return pointsOf(r);
    });
    await measure(`QueryMetrics 24h, all ${queryMetrics} metrics (auto → 5m)`, false, async (i) => {
      const r = await api.queryMetrics({ service: service(i), since: ago(24 * 60 * minute), until: now() });
      return pointsOf(r);
    });
    await measure("QueryMetrics 24h, 1 metric (auto → 5m), binary protobuf", false, async (i) => {
      const r = await binaryApi.queryMetrics({ service: service(i), metricName: metricNames[0]!, since: ago(24 * 60 * minute), until: now() });
      return pointsOf(r);
    });
    await measure("store.queryMetrics 24h, 1 metric, 5m (no API)", false, async (i) => {
      const series = await colony.store.queryMetrics({ service: service(i), metricName: metricNames[0]!, since: new Date(Date.now() - 24 * 60 * minute), until: new Date(), interval: "5m" });
      return series.reduce((n, s) => n + s.points.length, 0);
    });

    const cpu = cpuBetween(cpu0, await cpuSnapshot({ "nats-server": natsPid }), "colony + client (node)");
    return {
      agents: queryAgents,
      metricsPerAgent: queryMetrics,
      rowsLoaded,
      registerSeconds: round(registerSeconds, 2),
      loadSeconds: round(loadSeconds, 2),
      loadRowsPerSecond: Math.round(rowsLoaded / loadSeconds),
      rollupSeconds: round(rollupSeconds, 2),
      rollup: { ...rolled },
      heartbeats,
      cpu,
      latency,
    };
  } finally {
    stopHeartbeats = true;
    await heartbeatLoop.catch((err: unknown) => log(`heartbeat loop failed: ${String(err)}`));
  }
}

// ---------------------------------------------------------------------- main

const startedAt = new Date();
const machine = await machineInfo();
log(`machine: ${machine.nproc} CPUs (${machine.cpuModel}), ${machine.memGiB} GiB, Node ${machine.node}, ${machine.natsServer}`);
const quiet0 = await cpuSnapshot({});
await sleep(3000);
const background = cpuBetween(quiet0, await cpuSnapshot({}), "this process");
log(`background load before the run: ${background.other} cores busy (load average ${await loadAverage()})`);
if (background.other > 0.2) log(`WARNING: other processes keep ${background.other} of ${machine.nproc} cores busy; every figure below is pessimistic`);
const direct: DirectRun[] = [];
const endToEnd: EndToEnd[] = [];
// A (clean) and P (1 in --poison-every batches poison) take turns, each on a fresh colony, so slow spells of the shared machine hit both.
const clean: Variant = { where: "separate process", encoding: "outbox" };
const poisoned: Variant = { ...clean, poisonEvery: options.poisonEvery };
for (let r = 0; r < options.repeat; r++) {
  const a = await ingestEndToEnd(clean, r === 0 && !options.ingestOnly ? (colony) => directIngestSweep(colony, direct) : undefined);
  a.label = `A #${r + 1}`;
  const p = await ingestEndToEnd(poisoned);
  p.label = `P #${r + 1}`;
  endToEnd.push(a, p);
}
if (!options.ingestOnly) {
  const b = await ingestEndToEnd({ where: "separate process", encoding: "synthetic-agent" });
  b.label = "B";
  const c = await ingestEndToEnd({ where: "colony process", encoding: "synthetic-agent" });
  c.label = "C";
  endToEnd.push(b, c);
}
const aRuns = endToEnd.filter((e) => e.label.startsWith("A")).map((e) => e.endToEndRowsPerSecond);
const pRuns = endToEnd.filter((e) => e.label.startsWith("P")).map((e) => e.endToEndRowsPerSecond);
const aMedian = Math.round(median(aRuns));
const pMedian = Math.round(median(pRuns));
// Paired: each P run against the A run just before it.
const pairedRatios = pRuns.map((p, i) => round(p / aRuns[i]!, 3));
const drain: DrainRun[] = await consumerDrain(
  [
    { rowsPerMessage: options.rowsPerMessage, agents: options.agents, messagesPerAgent: options.messagesPerAgent, batchSizes: [500, 1000], implementations: ["baseline", "store-before", "current"], repeats: options.repeat },
    { rowsPerMessage: 10, agents: options.agents, messagesPerAgent: 600, batchSizes: [500], implementations: ["baseline", "current"], repeats: options.repeat },
  ],
  log,
);
const decode = [decodeCost(options.rowsPerMessage, 2000, true), decodeCost(options.rowsPerMessage, 2000), decodeCost(10, 5000, true), decodeCost(10, 5000)];
for (const d of decode) log(`decode (${d.legacy ? "fromBinary, before" : "today, with validation"}): ${d.microsPerMessage} µs per ${d.rowsPerMessage}-row message (${d.microsPerRow} µs/row)`);
const query = options.ingestOnly ? undefined : await queryBenchmark();

console.log("\nIngest, end to end (synthetic agents → JetStream → colony consumer → DuckDB)\n");
const cpuText = (c: CpuUse) =>
  Object.entries(c)
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
console.log(
  table(
    ["measure", ...endToEnd.map((e) => e.label)],
    [
      ["agents × messages × rows", ...endToEnd.map((e) => `${e.agents} × ${e.messages / e.agents} × ${e.rowsPerMessage} = ${fmt(e.rows)}`)],
      ["poison batches sent / set aside", ...endToEnd.map((e) => `${e.poisonMessages} / ${e.deadLetters}`)],
      ["payload per message (bytes)", ...endToEnd.map((e) => e.payloadBytesPerMessage)],
      ["publish, all acked (s)", ...endToEnd.map((e) => e.publishSeconds)],
      ["publish rate (msg/s)", ...endToEnd.map((e) => e.publishMessagesPerSecond)],
      ["first publish → last row committed (s)", ...endToEnd.map((e) => e.endToEndSeconds)],
      ["END-TO-END METRIC ROWS/S", ...endToEnd.map((e) => e.endToEndRowsPerSecond)],
      ["first commit after (ms)", ...endToEnd.map((e) => e.firstCommitMs)],
      ["consumer sink calls", ...endToEnd.map((e) => e.sinkCalls)],
      ["batches per sink call (mean/min/max)", ...endToEnd.map((e) => `${e.batchesPerSinkCall.mean}/${e.batchesPerSinkCall.min}/${e.batchesPerSinkCall.max}`)],
      ["time inside store.ingest (s)", ...endToEnd.map((e) => `${e.sinkBusySeconds} (${Math.round(e.sinkBusyShare * 100)} %)`)],
      ["rows/s while inside store.ingest", ...endToEnd.map((e) => e.sinkRowsPerBusySecond)],
      ["colony event-loop utilisation", ...endToEnd.map((e) => e.colonyEventLoopUtilization)],
      ["load average (1 min) before → after", ...endToEnd.map((e) => `${e.loadAverage1m.before} → ${e.loadAverage1m.after}`)],
    ],
  ),
);
endToEnd.forEach((e) => console.log(`${e.label}: ${e.variant}; CPU, cores busy: ${cpuText(e.cpu)}`));
console.log("\nDuckDB only (colony.store.ingest, pre-built batches, on the first colony's store after its run)\n");
console.log(
  table(
    ["batches/call", "rows/call", "calls", "rows", "seconds", "ms/call", "rows/s", "main thread busy"],
    direct.map((d) => [d.batchesPerCall, d.batchesPerCall * d.rowsPerBatch, d.calls, d.rows, d.seconds, d.msPerCallMean, d.rowsPerSecond, `${Math.round(d.eventLoopUtilization * 100)} %`]),
  ),
);
console.log(
  `\nConsumer drain: the colony's ingestion (startIngestion → store.ingest) emptying a pre-filled stream, no publishers running; ` +
    `median of ${options.repeat} run(s) per row\n`,
);
const drainKey = (d: DrainRun) => `${d.rowsPerMessage}/${d.batchSize}/${d.implementation}`;
const drainGroups = [...new Set(drain.map(drainKey))].map((key) => drain.filter((d) => drainKey(d) === key));
const drainSummary = drainGroups.map((runs) => {
  const first = runs[0]!;
  return {
    implementation: first.implementation,
    rowsPerMessage: first.rowsPerMessage,
    batchSize: first.batchSize,
    messages: first.messages,
    rows: first.rows,
    runs: runs.length,
    medianRowsPerSecond: Math.round(median(runs.map((r) => r.rowsPerSecond))),
    minRowsPerSecond: Math.min(...runs.map((r) => r.rowsPerSecond)),
    maxRowsPerSecond: Math.max(...runs.map((r) => r.rowsPerSecond)),
    medianMessagesPerSecond: Math.round(median(runs.map((r) => r.messagesPerSecond))),
    batchesPerSinkCallMean: first.batchesPerSinkCallMean,
    medianSinkShare: median(runs.map((r) => r.sinkShare)),
    maxOtherCores: Math.max(...runs.map((r) => r.cpu.other)),
  };
});
console.log(
  table(
    ["ingestion", "rows/message", "consumer batch size", "rows", "batches/sink call", "msg/s", "rows/s (median)", "min", "max", "in store.ingest", "other cores (max)"],
    drainSummary.map((d) => [
      d.implementation,
      d.rowsPerMessage,
      d.batchSize,
      d.rows,
      d.batchesPerSinkCallMean,
      d.medianMessagesPerSecond,
      d.medianRowsPerSecond,
      d.minRowsPerSecond,
      d.maxRowsPerSecond,
      `${Math.round(d.medianSinkShare * 100)} %`,
      d.maxOtherCores,
    ]),
  ),
);
console.log(
  "\nDecoding in the consumer (decodeTelemetryMessage, main thread): " +
    decode.map((d) => `${d.legacy ? "before (fromBinary)" : "today (fast path + validation)"}: ${d.microsPerMessage} µs per ${d.rowsPerMessage}-row message (${d.microsPerRow} µs/row)`).join("; "),
);
if (query) {
  console.log(
    `\nQuery latency (${query.agents} agents heartbeating, ${fmt(query.rowsLoaded)} 1m rows loaded at ${fmt(query.loadRowsPerSecond)} rows/s, ` +
      `rollup ${query.rollupSeconds} s, sequential calls over Connect, ms; CPU: ${cpuText(query.cpu)})\n`,
  );
  console.log(
    table(
      ["call", "points", "calls", "mean", "p50", "p95", "p99", "max"],
      query.latency.map((l) => [l.name, l.points, l.summary.calls, l.summary.meanMs, l.summary.p50Ms, l.summary.p95Ms, l.summary.p99Ms, l.summary.maxMs]),
    ),
  );
}
const ingestMet = aMedian >= target.ingestRowsPerSecond;
const previousMet = aMedian >= target.previousMedianRowsPerSecond;
const poisonDrop = round(1 - pMedian / aMedian, 3);
const poisonMet = poisonDrop < target.poisonMaxDrop;
const requiredQueries = query?.latency.filter((l) => l.required) ?? [];
const queryMet = query ? requiredQueries.every((l) => l.summary.p95Ms < target.p95Ms) : undefined;
console.log(
  `\nTargets: ingest ≥ ${fmt(target.ingestRowsPerSecond)} rows/s end to end (variant A, median): ${ingestMet ? "met" : "NOT met"} (${fmt(aMedian)}; runs ${aRuns.map(fmt).join(", ")}); ` +
    `≥ the previous median ${fmt(target.previousMedianRowsPerSecond)}: ${previousMet ? "met" : "NOT met"}; ` +
    `1 in ${options.poisonEvery} batches poison costs < ${target.poisonMaxDrop * 100} %: ${poisonMet ? "met" : "NOT met"} (P median ${fmt(pMedian)}, drop ${round(poisonDrop * 100, 1)} %; paired P/A ${pairedRatios.join(", ")})` +
    (query ? `; p95 < ${target.p95Ms} ms for GetStatus and single-metric QueryMetrics: ${queryMet ? "met" : "NOT met"} (${requiredQueries.map((l) => l.summary.p95Ms).join(", ")})` : ""),
);

const report = {
  benchmark: "colony-ingest",
  startedAt: startedAt.toISOString(),
  finishedAt: new Date().toISOString(),
  machine,
  backgroundCpuBefore: background,
  options,
  target,
  endToEndVariantAMedianRowsPerSecond: aMedian,
  endToEndVariantPMedianRowsPerSecond: pMedian,
  poisonPairedRatios: pairedRatios,
  endToEnd,
  direct,
  drainSummary,
  drain,
  decode,
  query,
  targetsMet: { ingest: ingestMet, previousMedian: previousMet, poison: poisonMet, queryP95: queryMet },
};
const resultsDir = join(repoRoot, "bench/results");
await mkdir(resultsDir, { recursive: true });
const stamp = startedAt.toISOString().slice(0, 16).replace(/:/g, "");
const file = join(resultsDir, `colony-ingest-${stamp}Z.json`);
await writeFile(file, JSON.stringify(report, null, 2) + "\n");
console.log(`\nwrote ${relative(repoRoot, file)}`);
