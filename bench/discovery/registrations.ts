// Registration throughput probe (issue 26): what limits RegisterColony?
// Starts coral-discovery from source (bench/discovery/serve-source.ts) as its
// own process, then for each in-flight count registers a batch of new meshes
// (first registrations) and refreshes them (same mesh, key and fields, signed
// again), over Connect JSON with kept-alive node:http connections. For each
// phase it prints reg/s, latency, the CPU of the front, workerd and this
// client, and what workerd's threads were doing (sampled /proc states and
// wait channels: "D file_write_and_wait_range" is a thread blocked in fsync).
//
//   node --conditions=coral-source --import tsx bench/discovery/registrations.ts
//     [--meshes 2000] [--concurrency 1,8,32,128] [--shards 1] [--refreshes 1]
//     [--mesh-buckets N (coral-discovery's; 0: one Durable Object per mesh)]
//     [--worker-bundle <file> (an older worker build to compare with)] [--answer-cache <entries> (coral-discovery's)]
//     [--sustain 60 --refresh-rate 1000,2000 --lookup-rate 5000 (the mixed phases, below)]
//     [--registration-batch-ms <ms> (coral-discovery's registration batch window; 0: each alone)]
//     [--server-node-flags "--cpu-prof --cpu-prof-dir=/tmp/prof"] [--json out.json]
//
// --sustain runs one more phase per --refresh-rate after the others, over
// every mesh registered so far: refreshes at that rate (round robin over the
// meshes, signed before the phase starts: colonies sign on their own
// machines) while bench/discovery/load.ts (its own process: lean-load.ts by
// default, or autocannon with --lookup-client) looks colonies up at
// --lookup-rate, for that many seconds. Before the first one,
// lookups alone run long enough to ask for every mesh once (the steady state
// of a discovery that serves lookups all the time). Each prints the rates reached, refresh
// and lookup latency (both clients correct for coordinated omission), CPU and
// RSS per process, and every failed request or storage error line the server
// logged (SQLITE_*, "storage"): issue 26's targets are 2,000 refreshes/s for
// 60 s with 5,000 lookups/s at p99 < 20 ms, and no storage errors.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { setPriority, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { sleep } from "@coral/common/async";
import { freePort } from "../../tests/helpers/ports.ts";
import { colonyFieldsJson, generateIdentityKey, sign, toBase64, type ColonyRegistrationFields, type IdentityKey } from "@coral/proto";
import type { LoadConfig, LoadResult } from "./types.ts";
import { processTree } from "./proc.ts";
import { percentile } from "./lean-load.ts";
import { startWorkerProfile } from "./worker-profile.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const { values: args } = parseArgs({
  options: {
    meshes: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "1,8,32,128" },
    shards: { type: "string", default: "1" },
    refreshes: { type: "string", default: "1" },
    "mesh-buckets": { type: "string" },
    "worker-bundle": { type: "string" },
    "answer-cache": { type: "string" },
    "registration-batch-ms": { type: "string" },
    sustain: { type: "string", default: "0" },
    "refresh-rate": { type: "string", default: "2000" },
    // lookups per second; like --lookup-client, a comma list is taken phase by phase
    "lookup-rate": { type: "string", default: "5000" },
    "lookup-connections": { type: "string", default: "50" },
    // lean (lean-load.ts) or autocannon; a comma list is taken phase by phase, cycling (lean,autocannon: the two alternate)
    "lookup-client": { type: "string", default: "lean" },
    "server-node-flags": { type: "string", default: "" },
    // run this process (the refresh client) and the lookup client at this nice value, the server at 0: on a
    // machine that also runs the load, the server then gets the CPU it asks for, as it would on a machine of its own
    "clients-nice": { type: "string", default: "0" },
    // write a CPU profile of each shard's worker JavaScript (through its V8 inspector) for each sustained phase into this folder
    "worker-profile": { type: "string" },
    json: { type: "string" },
    // sample workerd's thread states (costs this process CPU; off for clean rates)
    "sample-threads": { type: "boolean", default: false },
    // run this command with the workerd pids appended (comma-separated) during each phase, e.g. "perf record -g -o /tmp/p.data -p"
    "during-phase": { type: "string" },
    // only during phases of this name (first or refresh)
    "during-phase-only": { type: "string" },
    // after the phases, watch workerd's open .sqlite files (open Durable Objects) for this many seconds
    hold: { type: "string", default: "0" },
  },
});
const meshesPerPhase = Number(args.meshes);
const levels = (args.concurrency ?? "").split(",").map(Number);
const shards = Number(args.shards);
const refreshRounds = Number(args.refreshes);


