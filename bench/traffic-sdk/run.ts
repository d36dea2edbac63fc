// Requests benchmark (issue 22), the SDK side: the request middleware and
// traffic samples. Prints its figures and writes bench/results/traffic-sdk-<date>.json.
//
//   node --conditions=coral-source --import tsx bench/traffic-sdk/run.ts [options]   (--help lists them)
//
// 1. Capture on the request path: a node:http server in this process with
//    instrumentServer, POSTs of 8 KiB answered with 8 KiB (both cut at
//    4 KiB), at sample rate 1 (every request a sample) and at the shipped
//    0.1. Measured per request: the middleware's work when the request
//    arrives (watch) plus its 'finish' handler (the duration; route, RED
//    and the sample's references are recorded in one batch after that turn
//    of the event loop, off the request path), bracketed by listeners
//    registered before and after the middleware's own; then the
//    asynchronous part (serialising and redacting a sample, as DrainTraffic
//    does) per sample.
// 2. Added latency at 10 % sampling: --rate GETs/s open-loop for --seconds
//    against a plain server and the same server with the middleware
//    (bench/traffic-sdk/server.ts, each its own process), for each handler
//    (tiny: a ready answer, ~0.3 ms on loopback; io: 3 ms of simulated I/O
//    then a JSON render), --rounds paired rounds in alternating order
//    (plain first, then the SDK first, ...): p50 and p99, added latency
//    (median over the pairs, and the p50 of all rounds pooled), and the
//    server's CPU per request.
// 2b. The same, interleaved (`--parts interleaved`): both servers run at
//    once and the open-loop schedule sends each slot to one of them (each
//    pair of slots in a random order), so whatever the machine does over
//    the run falls on both sides alike instead of on one round of a pair.
//    Added latency is the difference of the two p50s over the whole run;
//    its spread is the same difference per block of --seconds.
// 3. Query: an agent store holding 50 MB of samples (4 KiB bodies each way),
//    filtered queries as AgentTrafficService runs them, and a prune.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { Agent } from "node:http";
import type { AddressInfo } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { openAgentStore } from "@coral/agent";
import { pollUntil } from "@coral/common/async";
import { RequestRecorder, resolveRequestOptions } from "@coral/sdk";
import { positive } from "../args.ts";
import { cpuMs, openLoop, quantile } from "../load.ts";

const argv = process.argv.slice(2);
const usage = `usage: npm run bench:traffic-sdk -- [options]
  --requests N    capture: requests per sample rate (default 3000)
  --rate N        latency: requests a second, open-loop (default 1000)
  --seconds N     latency: seconds per run (default 10)
  --rounds N      latency: paired rounds per handler, alternating which server goes first (default 6)
  --handlers L    latency: tiny, io or tiny,io (default tiny,io)
  --pin           latency, interleaved: the servers on the last CPU, this client on CPU 0 (taskset), so
                  where the scheduler puts a process does not favour one side
  --server-node-flags F   node flags for the servers, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
  --aa            interleaved: both servers plain (an A/A run: the design's own noise)
  --parts L       any of capture,latency,interleaved,query (default capture,latency,query)`;
if (argv.includes("--help") || argv.includes("-h")) {
  console.log(usage);
  process.exit(0);
}
const opt = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? positive(name, argv[i + 1]) : dflt;
};
const list = <T extends string>(name: string, allowed: readonly T[]): T[] => {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return [...allowed];
  const got = (argv[i + 1] ?? "").split(",").filter(Boolean);
  const bad = got.filter((g) => !allowed.includes(g as T));
  if (got.length === 0 || bad.length > 0) throw new Error(`--${name}: one or more of ${allowed.join(",")} (got ${argv[i + 1]})`);
  return got as T[];
};
const requests = opt("requests", 3000);
const rate = opt("rate", 1000);
const seconds = opt("seconds", 10);
const rounds = opt("rounds", 6);
const handlers = list("handlers", ["tiny", "io"] as const);
const allParts = ["capture", "latency", "interleaved", "query"] as const;
const parts: readonly (typeof allParts)[number][] = argv.includes("--parts") ? list("parts", allParts) : ["capture", "latency", "query"];
const median = (xs: number[]) => quantile(xs, 0.5);
const pin = argv.includes("--pin");
const serverFlagsAt = argv.indexOf("--server-node-flags");
const serverNodeFlags = serverFlagsAt >= 0 ? (argv[serverFlagsAt + 1] ?? "").split(" ").filter(Boolean) : [];
if (pin) execFileSync("taskset", ["-p", "-c", "0", String(process.pid)], { stdio: "ignore" });
type TrafficSampleInput = Parameters<Awaited<ReturnType<typeof openAgentStore>>["recordTrafficSamples"]>[0][number];
const results: Record<string, unknown> = { at: new Date().toISOString(), cpus: cpus().length, load: loadavg()[0], node: process.version };

