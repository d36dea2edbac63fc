// OTLP at the agent (issue 23): how many spans and log records a second the
// agent's OTLP/HTTP endpoint accepts and stores, and how long an export
// waits at a steady 10,000 spans/s.
//
// The agent's side (./agent-side.ts) runs in its own process: the agent's
// OTLP receiver, keep rules and ingest on a real agent store (SQLite file),
// as `coral connect` wires them. This process is the apps' exporters: it
// POSTs pre-encoded ExportTraceServiceRequest / ExportLogsServiceRequest
// protobuf bodies of 512 spans or records (the OpenTelemetry SDKs' default
// batch size) over keep-alive connections, as their OTLP/HTTP exporters do.
// Every trace has 8 spans; 1 trace in 50 has an error; the keep rules keep
// errors, slow spans (none here) and 10 % of the rest, so ≈ 12 % of spans
// are stored.
//
// Phases (each --seconds long, default 60):
//   1. spans, as fast as --senders concurrent exporters (default 4) can send:
//      spans/s accepted, then stored once the keep rules' 5 s wait is over;
//   2. spans at 10,000/s (open loop, ≈ 19.5 requests/s): export latency p50/p99;
//   3. log records, as fast as the senders can: records/s accepted and stored.
// Targets: ≥ 50,000 spans/s accepted and stored; p99 < 100 ms at 10,000
// spans/s; ≥ 50,000 log records/s.
//   node --conditions=coral-source --import tsx bench/otlp/run.ts [--seconds 60] [--senders 4]
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { Agent, request } from "node:http";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create, toBinary } from "@bufbuild/protobuf";
import { ExportLogsServiceRequestSchema } from "@coral/proto/gen/opentelemetry/proto/collector/logs/v1/logs_service_pb";
import { ExportTraceServiceRequestSchema } from "@coral/proto/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb";
import { Status_StatusCode } from "@coral/proto/gen/opentelemetry/proto/trace/v1/trace_pb";
import { positive } from "../args.ts";
import { quantile } from "../load.ts";

const here = dirname(fileURLToPath(import.meta.url));
const { values: args } = parseArgs({ options: { seconds: { type: "string", default: "60" }, senders: { type: "string", default: "4" } } });
const seconds = positive("seconds", args.seconds);
const senders = positive("senders", args.senders);
const log = (m: string) => process.stderr.write(`[bench:otlp] ${m}\n`);
const batchSize = 512;
const spansPerTrace = 8;
const distinctBodies = 64;

interface Stats {
  kind: "stats";
  cpuMs: number;
  rssBytes: number;
  status: {
    receiver: { requests: { traces: number; logs: number }; rejected: number };
    ingest: { sampler: { received: number; kept: number; dropped: number; buffered: number; decidedEarly: number }; spansStored: number; logsReceived: number; logsStored: number; droppedPending: number };
  };
}

const str = (key: string, value: string) => ({ key, value: { value: { case: "stringValue" as const, value } } });
const resource = { attributes: [str("service.name", "bench-api"), str("host.name", "bench")] };

/** One export body of 512 spans: 64 traces of 8 (a server span and its children), 1 trace in 50 failed. */
function spanBody(seed: number): Uint8Array {
  const now = BigInt(Date.now()) * 1_000_000n;
  const spans = [];
  for (let t = 0; t < batchSize / spansPerTrace; t++) {
    const traceId = randomBytes(16);
    const rootId = randomBytes(8);
    const failed = (seed * 64 + t) % 50 === 0;
    for (let s = 0; s < spansPerTrace; s++) {
      const start = now + BigInt(s * 1_000_000);
      spans.push({
        traceId,
        spanId: s === 0 ? rootId : randomBytes(8),
        parentSpanId: s === 0 ? new Uint8Array() : rootId,
        name: s === 0 ? "GET /users/{id}" : `db.query ${s}`,
        kind: s === 0 ? 2 : 3,
        startTimeUnixNano: start,
        endTimeUnixNano: start + 2_000_000n,
        attributes: [str("http.route", "/users/{id}"), str("db.system", "postgresql")],
        status: failed && s === spansPerTrace - 1 ? { code: Status_StatusCode.ERROR, message: "timeout" } : {},
      });
    }
  }
  return toBinary(ExportTraceServiceRequestSchema, create(ExportTraceServiceRequestSchema, { resourceSpans: [{ resource, scopeSpans: [{ scope: { name: "bench" }, spans }] }] }));
}