// ------------------------------------------------------------ /proc figures

async function cpuTicks(root: number) {
  let front = 0;
  let workerd = 0;
  for (const p of await processTree(root)) {
    if (p.comm.startsWith("workerd")) workerd += p.cpuTicks;
    else front += p.cpuTicks;
  }
  return { front, workerd };
}

/** Samples the state and wait channel of every workerd thread until stopped. */
function sampleThreads(workerdPids: number[]) {
  const tally = new Map<string, number>();
  let samples = 0;
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      for (const pid of workerdPids) {
        let tids: string[] = [];
        try {
          tids = await readdir(`/proc/${pid}/task`);
        } catch {
          continue;
        }
        for (const tid of tids) {
          try {
            const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, "utf8");
            const close = stat.lastIndexOf(")");
            const comm = stat.slice(stat.indexOf("(") + 1, close);
            const state = stat.slice(close + 2, close + 3);
            if (state === "S") continue; // idle threads dominate otherwise
            const wchan = state === "R" ? "" : await readFile(`/proc/${pid}/task/${tid}/wchan`, "utf8").catch(() => "?");
            const key = `${comm} ${state} ${wchan}`.trim();
            tally.set(key, (tally.get(key) ?? 0) + 1);
          } catch {
            // thread gone
          }
        }
      }
      samples++;
      await sleep(2);
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    return { samples, states: Object.fromEntries([...tally].sort((a, b) => b[1] - a[1]).slice(0, 8)) };
  };
}

/** Open .sqlite files of workerd: one per Durable Object that is loaded (plus the alarm scheduler's). */
async function openSqliteFiles(pids: number[]): Promise<number> {
  let n = 0;
  for (const pid of pids)
    for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [] as string[])) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      if (target.endsWith(".sqlite")) n++;
    }
  return n;
}

async function rssMiB(pids: number[]): Promise<number> {
  let kb = 0;
  for (const pid of pids) kb += Number(/^VmRSS:\s+(\d+) kB/m.exec(await readFile(`/proc/${pid}/status`, "utf8").catch(() => ""))?.[1] ?? 0);
  return Math.round(kb / 1024);
}

// ---------------------------------------------------------------- client

function fieldsFor(meshId: string): ColonyRegistrationFields {
  return {
    meshId,
    pubkey: toBase64(crypto.getRandomValues(new Uint8Array(32))),
    endpoints: ["203.0.113.42:41820", ":41820", "[2001:db8::7]:41820"],
    meshIpv4: "10.42.0.1",
    meshIpv6: "fd42::1",
    connectPort: 9000,
    metadata: { application: "bench", environment: "bench" },
  };
}

function post(agent: http.Agent, port: number, body: string): Promise<{ status: number; text: string }> {
  return new Promise((done, fail) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/coral.discovery.v1.DiscoveryService/RegisterColony",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        agent,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => done({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
        res.on("error", fail);
      },
    );
    req.on("error", fail);
    req.end(body);
  });
}

interface Phase {
  phase: string;
  concurrency: number;
  registrations: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  cores: { front: number; workerd: number; client: number };
  clientSignMsPerReg: number;
  /** Registrations per batch the front sent (undefined: a front without batches). */
  perBatch: number | undefined;
  workerdThreads: { samples: number; states: Record<string, number> };
}