async function capture(sampleRate: number) {
  const rec = new RequestRecorder(resolveRequestOptions({ sampleRate }));
  const watchUs: number[] = [];
  const finishUs: number[] = [];
  const body = Buffer.alloc(8192, 120);
  const server = http.createServer((req, res) => {
    req.on("data", () => undefined);
    req.on("end", () => res.writeHead(200, { "content-type": "application/octet-stream", "set-cookie": "s=1" }).end(body));
  });
  // What instrumentServer does, bracketed: a 'finish' listener before the
  // middleware's and one after it time its 'finish' handler; the clock
  // around watch() times the rest.
  server.prependListener("request", (req: http.IncomingMessage, res: http.ServerResponse) => {
    let f0 = 0;
    res.once("finish", () => (f0 = performance.now()));
    const t0 = performance.now();
    rec.watch(req, res);
    watchUs.push((performance.now() - t0) * 1000);
    res.once("finish", () => finishUs.push((performance.now() - f0) * 1000));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  for (let i = 0; i < requests; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, path: `/upload/${i}?q=${i}`, method: "POST", agent, headers: { authorization: "Bearer secret", "content-type": "application/octet-stream" } }, (res) => {
        res.resume();
        res.on("end", resolve);
      });
      req.on("error", reject);
      req.end(body);
    });
  }
  agent.destroy();
  await new Promise((r) => server.close(r));
  await pollUntil(() => (watchUs.length >= requests && finishUs.length >= requests ? true : undefined), { timeoutMs: 10_000, what: "every response finished" });
  const queued = rec.queue.length;
  const t = performance.now();
  const samples = rec.takeSamples(queued);
  const serialiseUs = ((performance.now() - t) * 1000) / samples.length;
  const total = watchUs.map((w, i) => w + (finishUs[i] ?? 0));
  const r = {
    sampleRate,
    requests,
    watchUs: { p50: median(watchUs), p99: quantile(watchUs, 0.99), max: Math.max(...watchUs) },
    finishUs: { p50: median(finishUs), p99: quantile(finishUs, 0.99), max: Math.max(...finishUs) },
    captureUs: { p50: median(total), p99: quantile(total, 0.99), max: Math.max(...total) },
    serialiseUsPerSample: serialiseUs,
    queued,
    droppedByQueue: rec.queue.dropped,
    sampleBytes: samples[0] ? samples[0].requestBody.byteLength + samples[0].responseBody.byteLength : 0,
  };
  console.log(
    `capture (sample rate ${sampleRate}, 8 KiB each way cut at 4 KiB), ${requests} requests: on the request path p50 ${r.captureUs.p50.toFixed(1)} µs, p99 ${r.captureUs.p99.toFixed(1)} µs, max ${r.captureUs.max.toFixed(0)} µs ` +
      `(watch p50 ${r.watchUs.p50.toFixed(1)} µs, finish p50 ${r.finishUs.p50.toFixed(1)} µs); serialising later ${samples.length ? `${serialiseUs.toFixed(1)} µs a sample` : "nothing"}; queue kept ${queued}, dropped ${r.droppedByQueue}`,
  );
  return r;
}

async function startServer(mode: "plain" | "sdk", handler: string): Promise<{ child: ChildProcess; port: number }> {
  const script = fileURLToPath(new URL("./server.ts", import.meta.url));
  const args = [...serverNodeFlags, "--conditions=coral-source", "--import", "tsx", script, mode, handler];
  const child = pin
    ? spawn("taskset", ["-c", String(cpus().length - 1), process.execPath, ...args], { stdio: ["ignore", "pipe", "inherit"] })
    : spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  const port = await pollUntil(() => Number(/listening (\d+)/.exec(out)?.[1]) || undefined, { timeoutMs: 30_000, what: `the ${mode} server` });
  return { child, port };
}

type Run = Awaited<ReturnType<typeof openLoop>>;
/** The server's CPU per answered request, µs. */
const cpuPerRequestUs = (x: Run) => (x.cpuPct * 1e4) / x.answered;
const signed = (x: number, digits = 0) => `${x >= 0 ? "+" : ""}${x.toFixed(digits)}`;