function logBody(seed: number): Uint8Array {
  const now = BigInt(Date.now()) * 1_000_000n;
  const logRecords = Array.from({ length: batchSize }, (_, n) => ({
    timeUnixNano: now + BigInt(n),
    severityNumber: n % 20 === 0 ? 17 : 9,
    severityText: n % 20 === 0 ? "ERROR" : "INFO",
    body: { value: { case: "stringValue" as const, value: `request ${seed}-${n} served in 2 ms` } },
    attributes: [str("http.route", "/users/{id}")],
    traceId: randomBytes(16),
    spanId: randomBytes(8),
  }));
  return toBinary(ExportLogsServiceRequestSchema, create(ExportLogsServiceRequestSchema, { resourceLogs: [{ resource, scopeLogs: [{ scope: { name: "bench" }, logRecords }] }] }));
}

function post(port: number, path: string, body: Uint8Array, agent: Agent): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method: "POST", agent, headers: { "content-type": "application/x-protobuf", "content-length": body.length } }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

function stats(child: ChildProcess): Promise<Stats> {
  return new Promise((resolve) => {
    const on = (m: Stats) => {
      if (m.kind !== "stats") return;
      child.off("message", on);
      resolve(m);
    };
    child.on("message", on);
    child.send("stats");
  });
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** `senders` exporters, each sending its next body as soon as the last was answered. */
async function closedLoop(port: number, path: string, bodies: Uint8Array[]): Promise<{ requests: number; failed: number; latencies: number[]; seconds: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: senders });
  const latencies: number[] = [];
  let failed = 0;
  let n = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: senders }, async () => {
      while (performance.now() < end) {
        const r = await post(port, path, bodies[n++ % bodies.length]!, agent).catch(() => ({ status: 0, ms: 0 }));
        if (r.status === 200) latencies.push(r.ms);
        else failed++;
      }
    }),
  );
  agent.destroy();
  return { requests: latencies.length, failed, latencies, seconds: (performance.now() - t0) / 1000 };
}

/** `rate` requests a second on schedule, whatever the answers do. */
async function openLoop(port: number, path: string, bodies: Uint8Array[], rate: number): Promise<{ requests: number; failed: number; latencies: number[] }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const latencies: number[] = [];
  let failed = 0;
  const inFlight: Promise<void>[] = [];
  const t0 = performance.now();
  let sent = 0;
  while (performance.now() - t0 < seconds * 1000) {
    const due = Math.floor(((performance.now() - t0) / 1000) * rate);
    for (; sent < due; sent++)
      inFlight.push(
        post(port, path, bodies[sent % bodies.length]!, agent).then(
          (r) => void (r.status === 200 ? latencies.push(r.ms) : failed++),
          () => void failed++,
        ),
      );
    await new Promise((r) => setTimeout(r, 5));
  }
  await Promise.all(inFlight);
  agent.destroy();
  return { requests: latencies.length, failed, latencies };
}

const child = fork(join(here, "agent-side.ts"), [], { execArgv: ["--conditions=coral-source", "--import", "tsx", ...(process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : [])], stdio: ["ignore", "inherit", "inherit", "ipc"] });
const port = await new Promise<number>((resolve, reject) => {
  child.once("message", (m: { kind: string; port: number }) => (m.kind === "ready" ? resolve(m.port) : reject(new Error(String(m)))));
  child.once("exit", (code) => reject(new Error(`the agent side exited with ${code}`)));
});
log(`agent side (pid ${child.pid}) on 127.0.0.1:${port}; ${senders} senders, ${seconds} s per phase, ${batchSize} per request; load average ${loadavg()[0]!.toFixed(2)}`);
const spanBodies = Array.from({ length: distinctBodies }, (_, n) => spanBody(n));
const logBodies = Array.from({ length: distinctBodies }, (_, n) => logBody(n));