async function phase(
  name: string,
  port: number,
  serverPid: number,
  workerdPids: number[],
  key: IdentityKey,
  fields: ColonyRegistrationFields[],
  concurrency: number,
): Promise<Phase> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let signMs = 0;
  let next = 0;
  const batchesBefore = await answerCacheStats();
  const before = await cpuTicks(serverPid);
  const cpuBefore = process.cpuUsage();
  const stopSampling = args["sample-threads"] ? sampleThreads(workerdPids) : async () => ({ samples: 0, states: {} });
  const attached = args["during-phase"] && (!args["during-phase-only"] || args["during-phase-only"] === name)
    ? spawn("sh", ["-c", `${args["during-phase"].replaceAll("{phase}", `${name}-c${concurrency}`)} ${workerdPids.join(",")}`], { stdio: "inherit" })
    : undefined;
  if (attached) await sleep(500);
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < fields.length) {
        const f = fields[next++]!;
        const t0 = performance.now();
        const sig = await sign("colony-registration", colonyFieldsJson(f), key);
        const t1 = performance.now();
        signMs += t1 - t0;
        const body = JSON.stringify({
          ...f,
          signature: { identityPubkey: sig.identityPubkey, signedAtMs: sig.signedAtMs.toString(), signature: sig.signature },
        });
        const res = await post(agent, port, body);
        latencies.push(performance.now() - t1);
        if (res.status !== 200) throw new Error(`RegisterColony ${f.meshId}: HTTP ${res.status} ${res.text}`);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const threads = await stopSampling();
  if (attached) {
    attached.kill("SIGINT");
    await once(attached, "exit");
  }
  const cpu = process.cpuUsage(cpuBefore);
  const after = await cpuTicks(serverPid);
  agent.destroy();
  const batchesAfter = await answerCacheStats();
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => percentile(latencies, p);
  return {
    phase: name,
    perBatch: perBatch(batchesBefore, batchesAfter),
    concurrency,
    registrations: fields.length,
    seconds,
    perSecond: fields.length / seconds,
    p50Ms: pct(50),
    p99Ms: pct(99),
    cores: {
      front: (after.front - before.front) / 100 / seconds,
      workerd: (after.workerd - before.workerd) / 100 / seconds,
      client: (cpu.user + cpu.system) / 1e6 / seconds,
    },
    clientSignMsPerReg: signMs / fields.length,
    workerdThreads: threads,
  };
}

// ------------------------------------------------------- sustained phase

interface Sustained {
  seconds: number;
  meshes: number;
  refresh: { asked: number; perSecond: number; done: number; failed: Record<string, number>; p50Ms: number; p99Ms: number; maxMs: number };
  lookup: { asked: number } & Omit<LoadResult, "mode" | "connections">;
  cores: { front: number; workerd: number; client: number; lookupClient: number };
  lookupClient: NonNullable<LoadConfig["client"]>;
  rssMiB: { front: number; workerd: number };
  openSqliteFiles: number;
  /** The front's answer cache during the phase: lookups it answered itself, and those it asked workerd for. */
  answerCache: { hits: number; misses: number };
  /** How late the front's event loop ran during the phase (its p99 and worst, ms). */
  frontLoopDelayMs: { p99: number; max: number };
  perBatch: number | undefined;
}

/** Runs bench/discovery/load.ts (autocannon in its own process); resolves at its "start" event with its result to come. */
async function startLookups(config: LoadConfig, scratch: string): Promise<{ result: Promise<LoadResult & { cpuSeconds?: number }> }> {
  const path = join(scratch, "lookups.json");
  await writeFile(path, JSON.stringify(config));
  const load = spawn(process.execPath, ["--import", "tsx", join(repoRoot, "bench/discovery/load.ts"), path], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] });
  if (clientsNice) setPriority(load.pid!, clientsNice);
  let stderr = "";
  load.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  let buffered = "";
  let onStart: () => void = () => undefined;
  const started = new Promise<void>((done) => (onStart = done));
  let result: (LoadResult & { cpuSeconds?: number }) | undefined;
  load.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
      const message = JSON.parse(buffered.slice(0, nl)) as { event: string; cpuSeconds?: number } & LoadResult;
      buffered = buffered.slice(nl + 1);
      if (message.event === "start") onStart();
      if (message.event === "result") result = message;
    }
  });
  const exited = once(load, "exit").then(([code]) => {
    if (code !== 0 || !result) throw new Error(`load generator failed (exit ${code}):\n${stderr}`);
    return result;
  });
  await Promise.race([started, exited]);
  return { result: exited };
}