async function latency(handler: "tiny" | "io") {
  const plain = await startServer("plain", handler);
  const sdk = await startServer("sdk", handler);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const path = (i: number) => `/items/${i}`;
  const pairs: { first: "plain" | "sdk"; off: Run; on: Run }[] = [];
  try {
    for (const s of [plain, sdk]) await openLoop({ port: s.port, rate, seconds: 2, path, agent });
    for (let round = 0; round < rounds; round++) {
      // Alternating order, so that a drift of the machine's load over a pair does not always favour the same side.
      const first = round % 2 === 0 ? "plain" : "sdk";
      const runOf = (s: typeof plain) => openLoop({ port: s.port, rate, seconds, path, agent, cpuPid: s.child.pid });
      let off: Run;
      let on: Run;
      if (first === "plain") {
        off = await runOf(plain);
        on = await runOf(sdk);
      } else {
        on = await runOf(sdk);
        off = await runOf(plain);
      }
      pairs.push({ first, off, on });
      const line = (x: Run) =>
        `${x.answered.toFixed(0)} answers/s, p50 ${x.p50.toFixed(3)} ms, p99 ${x.p99.toFixed(3)} ms, server CPU ${x.cpuPct.toFixed(1)} % (${cpuPerRequestUs(x).toFixed(0)} µs a request)`;
      console.log(`${handler} ${rate}/s round ${round + 1} (${first} first): plain ${line(off)}; with the SDK middleware (10 %) ${line(on)}; p50 ${signed((on.p50 - off.p50) * 1000)} µs`);
    }
  } finally {
    agent.destroy();
    plain.child.kill();
    sdk.child.kill();
  }
  const pooled = (side: "off" | "on") => median(pairs.flatMap((p) => p[side].latencies));
  const pooledOff = pooled("off");
  const pooledOn = pooled("on");
  const r = {
    handler,
    rate,
    seconds,
    rounds: pairs.map((p) => ({
      first: p.first,
      off: { answered: p.off.answered, p50: p.off.p50, p99: p.off.p99, cpuPct: p.off.cpuPct, cpuUsPerRequest: cpuPerRequestUs(p.off) },
      on: { answered: p.on.answered, p50: p.on.p50, p99: p.on.p99, cpuPct: p.on.cpuPct, cpuUsPerRequest: cpuPerRequestUs(p.on) },
    })),
    p50PlainMs: median(pairs.map((p) => p.off.p50)),
    p50SdkMs: median(pairs.map((p) => p.on.p50)),
    p50AddedUs: median(pairs.map((p) => (p.on.p50 - p.off.p50) * 1000)),
    p50AddedPct: median(pairs.map((p) => ((p.on.p50 - p.off.p50) / p.off.p50) * 100)),
    pooledP50PlainMs: pooledOff,
    pooledP50SdkMs: pooledOn,
    pooledP50AddedUs: (pooledOn - pooledOff) * 1000,
    pooledP50AddedPct: ((pooledOn - pooledOff) / pooledOff) * 100,
    cpuAddedPoints: median(pairs.map((p) => p.on.cpuPct - p.off.cpuPct)),
    cpuUsPerRequestPlain: median(pairs.map((p) => cpuPerRequestUs(p.off))),
    cpuUsPerRequestSdk: median(pairs.map((p) => cpuPerRequestUs(p.on))),
    cpuUsPerRequestAdded: median(pairs.map((p) => cpuPerRequestUs(p.on) - cpuPerRequestUs(p.off))),
  };
  console.log(
    `${handler} handler, ${rate}/s at 10 % sampling, ${pairs.length} pairs of ${seconds} s: p50 ${r.p50PlainMs.toFixed(3)} → ${r.p50SdkMs.toFixed(3)} ms, ` +
      `median added ${signed(r.p50AddedUs)} µs (${signed(r.p50AddedPct, 2)} %); pooled p50 ${pooledOff.toFixed(3)} → ${pooledOn.toFixed(3)} ms (${signed(r.pooledP50AddedUs)} µs, ${signed(r.pooledP50AddedPct, 2)} %); ` +
      `server CPU ${signed(r.cpuAddedPoints, 1)} points, ${r.cpuUsPerRequestPlain.toFixed(0)} → ${r.cpuUsPerRequestSdk.toFixed(0)} µs a request (median added ${signed(r.cpuUsPerRequestAdded, 1)} µs)`,
  );
  return r;
}

/**
 * Both servers at once, one open-loop schedule of `rate` GETs a second over
 * `rounds` blocks of `seconds`: each pair of slots goes to plain and SDK in
 * a random order. Latency is measured by the client, CPU per server.
 */