try {
  // 1. Spans, as fast as the senders can.
  let before = await stats(child);
  const load1 = loadavg()[0]!;
  const fast = await closedLoop(port, "/v1/traces", spanBodies);
  const acceptedSpans = fast.requests * batchSize;
  await waitUntil("the keep rules to decide and the store to take every kept span", async () => {
    const s = (await stats(child)).status.ingest;
    return s.sampler.buffered === 0 && s.spansStored - before.status.ingest.spansStored >= s.sampler.kept - before.status.ingest.sampler.kept;
  }, 120_000);
  let after = await stats(child);
  const spanPhase = {
    acceptedPerSec: Math.round(acceptedSpans / fast.seconds),
    failed: fast.failed,
    p50Ms: quantile(fast.latencies, 0.5),
    p99Ms: quantile(fast.latencies, 0.99),
    received: after.status.ingest.sampler.received - before.status.ingest.sampler.received,
    kept: after.status.ingest.sampler.kept - before.status.ingest.sampler.kept,
    stored: after.status.ingest.spansStored - before.status.ingest.spansStored,
    droppedPending: after.status.ingest.droppedPending - before.status.ingest.droppedPending,
    decidedEarly: after.status.ingest.sampler.decidedEarly - before.status.ingest.sampler.decidedEarly,
    agentCores: (after.cpuMs - before.cpuMs) / 1000 / fast.seconds,
    agentRssMb: Math.round(after.rssBytes / 1048576),
    loadAverage: [load1, loadavg()[0]!],
  };
  log(`spans, closed loop: ${spanPhase.acceptedPerSec.toLocaleString("en-US")} spans/s accepted (${spanPhase.received} received, ${spanPhase.kept} kept, ${spanPhase.stored} stored, ${spanPhase.droppedPending} dropped waiting for the store), p99 ${spanPhase.p99Ms.toFixed(1)} ms, agent ${spanPhase.agentCores.toFixed(2)} cores`);

  // 2. Spans at 10,000/s.
  before = await stats(child);
  const rate = 10_000 / batchSize;
  const steady = await openLoop(port, "/v1/traces", spanBodies, rate);
  after = await stats(child);
  const steadyPhase = {
    spansPerSec: Math.round((steady.requests * batchSize) / seconds),
    failed: steady.failed,
    p50Ms: quantile(steady.latencies, 0.5),
    p99Ms: quantile(steady.latencies, 0.99),
    maxMs: Math.max(...steady.latencies),
    agentCores: (after.cpuMs - before.cpuMs) / 1000 / seconds,
  };
  log(`spans at 10,000/s: p50 ${steadyPhase.p50Ms.toFixed(1)} ms, p99 ${steadyPhase.p99Ms.toFixed(1)} ms, max ${steadyPhase.maxMs.toFixed(1)} ms, ${steadyPhase.failed} failed, agent ${steadyPhase.agentCores.toFixed(2)} cores`);

  // 3. Log records, as fast as the senders can.
  before = await stats(child);
  const logs = await closedLoop(port, "/v1/logs", logBodies);
  const acceptedLogs = logs.requests * batchSize;
  await waitUntil("the store to take every record", async () => {
    const s = (await stats(child)).status.ingest;
    return s.logsStored + s.droppedPending - before.status.ingest.logsStored - before.status.ingest.droppedPending >= s.logsReceived - before.status.ingest.logsReceived;
  }, 120_000);
  after = await stats(child);
  const logPhase = {
    acceptedPerSec: Math.round(acceptedLogs / logs.seconds),
    storedPerSec: Math.round((after.status.ingest.logsStored - before.status.ingest.logsStored) / logs.seconds),
    failed: logs.failed,
    droppedPending: after.status.ingest.droppedPending - before.status.ingest.droppedPending,
    p99Ms: quantile(logs.latencies, 0.99),
    agentCores: (after.cpuMs - before.cpuMs) / 1000 / logs.seconds,
  };
  log(`logs, closed loop: ${logPhase.acceptedPerSec.toLocaleString("en-US")} records/s accepted, ${logPhase.storedPerSec.toLocaleString("en-US")}/s stored, ${logPhase.droppedPending} dropped, agent ${logPhase.agentCores.toFixed(2)} cores`);

  const met = (ok: boolean) => (ok ? "met" : "NOT met");
  const spansStoredAll = spanPhase.stored === spanPhase.kept && spanPhase.droppedPending === 0;
  console.log(
    [
      `Targets: ≥ 50,000 spans/s accepted and stored: ${met(spanPhase.acceptedPerSec >= 50_000 && spansStoredAll)} (${spanPhase.acceptedPerSec.toLocaleString("en-US")}/s accepted; every kept span stored: ${spansStoredAll})`,
      `         p99 export latency < 100 ms at 10,000 spans/s: ${met(steadyPhase.p99Ms < 100 && steadyPhase.failed === 0)} (${steadyPhase.p99Ms.toFixed(1)} ms)`,
      `         ≥ 50,000 log records/s: ${met(logPhase.storedPerSec >= 50_000 && logPhase.droppedPending === 0)} (${logPhase.acceptedPerSec.toLocaleString("en-US")}/s accepted, ${logPhase.storedPerSec.toLocaleString("en-US")}/s stored)`,
    ].join("\n"),
  );
  const results = { date: new Date().toISOString(), machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version }, seconds, senders, batchSize, spans: spanPhase, steady: steadyPhase, logs: logPhase };
  const out = resolve(here, "..", "results", `otlp-${new Date().toISOString().slice(0, 16).replace(/:/g, "")}Z.json`);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  log(`figures in ${out}`);
} finally {
  child.send("stop");
  await new Promise((r) => child.once("exit", r));
}