async function sustained(
  port: number,
  serverPid: number,
  workerdPids: number[],
  key: IdentityKey,
  meshes: ColonyRegistrationFields[],
  scratch: string,
  rate: number,
  warmupSeconds: number,
  lookupClient: NonNullable<LoadConfig["client"]>,
  lookupRate: number,
): Promise<Sustained> {
  const seconds = Number(args.sustain);
  const total = Math.ceil(seconds * rate * 1.02);
  process.stdout.write(`sustained: signing ${total} refreshes ahead of the phase … `);
  const signStarted = performance.now();
  const bodies: string[] = [];
  for (let i = 0; i < total; i++) {
    const f = meshes[i % meshes.length]!;
    const sig = await sign("colony-registration", colonyFieldsJson(f), key);
    bodies.push(JSON.stringify({ ...f, signature: { identityPubkey: sig.identityPubkey, signedAtMs: sig.signedAtMs.toString(), signature: sig.signature } }));
  }
  console.log(`${((performance.now() - signStarted) / 1000).toFixed(1)} s`);
  console.log(
    `sustained: ${warmupSeconds ? `${warmupSeconds} s of lookups alone, then ` : ""}${seconds} s of ${rate} refreshes/s over ${meshes.length} meshes, ${lookupRate} lookups/s …`,
  );
  const lookups = await startLookups(
    {
      url: `http://127.0.0.1:${port}`,
      mode: "connect",
      meshIds: meshes.map((m) => m.meshId),
      connections: Number(args["lookup-connections"]),
      durationSeconds: seconds,
      warmupSeconds,
      overallRate: lookupRate,
      client: lookupClient,
    },
    scratch,
  );
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const stopProfiles = args["worker-profile"] ? await Promise.all(workerInspectors.map((url) => startWorkerProfile(url))) : [];
  const cacheBefore = await answerCacheStats();
  const before = await cpuTicks(serverPid);
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const latencies: number[] = [];
  const failed: Record<string, number> = {};
  let issued = 0;
  let inFlight = 0;
  const inFlightCap = 512;
  const pending = new Set<Promise<void>>();
  while (performance.now() - started < seconds * 1000) {
    const due = Math.min(bodies.length, Math.floor(((performance.now() - started) / 1000) * rate));
    while (issued < due && inFlight < inFlightCap) {
      const body = bodies[issued++]!;
      const t0 = performance.now();
      inFlight++;
      const request: Promise<void> = post(agent, port, body)
        .then(
          (res) => {
            if (res.status === 200) latencies.push(performance.now() - t0);
            else failed[`HTTP ${res.status} ${res.text.slice(0, 120)}`] = (failed[`HTTP ${res.status} ${res.text.slice(0, 120)}`] ?? 0) + 1;
          },
          (err: Error) => void (failed[err.message] = (failed[err.message] ?? 0) + 1),
        )
        .finally(() => {
          inFlight--;
          pending.delete(request);
        });
      pending.add(request);
    }
    await sleep(2);
  }
  const elapsed = (performance.now() - started) / 1000;
  await Promise.all(pending);
  const cpu = process.cpuUsage(cpuBefore);
  const after = await cpuTicks(serverPid);
  agent.destroy();
  const cacheAfter = await answerCacheStats();
  for (const [shard, stop] of stopProfiles.entries()) {
    const file = join(resolve(args["worker-profile"]!), `worker-shard${shard}-refresh${rate}-lookup${lookupRate}-${Date.now()}.cpuprofile`);
    await writeFile(file, JSON.stringify(await stop()));
    console.log(`          worker profile of shard ${shard}: ${file}`);
  }
  const lookup = await lookups.result;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => percentile(latencies, p);
  const { mode: _mode, connections: _connections, cpuSeconds: _cpu, ...lookupFigures } = lookup;
  return {
    seconds: elapsed,
    meshes: meshes.length,
    refresh: { asked: rate, perSecond: latencies.length / elapsed, done: latencies.length, failed, p50Ms: pct(50), p99Ms: pct(99), maxMs: latencies.at(-1) ?? 0 },
    lookup: { asked: lookupRate, ...lookupFigures },
    cores: {
      front: (after.front - before.front) / 100 / elapsed,
      workerd: (after.workerd - before.workerd) / 100 / elapsed,
      client: (cpu.user + cpu.system) / 1e6 / elapsed,
      lookupClient: (lookup.cpuSeconds ?? 0) / lookup.durationSeconds,
    },
    lookupClient,
    rssMiB: { front: await rssMiB([serverPid]), workerd: await rssMiB(workerdPids) },
    openSqliteFiles: await openSqliteFiles(workerdPids),
    answerCache: { hits: (cacheAfter.hits ?? 0) - (cacheBefore.hits ?? 0), misses: (cacheAfter.misses ?? 0) - (cacheBefore.misses ?? 0) },
    perBatch: perBatch(cacheBefore, cacheAfter),
    frontLoopDelayMs: { p99: cacheAfter.loopDelayP99Ms ?? 0, max: cacheAfter.loopDelayMaxMs ?? 0 },
  };
}