async function interleaved(handler: "tiny" | "io") {
  const plain = await startServer("plain", handler);
  const sdk = await startServer(argv.includes("--aa") ? "plain" : "sdk", handler);
  const agent = new Agent({ keepAlive: true, maxSockets: 32 });
  const sides = [plain, sdk] as const;
  const lat: [number[], number[]] = [[], []];
  const blocks: { p50: [number, number]; cpuUs: [number, number] }[] = [];
  let failed = 0;
  const path = (i: number) => `/items/${i}`;
  try {
    for (const s of sides) await openLoop({ port: s.port, rate, seconds: 2, path, agent });
    for (let block = 0; block < rounds; block++) {
      const from: [number, number] = [lat[0].length, lat[1].length];
      const cpu0 = sides.map((s) => cpuMs(s.child.pid!));
      // Each pair of slots to the two servers in a random order.
      const sideOf: (0 | 1)[] = [];
      const port = (i: number) => {
        if (i % 2 === 0) sideOf.push(...(Math.random() < 0.5 ? ([0, 1] as const) : ([1, 0] as const)));
        return sides[sideOf[i]!].port;
      };
      const run = await openLoop({ port, rate, seconds, path, agent, onAnswer: (i, ms) => lat[sideOf[i]!].push(ms) });
      failed += run.failed;
      const cpu = sides.map((s, k) => cpuMs(s.child.pid!) - cpu0[k]!);
      const p50: [number, number] = [median(lat[0].slice(from[0])), median(lat[1].slice(from[1]))];
      const cpuUs: [number, number] = [(cpu[0]! * 1000) / (lat[0].length - from[0]), (cpu[1]! * 1000) / (lat[1].length - from[1])];
      blocks.push({ p50, cpuUs });
      console.log(
        `${handler} interleaved block ${block + 1}: plain p50 ${p50[0].toFixed(3)} ms (${cpuUs[0].toFixed(0)} µs CPU a request), with the SDK middleware (10 %) p50 ${p50[1].toFixed(3)} ms (${cpuUs[1].toFixed(0)} µs); ${signed((p50[1] - p50[0]) * 1000, 1)} µs`,
      );
    }
  } finally {
    agent.destroy();
    plain.child.kill();
    sdk.child.kill();
  }
  const p50Plain = median(lat[0]);
  const p50Sdk = median(lat[1]);
  const blockAddedUs = blocks.map((b) => (b.p50[1] - b.p50[0]) * 1000).sort((a, b) => a - b);
  const r = {
    handler,
    rate,
    blockSeconds: seconds,
    blocks,
    requests: [lat[0].length, lat[1].length],
    failed,
    p50PlainMs: p50Plain,
    p50SdkMs: p50Sdk,
    p99PlainMs: quantile(lat[0], 0.99),
    p99SdkMs: quantile(lat[1], 0.99),
    p50AddedUs: (p50Sdk - p50Plain) * 1000,
    p50AddedPct: ((p50Sdk - p50Plain) / p50Plain) * 100,
    blockAddedUs,
    cpuUsPerRequestPlain: median(blocks.map((b) => b.cpuUs[0])),
    cpuUsPerRequestSdk: median(blocks.map((b) => b.cpuUs[1])),
  };
  console.log(
    `${handler} handler interleaved, ${rate}/s in all at 10 % sampling, ${blocks.length} blocks of ${seconds} s (${r.requests[0]} + ${r.requests[1]} requests, ${failed} failed): ` +
      `p50 ${p50Plain.toFixed(4)} → ${p50Sdk.toFixed(4)} ms (${signed(r.p50AddedUs, 1)} µs, ${signed(r.p50AddedPct, 2)} %), p99 ${r.p99PlainMs.toFixed(3)} → ${r.p99SdkMs.toFixed(3)} ms; ` +
      `per block ${blockAddedUs.map((x) => signed(x, 1)).join(", ")} µs; server CPU ${r.cpuUsPerRequestPlain.toFixed(0)} → ${r.cpuUsPerRequestSdk.toFixed(0)} µs a request`,
  );
  return r;
}

async function query() {
  const dir = await mkdtemp(join(tmpdir(), "coral-traffic-bench-"));
  const store = await openAgentStore(join(dir, "agent.duckdb"));
  try {
    const body = Buffer.alloc(4096, 97);
    const methods = ["GET", "POST", "PUT", "DELETE"];
    const prefixes = ["/checkout", "/users", "/items", "/search", "/cart"];
    const statuses = [200, 200, 200, 201, 204, 301, 404, 400, 500, 503];
    const t0 = Date.now() - 3_000_000;
    const make = (i: number): TrafficSampleInput => ({
      id: `shop.${i.toString(16).padStart(16, "0")}`,
      method: methods[i % methods.length]!,
      path: `${prefixes[i % prefixes.length]}/${i}?page=${i % 7}`,
      route: `${prefixes[i % prefixes.length]}/{id}`,
      status: statuses[i % statuses.length]!,
      startTime: new Date(t0 + i * 400),
      durationMs: (i % 100) / 3,
      requestHeaders: [
        { name: "host", value: "shop.example" },
        { name: "authorization", value: "[redacted]" },
        { name: "user-agent", value: "bench/1.0" },
      ],
      responseHeaders: [{ name: "content-type", value: "application/json" }],
      requestBody: body,
      requestBodyTruncated: true,
      requestBodySize: 9000,
      responseBody: body,
      responseBodyTruncated: false,
      responseBodySize: 4096,
      reason: i % 10 === 0 ? "error" : "sampled",
    });
    const limit = 50 * 1024 * 1024;
    let stored = 0;
    let bytes = 0;
    const tFill = performance.now();
    while (bytes < limit) {
      const batch = Array.from({ length: 200 }, (_, k) => make(stored + k));
      await store.recordTrafficSamples(batch, new Date());
      stored += batch.length;
      bytes = (await store.trafficStats()).bytes;
    }
    const fillMs = performance.now() - tFill;
    const cases: [string, Parameters<typeof store.queryTraffic>[0]][] = [
      ["newest 50, no filter", { limit: 50 }],
      ["--path /checkout --method POST --status 5xx", { limit: 50, pathPrefix: "/checkout", method: "POST", status: { kind: "class", value: 5 } }],
      ["--status 404 --since 10m", { limit: 50, status: { kind: "exact", value: 404 }, since: new Date(Date.now() - 600_000) }],
      ["--path /nothing (no match)", { limit: 50, pathPrefix: "/nothing" }],
      ["--limit 1000", { limit: 1000 }],
    ];
    const timings: Record<string, { p50: number; max: number; rows: number }> = {};
    for (const [label, q] of cases) {
      const ms: number[] = [];
      let rows = 0;
      for (let i = 0; i < 20; i++) {
        const t = performance.now();
        rows = (await store.queryTraffic(q)).rows.length;
        ms.push(performance.now() - t);
      }
      timings[label] = { p50: median(ms), max: Math.max(...ms), rows };
      console.log(`query over ${stored} samples (${(bytes / 1048576).toFixed(1)} MiB): ${label}: p50 ${median(ms).toFixed(1)} ms, max ${Math.max(...ms).toFixed(1)} ms (${rows} rows)`);
    }
    const getMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await store.getTrafficSample(make((i * 97) % stored).id);
      getMs.push(performance.now() - t);
    }
    console.log(`get one sample in full: p50 ${median(getMs).toFixed(1)} ms, max ${Math.max(...getMs).toFixed(1)} ms`);
    const tPrune = performance.now();
    const pruned = await store.pruneTraffic({ maxBytes: 25 * 1024 * 1024, maxAgeMs: 3_600_000 });
    const pruneMs = performance.now() - tPrune;
    console.log(`prune to 25 MiB: ${pruned.byBytes} samples in ${pruneMs.toFixed(0)} ms; filling 50 MiB took ${(fillMs / 1000).toFixed(1)} s (${((fillMs * 1000) / stored).toFixed(0)} µs a sample)`);
    return { stored, bytes, fillMs, timings, getMs: { p50: median(getMs), max: Math.max(...getMs) }, prune: { ...pruned, ms: pruneMs } };
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

console.log(`traffic bench (SDK): ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)}, Node ${process.version}`);
if (parts.includes("capture")) results.capture = [await capture(1), await capture(0.1)];
if (parts.includes("latency")) {
  const latencies: Record<string, unknown> = {};
  for (const h of handlers) latencies[h] = await latency(h);
  results.latency = latencies;
}
if (parts.includes("interleaved")) {
  const runs: Record<string, unknown> = {};
  for (const h of handlers) runs[h] = await interleaved(h);
  results.interleaved = runs;
}
if (parts.includes("query")) results.query = await query();
results.loadAfter = loadavg()[0];
const out = join(fileURLToPath(new URL("../results/", import.meta.url)));
await mkdir(out, { recursive: true });
const file = join(out, `traffic-sdk-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
await writeFile(file, JSON.stringify(results, null, 2));
console.log(`figures in ${file}`);