function printSustained(m: Sustained): void {
  const r = m.refresh;
  const l = m.lookup;
  console.log(
    `sustained ${m.seconds.toFixed(0)} s over ${m.meshes} meshes: refreshes ${r.perSecond.toFixed(0)}/s of ${r.asked} asked (p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, ` +
      `max ${r.maxMs.toFixed(0)} ms, ${Object.values(r.failed).reduce((a, b) => a + b, 0)} failed)`,
  );
  console.log(
    `          lookups (${m.lookupClient}) ${l.requestsPerSecond.toFixed(0)}/s of ${l.asked} asked (p50 ${l.latencyMs.p50} ms, p99 ${l.latencyMs.p99} ms, max ${l.latencyMs.max} ms, ` +
      `${l.non2xx} non-2xx, ${l.errors} errors, ${l.timeouts} timeouts)`,
  );
  console.log(
    `          cores front ${m.cores.front.toFixed(2)} workerd ${m.cores.workerd.toFixed(2)} refresh client ${m.cores.client.toFixed(2)} lookup client ${m.cores.lookupClient.toFixed(2)}; ` +
      `RSS front ${m.rssMiB.front} MiB, workerd ${m.rssMiB.workerd} MiB; ${m.openSqliteFiles} open .sqlite files; ` +
      `front answer cache ${m.answerCache.hits} hits, ${m.answerCache.misses} misses` +
      (m.perBatch === undefined ? "" : `; ${m.perBatch.toFixed(1)} refreshes per batch`) +
      `; front event loop late p99 ${m.frontLoopDelayMs.p99.toFixed(1)} ms, max ${m.frontLoopDelayMs.max.toFixed(0)} ms`,
  );
  if (l.onWireP99Ms !== undefined && l.clientLoopDelayMs)
    console.log(
      `          lookups' p99 on the wire (write to answer) ${l.onWireP99Ms} ms; lookup client's event loop late p99 ${l.clientLoopDelayMs.p99.toFixed(1)} ms, max ${l.clientLoopDelayMs.max.toFixed(0)} ms`,
    );
  if (l.slowSeconds?.length) console.log(`          lookups' worst latency by second of the phase, where over 100 ms: ${l.slowSeconds.map(([s, ms]) => `${s}s ${ms} ms`).join(", ")}`);
  if (Object.keys(r.failed).length) console.log(`          failed refreshes: ${JSON.stringify(r.failed)}`);
}

// ------------------------------------------------------------------ main

const scratch = await mkdtemp(join(tmpdir(), "coral-bench-registrations-"));
const port = await freePort();
const nodeFlags = (args["server-node-flags"] ?? "").split(" ").filter(Boolean);
const child = spawn(
  process.execPath,
  [
    ...nodeFlags,
    "--conditions=coral-source",
    "--import",
    "tsx",
    join(repoRoot, "bench/discovery/serve-source.ts"),
    ...["--port", String(port), "--data-dir", join(scratch, "data"), "--ttl", "3600", "--shards", String(shards)],
    ...(args["mesh-buckets"] === undefined ? [] : ["--mesh-buckets", args["mesh-buckets"]]),
    ...(args["worker-bundle"] === undefined ? [] : ["--worker-bundle", resolve(args["worker-bundle"])]),
    ...(args["answer-cache"] === undefined ? [] : ["--answer-cache", args["answer-cache"]]),
    ...(args["registration-batch-ms"] === undefined ? [] : ["--registration-batch-ms", args["registration-batch-ms"]]),
    ...(args["worker-profile"] === undefined ? [] : ["--worker-inspector"]),
  ],
  { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"] },
);
const clientsNice = Number(args["clients-nice"]);
if (!Number.isInteger(clientsNice) || clientsNice < 0 || clientsNice > 19) throw new Error(`--clients-nice takes 0 to 19, not ${JSON.stringify(args["clients-nice"])}`);
if (args["worker-profile"]) await mkdir(resolve(args["worker-profile"]), { recursive: true });
// After the server started: it keeps nice 0.
if (clientsNice) setPriority(clientsNice);
/** Lines the server logged about storage (SQLITE_NOMEM and friends), by text. */
const storageErrors = new Map<string, number>();
/** Registrations per batch between two counter readings; undefined when no batch was sent (or the front sends none). */
function perBatch(before: Record<string, number>, after: Record<string, number>): number | undefined {
  const batches = (after.batchBatches ?? 0) - (before.batchBatches ?? 0);
  if (batches === 0) return undefined;
  return ((after.batchRegistrations ?? 0) - (before.batchRegistrations ?? 0)) / batches;
}

/** Each shard's V8 inspector, as serve-source.ts prints them with --worker-inspector. */
const workerInspectors: string[] = [];
/** The front's answer-cache (and registration batch) counters, as serve-source.ts prints them on SIGUSR2. */
let answerCache: Record<string, number> = {};
async function answerCacheStats(): Promise<Record<string, number>> {
  const before = answerCache;
  child.kill("SIGUSR2");
  for (let i = 0; i < 100 && answerCache === before; i++) await sleep(10);
  return answerCache;
}
for (const stream of [child.stdout!, child.stderr!]) {
  let partial = "";
  stream.on("data", (chunk: Buffer) => {
    if (!/^(answer-cache|worker-inspector) /.test(chunk.toString())) process.stderr.write(chunk);
    partial += chunk.toString();
    const lines = partial.split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines)
      if (line.startsWith("worker-inspector ")) workerInspectors.push(line.slice("worker-inspector ".length));
      else if (line.startsWith("answer-cache ")) answerCache = (JSON.parse(line.slice("answer-cache ".length)) as Record<string, number> | null) ?? {};
      else if (/SQLITE_|storage|database/i.test(line)) {
        const key = line.replace(/\s+/g, " ").slice(0, 160);
        storageErrors.set(key, (storageErrors.get(key) ?? 0) + 1);
      }
  });
}
const results: Phase[] = [];
try {
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error("server exited");
    const ok = await fetch(`http://127.0.0.1:${port}/health`).then((r) => r.ok, () => false);
    if (ok) break;
    if (i > 600) throw new Error("server did not answer /health");
    await sleep(100);
  }
  const workerdPids = (await processTree(child.pid!)).filter((p) => p.comm.startsWith("workerd")).map((p) => p.pid);
  console.log(`server pid ${child.pid}, ${shards} shard(s), workerd pids ${workerdPids.join(",")}`);
  const key = await generateIdentityKey();
  const tag = Date.now().toString(36);
  const registered: ColonyRegistrationFields[] = [];
  for (const c of levels) {
    const fields = Array.from({ length: meshesPerPhase }, (_, i) => fieldsFor(`reg-${tag}-c${c}-${i}`));
    registered.push(...fields);
    const rows = [await phase("first", port, child.pid!, workerdPids, key, fields, c)];
    for (let r = 0; r < refreshRounds; r++) rows.push(await phase("refresh", port, child.pid!, workerdPids, key, fields, c));
    for (const row of rows) {
      results.push(row);
      console.log(
        `${row.phase.padEnd(7)} c=${String(c).padStart(3)}  ${row.perSecond.toFixed(0).padStart(5)}/s  p50 ${row.p50Ms.toFixed(1)} ms  p99 ${row.p99Ms.toFixed(1)} ms` +
          `  cores front ${row.cores.front.toFixed(2)} workerd ${row.cores.workerd.toFixed(2)} client ${row.cores.client.toFixed(2)}` +
          `  CPU/reg front ${((row.cores.front / row.perSecond) * 1000).toFixed(3)} ms workerd ${((row.cores.workerd / row.perSecond) * 1000).toFixed(3)} ms` +
          `  sign ${row.clientSignMsPerReg.toFixed(3)} ms/reg${row.perBatch === undefined ? "" : `  ${row.perBatch.toFixed(1)} reg/batch`}`,
      );
      console.log(`          after: ${await openSqliteFiles(workerdPids)} open .sqlite files, workerd RSS ${await rssMiB(workerdPids)} MiB`);
      if (args["sample-threads"]) console.log(`          workerd threads (non-sleeping samples of ${row.workerdThreads.samples}): ${JSON.stringify(row.workerdThreads.states)}`);
    }
  }
  const mixed: Sustained[] = [];
  const lookupClients = (args["lookup-client"] ?? "").split(",").map((c) => {
    if (c !== "lean" && c !== "autocannon") throw new Error(`--lookup-client takes lean or autocannon, not ${JSON.stringify(c)}`);
    return c;
  });
  const lookupRates = (args["lookup-rate"] ?? "").split(",").map(Number);
  if (lookupRates.some((r) => !(r > 0))) throw new Error(`--lookup-rate takes lookups per second (a comma list is taken phase by phase), not ${JSON.stringify(args["lookup-rate"])}`);
  if (Number(args.sustain) > 0)
    for (const rate of (args["refresh-rate"] ?? "").split(",").map(Number)) {
      const lookupRate = lookupRates[mixed.length % lookupRates.length]!;
      const warmup = mixed.length === 0 ? Math.ceil(registered.length / lookupRate) + 2 : 0;
      const lookupClient = lookupClients[mixed.length % lookupClients.length]!;
      mixed.push(await sustained(port, child.pid!, workerdPids, key, registered, scratch, rate, warmup, lookupClient, lookupRate));
      printSustained(mixed.at(-1)!);
    }
  for (let waited = 0; waited < Number(args.hold); waited += 5) {
    console.log(`+${waited}s idle: ${await openSqliteFiles(workerdPids)} open .sqlite files, workerd RSS ${await rssMiB(workerdPids)} MiB`);
    await sleep(5000);
  }
  const memory = { frontRssMiB: await rssMiB([child.pid!]), workerdRssMiB: await rssMiB(workerdPids), meshes: registered.length };
  console.log(`end: ${memory.meshes} meshes registered; RSS front ${memory.frontRssMiB} MiB, workerd ${memory.workerdRssMiB} MiB (all shards)`);
  console.log(`storage error lines logged by the server: ${storageErrors.size === 0 ? "none" : JSON.stringify(Object.fromEntries(storageErrors))}`);
  if (args.json)
    await writeFile(
      args.json,
      JSON.stringify(
        { shards, meshBuckets: args["mesh-buckets"], workerBundle: args["worker-bundle"], meshesPerPhase, results, sustained: mixed, memory, storageErrors: Object.fromEntries(storageErrors) },
        null,
        2,
      ) + "\n",
    );
} finally {
  child.kill("SIGTERM");
  await Promise.race([once(child, "exit"), sleep(10_000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await rm(scratch, { recursive: true, force: true });
}
