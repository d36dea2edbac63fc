// Discovery benchmark: starts self-hosted coral-discovery as its own process,
// registers 1, then 100, then 10,000 meshes (signed colony registrations over
// Connect JSON), and after each step drives LookupColony from a second process
// with autocannon: once as fast as the server answers (the most it serves),
// once at the target rate (the latency it serves that rate with). Prints a
// table and writes bench/results/discovery-<date>T<hhmm>Z.json.
//
//   node --import tsx bench/discovery/run.ts [--duration 10] [--connections 50]
//     [--warmup 2] [--rest-duration 5] [--concurrency 32 (registrations and first lookups in flight)] [--counts 1,100,10000]
//     [--skip-direct] [--shards N] [--answer-cache N] [--churn 100]
//
// --answer-cache is coral-discovery's (0 turns the front's answer cache off,
// so every lookup reaches workerd). --churn re-registers meshes at that many
// per second during one more run at the target rate and the largest count, as
// colony heartbeats do; each re-registration drops the mesh's cached answers.
// --rate sets the fixed-rate runs (default: the target, 5,000/s; 0 skips them).
//
// Exits non-zero only when something breaks (server does not start, a
// registration or lookup is refused, the load generator fails), never because
// a target is missed.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readdir, readlink, rm, writeFile } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir, totalmem } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { PollTimeoutError, backoffMs, pollUntil, sleep } from "@coral/common/async";
import { colonyFieldsJson, generateIdentityKey, sign, toBase64, type ColonyRegistrationFields, type IdentityKey } from "@coral/proto";
import type { LoadConfig, LoadResult } from "./types.ts";
import { freePort } from "../../tests/helpers/ports.ts";
import { procInfo, processTree } from "./proc.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const loadScript = join(repoRoot, "bench/discovery/load.ts");
const connectLookupPath = "/coral.discovery.v1.DiscoveryService/LookupColony";
const connectRegisterPath = "/coral.discovery.v1.DiscoveryService/RegisterColony";
const target = { lookupsPerSecond: 5000, p99Ms: 20 };

const { values: args } = parseArgs({
  options: {
    duration: { type: "string", default: "10" },
    connections: { type: "string", default: "50" },
    warmup: { type: "string", default: "2" },
    "rest-duration": { type: "string", default: "5" },
    concurrency: { type: "string", default: "32" },
    counts: { type: "string", default: "1,100,10000" },
    "skip-direct": { type: "boolean", default: false },
    // coral-discovery --shards; default: its own (the number of CPUs)
    shards: { type: "string" },
    // coral-discovery --answer-cache; default: its own
    "answer-cache": { type: "string" },
    churn: { type: "string", default: "100" },
    rate: { type: "string", default: "5000" },
  },
});

function positive(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number (got ${value})`);
  return n;
}

const options = {
  durationSeconds: positive("duration", args.duration),
  connections: positive("connections", args.connections),
  warmupSeconds: positive("warmup", args.warmup),
  restDurationSeconds: positive("rest-duration", args["rest-duration"]),
  registerConcurrency: positive("concurrency", args.concurrency),
  meshCounts: (args.counts ?? "")
    .split(",")
    .map((c) => positive("counts", c.trim()))
    .sort((a, b) => a - b),
  direct: !args["skip-direct"],
  shards: args.shards === undefined ? undefined : positive("shards", args.shards),
  answerCache: args["answer-cache"] === undefined ? undefined : positive("answer-cache", args["answer-cache"]),
  churnPerSecond: positive("churn", args.churn),
  fixedRate: positive("rate", args.rate),
};
if (options.meshCounts.length === 0 || options.meshCounts[0] === 0) throw new Error("--counts needs positive mesh counts");

// ---------------------------------------------------------------- processes

const clockTicks = 100; // USER_HZ; 100 on every Linux this runs on


/** Busy CPU ticks of the whole machine (all CPUs), from /proc/stat. */
async function machineBusyTicks(): Promise<number> {
  const stat = await readFile("/proc/stat", "utf8").catch(() => "");
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = (stat.split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return user + nice + system + irq + softirq + steal;
}

interface CpuTicks {
  front: number;
  workerd: number;
  machine: number;
  /** Resident memory of all workerd processes, MiB. */
  workerdRssMiB: number;
}

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? 0) / 1024;
}

/** CPU ticks of the server's processes, split into the Node front and workerd, and of the whole machine. */
async function serverCpuTicks(serverPid: number): Promise<CpuTicks> {
  const [tree, machine] = await Promise.all([processTree(serverPid), machineBusyTicks()]);
  let front = 0;
  let workerd = 0;
  let workerdRssMiB = 0;
  for (const p of tree) {
    if (p.comm.startsWith("workerd")) {
      workerd += p.cpuTicks;
      workerdRssMiB += await rssMiB(p.pid);
    } else front += p.cpuTicks;
  }
  return { front, workerd, machine, workerdRssMiB };
}

/** TCP ports a process listens on, from its socket inodes and /proc/net/tcp{,6}. */
async function listeningPorts(pid: number): Promise<number[]> {
  const inodes = new Set<string>();
  try {
    for (const fd of await readdir(`/proc/${pid}/fd`)) {
      const link = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m?.[1]) inodes.add(m[1]);
    }
  } catch {
    return [];
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await readFile(table, "utf8").catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols[3] !== "0A" || !cols[9] || !inodes.has(cols[9])) continue; // 0A: LISTEN
      const port = parseInt(cols[1]?.split(":").pop() ?? "", 16);
      if (Number.isInteger(port)) ports.push(port);
    }
  }
  return ports;
}

// ------------------------------------------------------------------- server

interface RunningServer {
  url: string;
  child: ChildProcess;
  output: string[];
  /** Error lines the server (workerd included) logged so far, by message. */
  errors: Map<string, number>;
  stop(): Promise<void>;
}

/** workerd logs an error as "…: error: <message>; … wdErrId = <id>" followed by a "stack:" line. */
function errorSignature(line: string): string | undefined {
  if (!/\berror\b|\bERROR\b|SQLITE_/.test(line) || line.startsWith("stack:")) return undefined;
  return line
    .replace(/; sentryErrorContext = .*$/, "")
    .replace(/(wdErrId|reference) = \w+/g, "$1 = …")
    .trim()
    .slice(0, 300);
}

async function startServer(dataDir: string): Promise<RunningServer> {
  const port = await freePort();
  const bin = join(repoRoot, "node_modules/.bin/coral-discovery");
  const child = spawn(
    bin,
    [
      ...["--port", String(port), "--host", "127.0.0.1", "--data-dir", dataDir, "--rate-limit", "0", "--log-level", "warn"],
      // Long enough that the first meshes outlive a slow 10,000-mesh registration on a busy machine.
      ...["--ttl", "3600"],
      ...(options.shards === undefined ? [] : ["--shards", String(options.shards)]),
      ...(options.answerCache === undefined ? [] : ["--answer-cache", String(options.answerCache)]),
    ],
    { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"], detached: true },
  );
  const output: string[] = [];
  const errors = new Map<string, number>();
  let partial = "";
  const keep = (chunk: Buffer) => {
    const lines = (partial + chunk.toString()).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines.filter(Boolean)) {
      const signature = errorSignature(line);
      if (signature && (errors.has(signature) || errors.size < 50)) errors.set(signature, (errors.get(signature) ?? 0) + 1);
      output.push(line.length > 500 ? line.slice(0, 500) + "…" : line);
    }
    if (output.length > 200) output.splice(0, output.length - 200);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = once(child, "exit").then(([code, signal]) => {
    exited = { code: code as number | null, signal: signal as NodeJS.Signals | null };
  });
  const spawnError = once(child, "error").then(([err]) => {
    throw err as Error;
  });
  spawnError.catch(() => {});

  const workerdPids = new Set<number>();
  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      if (child.pid !== undefined) {
        for (const p of await processTree(child.pid)) if (p.comm.startsWith("workerd")) workerdPids.add(p.pid);
      }
      if (!exited && child.pid !== undefined) {
        child.kill("SIGTERM");
        const timedOut = await Promise.race([exit.then(() => false), sleep(10_000).then(() => true)]);
        if (timedOut) {
          try {
            process.kill(-child.pid, "SIGKILL"); // the server's own process group (spawned detached)
          } catch {
            // already gone
          }
          await Promise.race([exit, sleep(2_000)]);
        }
      }
      // workerd normally exits with the server; make sure none of ours lingers.
      for (const pid of workerdPids) {
        const p = await procInfo(pid);
        if (p?.comm.startsWith("workerd")) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // already gone
          }
        }
      }
    })());

  const url = `http://127.0.0.1:${port}`;
  await pollUntil(
    async () => {
      if (exited) {
        throw new Error(`coral-discovery exited (${exited.code ?? exited.signal}) before answering /health:\n${output.join("\n")}`);
      }
      try {
        const res = await Promise.race([fetch(`${url}/health`, { signal: AbortSignal.timeout(2_000) }), spawnError]);
        if (res.ok) return true;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`cannot run ${bin}: run npm ci first`);
      }
      return undefined;
    },
    { what: "coral-discovery to answer GET /health", timeoutMs: 60_000, intervalMs: 100, onError: "throw" },
  ).catch(async (err: unknown) => {
    if (!(err instanceof PollTimeoutError)) throw err;
    await stop();
    throw new Error(`coral-discovery did not answer GET /health within 60 s:\n${output.join("\n")}`);
  });
  return { url, child, output, errors, stop };
}

// ------------------------------------------------------------- registration

function meshFields(meshId: string): ColonyRegistrationFields {
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

const registerAttempts = 4;

/**
 * One signed registration. Like DiscoveryClient, it retries "unavailable"
 * (503) and connection failures with backoff, signing afresh each time so a
 * retry is never refused as a replay; every retry is counted in `retries`.
 */
async function registerColony(
  url: string,
  fields: ColonyRegistrationFields,
  key: IdentityKey,
): Promise<{ elapsedMs: number; retries: string[] }> {
  const retries: string[] = [];
  for (let attempt = 1; ; attempt++) {
    const sig = await sign("colony-registration", colonyFieldsJson(fields), key);
    const body = JSON.stringify({
      ...fields,
      signature: { identityPubkey: sig.identityPubkey, signedAtMs: sig.signedAtMs.toString(), signature: sig.signature },
    });
    const started = performance.now();
    let failure: string;
    try {
      const res = await fetch(url + connectRegisterPath, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      if (res.ok) return { elapsedMs: performance.now() - started, retries };
      failure = `HTTP ${res.status} ${text}`;
      if (res.status !== 503) throw new Error(`RegisterColony ${fields.meshId}: ${failure}`);
    } catch (err) {
      if (!(err instanceof TypeError)) throw err; // fetch reports connection failures as TypeError
      failure = `${err.message}${err.cause instanceof Error ? `: ${err.cause.message}` : ""}`;
    }
    if (attempt >= registerAttempts) throw new Error(`RegisterColony ${fields.meshId}: ${failure} (after ${attempt} attempts)`);
    retries.push(failure);
    await sleep(backoffMs(attempt - 1, 100, Infinity, { jitter: "none" })); // 100, 200, 400 ms
  }
}

/** Runs fn over items with at most `limit` in flight; stops at the first failure. */
async function inPool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0;
}

interface RegistrationFigures {
  fromMeshes: number;
  toMeshes: number;
  registrations: number;
  concurrency: number;
  seconds: number;
  perSecond: number;
  latencyMs: { p50: number; p99: number; max: number };
  /** Attempts retried after a 503 or a connection failure, by reason. */
  retries: Record<string, number>;
}

async function registerBatch(
  url: string,
  ids: readonly string[],
  key: IdentityKey,
  pubkeys: Map<string, string>,
  concurrency: number,
): Promise<Omit<RegistrationFigures, "fromMeshes" | "toMeshes">> {
  const latencies: number[] = [];
  const retries: Record<string, number> = {};
  const started = performance.now();
  await inPool(ids, concurrency, async (meshId) => {
    const fields = meshFields(meshId);
    const outcome = await registerColony(url, fields, key);
    latencies.push(outcome.elapsedMs);
    for (const reason of outcome.retries) retries[reason] = (retries[reason] ?? 0) + 1;
    pubkeys.set(meshId, fields.pubkey);
  });
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    registrations: ids.length,
    concurrency,
    seconds,
    perSecond: ids.length / seconds,
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? 0 },
    retries,
  };
}

interface ChurnFigures {
  perSecondAsked: number;
  registrations: number;
  perSecond: number;
  failures: number;
}

/**
 * Re-registers meshes at a steady rate (at most 32 in flight) until stopped,
 * the way colonies' heartbeats do while lookups go on.
 */
function startChurn(url: string, ids: readonly string[], key: IdentityKey, perSecond: number) {
  const started = performance.now();
  let stopped = false;
  let issued = 0;
  let done = 0;
  let failures = 0;
  let inFlight = 0;
  const loop = (async () => {
    while (!stopped) {
      const due = Math.floor(((performance.now() - started) / 1000) * perSecond);
      while (issued < due && inFlight < 32) {
        const meshId = ids[issued++ % ids.length]!;
        inFlight++;
        void registerColony(url, meshFields(meshId), key)
          .then(() => void done++, () => void failures++)
          .finally(() => void inFlight--);
      }
      await sleep(10);
    }
    while (inFlight > 0) await sleep(10);
  })();
  return async (): Promise<ChurnFigures> => {
    stopped = true;
    const seconds = (performance.now() - started) / 1000;
    await loop;
    return { perSecondAsked: perSecond, registrations: done, perSecond: done / seconds, failures };
  };
}

interface FirstLookupFigures {
  meshes: number;
  lookups: number;
  concurrency: number;
  seconds: number;
  perSecond: number;
  latencyMs: { p50: number; p99: number; max: number };
}

/**
 * Looks up every newly registered mesh once over Connect and checks each
 * answer. Nothing has asked for these meshes yet, so no answer is cached
 * anywhere in front of the worker: this is the cold path.
 */
async function firstLookups(
  url: string,
  ids: readonly string[],
  pubkeys: Map<string, string>,
  concurrency: number,
  meshes: number,
): Promise<FirstLookupFigures> {
  const latencies: number[] = [];
  const started = performance.now();
  await inPool(ids, concurrency, async (meshId) => {
    const begun = performance.now();
    const res = await fetch(url + connectLookupPath, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ meshId }),
    });
    const answer = (await res.json()) as { pubkey?: string };
    latencies.push(performance.now() - begun);
    if (res.status !== 200 || answer.pubkey !== pubkeys.get(meshId))
      throw new Error(`LookupColony ${meshId}: HTTP ${res.status}, pubkey ${answer.pubkey ?? "(none)"} instead of ${pubkeys.get(meshId)}`);
  });
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((x, y) => x - y);
  return {
    meshes,
    lookups: ids.length,
    concurrency,
    seconds,
    perSecond: ids.length / seconds,
    latencyMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? 0 },
  };
}

// ------------------------------------------------------------------- lookups

interface LookupFigures extends LoadResult {
  scenario: string;
  target: "public port" | "inner workerd port";
  meshes: number;
  /** CPU used during the measured window, in cores (1.0 = one core busy); other: the rest of the machine. */
  cores: { front: number; workerd: number; loadGenerator: number; other: number };
  /** CPU milliseconds spent per completed request, by process. */
  cpuMsPerRequest: { front: number; workerd: number; loadGenerator: number };
  /** Resident memory of all workerd processes at the end of the window, MiB. */
  workerdRssMiB: number;
  /** Error lines the server logged during the run (warm-up included), by message. */
  serverErrors: Record<string, number>;
}

let activeLoad: ChildProcess | undefined;

async function runLoad(scenario: string, config: LoadConfig, server: RunningServer, scratch: string): Promise<LookupFigures> {
  const serverPid = server.child.pid ?? 0;
  const errorsBefore = new Map(server.errors);
  const configPath = join(scratch, `load-${scenario.replace(/\W+/g, "-")}.json`);
  await writeFile(configPath, JSON.stringify(config));
  const child = spawn(process.execPath, ["--import", "tsx", loadScript, configPath], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  activeLoad = child;
  let stderr = "";
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  let buffered = "";
  let startTicks: CpuTicks | undefined;
  let endTicks: CpuTicks | undefined;
  let startedAt = 0;
  let endedAt = 0;
  let result: (LoadResult & { cpuSeconds: number }) | undefined;
  const pending: Promise<void>[] = [];
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (!line.trim()) continue;
      const message = JSON.parse(line) as { event: string } & Partial<LoadResult & { cpuSeconds: number }>;
      if (message.event === "start") {
        startedAt = performance.now();
        pending.push(serverCpuTicks(serverPid).then((t) => void (startTicks = t)));
      } else if (message.event === "end") {
        endedAt = performance.now();
        pending.push(serverCpuTicks(serverPid).then((t) => void (endTicks = t)));
      } else if (message.event === "result") {
        result = message as LoadResult & { cpuSeconds: number };
      }
    }
  });
  const [code] = (await once(child, "exit")) as [number | null];
  activeLoad = undefined;
  await Promise.all(pending);
  if (code !== 0 || !result) throw new Error(`load generator failed (exit ${code}):\n${stderr}`);
  const wall = (endedAt - startedAt) / 1000;
  const cores = (seconds: number) => (wall > 0 ? seconds / wall : 0);
  const { cpuSeconds, ...figures } = result;
  await sleep(200); // let the server's last log lines arrive
  const serverErrors = Object.fromEntries(
    [...server.errors].map(([m, n]) => [m, n - (errorsBefore.get(m) ?? 0)] as const).filter(([, n]) => n > 0),
  );
  const used = {
    front: startTicks && endTicks ? (endTicks.front - startTicks.front) / clockTicks : 0,
    workerd: startTicks && endTicks ? (endTicks.workerd - startTicks.workerd) / clockTicks : 0,
    loadGenerator: cpuSeconds,
    machine: startTicks && endTicks ? (endTicks.machine - startTicks.machine) / clockTicks : 0,
  };
  const other = Math.max(0, used.machine - used.front - used.workerd - used.loadGenerator);
  const perRequest = (seconds: number) => (figures.requests > 0 ? (seconds * 1000) / figures.requests : 0);
  return {
    scenario,
    target: scenario.startsWith("direct-") ? "inner workerd port" : "public port",
    meshes: config.meshIds.length,
    ...figures,
    cores: { front: cores(used.front), workerd: cores(used.workerd), loadGenerator: cores(used.loadGenerator), other: cores(other) },
    cpuMsPerRequest: { front: perRequest(used.front), workerd: perRequest(used.workerd), loadGenerator: perRequest(used.loadGenerator) },
    workerdRssMiB: Math.round(endTicks?.workerdRssMiB ?? 0),
    serverErrors,
  };
}

/**
 * Finds the port workerd serves the worker on (behind the Node front), if any:
 * the one answering an unknown Connect method with the worker's own
 * "unimplemented" error, which needs no Durable Object (so works under load).
 */
async function innerWorkerdUrl(serverPid: number): Promise<string | undefined> {
  for (const p of await processTree(serverPid)) {
    if (!p.comm.startsWith("workerd")) continue;
    for (const port of await listeningPorts(p.pid)) {
      const url = `http://127.0.0.1:${port}`;
      try {
        const res = await fetch(`${url}/coral.discovery.v1.DiscoveryService/BenchProbe`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
          signal: AbortSignal.timeout(2_000),
        });
        const body = (await res.json()) as { code?: string };
        if (res.status === 501 && body.code === "unimplemented") return url;
      } catch {
        // not the entry socket
      }
    }
  }
  return undefined;
}

/** The shard count coral-discovery recorded in its data dir (1 before sharding existed). */
async function shardsOf(dataDir: string): Promise<number> {
  const layout = await readFile(join(dataDir, "shards.json"), "utf8").catch(() => '{"shards":1}');
  return (JSON.parse(layout) as { shards: number }).shards;
}

// -------------------------------------------------------------------- report

/** The commit measured, and whether the discovery worker or proto sources differ from it. */
function codeVersion(): { commit: string; uncommittedChanges: string[] } {
  const git = (...a: string[]) => execFileSync("git", a, { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  try {
    const changes = git("status", "--porcelain", "--", "discovery-worker", "proto");
    return { commit: git("rev-parse", "HEAD"), uncommittedChanges: changes ? changes.split("\n").map((l) => l.trim()) : [] };
  } catch {
    return { commit: "unknown", uncommittedChanges: [] };
  }
}

const startLoad = loadavg().map((l) => Math.round(l * 100) / 100);

async function machine() {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  return {
    nproc: availableParallelism(),
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    /** 1, 5 and 15 minute load averages when the bench started: other work on the machine skews the figures. */
    loadAverageAtStart: startLoad,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
}

const fmt = (n: number, digits = 0) => n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

function printTable(rows: Array<Record<string, string>>): void {
  const first = rows[0];
  if (!first) return;
  const cols = Object.keys(first);
  const width = (c: string) => Math.max(c.length, ...rows.map((r) => (r[c] ?? "").length));
  const line = (r: Record<string, string>) =>
    cols.map((c, i) => (i === 0 ? (r[c] ?? "").padEnd(width(c)) : (r[c] ?? "").padStart(width(c)))).join("  ");
  console.log(line(Object.fromEntries(cols.map((c) => [c, c]))));
  console.log(cols.map((c) => "-".repeat(width(c))).join("  "));
  for (const r of rows) console.log(line(r));
}

// ---------------------------------------------------------------------- main

async function main(): Promise<number> {
  const scratch = await mkdtemp(join(tmpdir(), "coral-bench-discovery-"));
  const dataDir = join(scratch, "data");
  let server: RunningServer | undefined;
  let interrupted = false;
  const cleanup = async () => {
    activeLoad?.kill("SIGTERM");
    await server?.stop();
    await rm(scratch, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals) => {
    interrupted = true;
    console.error(`\n${signal}: stopping the server and cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  // A closed stdout (e.g. piped into `head`) must not cut the cleanup short.
  process.stdout.on("error", () => {});
  // Last resort if this process dies before cleanup ran: the server runs in its
  // own process group (spawned detached), so SIGTERM it and drop the scratch folder.
  const onExit = () => {
    const pid = server?.child.pid;
    if (pid !== undefined && server?.child.exitCode === null && server.child.signalCode === null) {
      try {
        process.kill(-pid, "SIGTERM");
      } catch {
        // already gone
      }
    }
    rmSync(scratch, { recursive: true, force: true });
  };
  process.once("exit", onExit);

  try {
    const startedAt = new Date();
    const startCode = codeVersion();
    console.log(`discovery bench: ${options.meshCounts.join(" → ")} meshes, ${options.connections} connections, ${options.durationSeconds} s per lookup run`);
    console.log(`load average at start: ${startLoad.join(", ")} (${availableParallelism()} CPUs)`);
    console.log(
      `code: ${startCode.commit.slice(0, 12)}` +
        (startCode.uncommittedChanges.length ? ` + uncommitted changes in ${startCode.uncommittedChanges.length} discovery-worker/proto file(s)` : ""),
    );
    const serverStart = performance.now();
    server = await startServer(dataDir);
    const serverPid = server.child.pid ?? 0;
    console.log(`coral-discovery answering at ${server.url} after ${fmt((performance.now() - serverStart) / 1000, 1)} s (pid ${serverPid}, ${await shardsOf(dataDir)} shard(s))`);

    const key = await generateIdentityKey();
    const runTag = Date.now().toString(36);
    const pubkeys = new Map<string, string>();
    const meshIds: string[] = [];
    const registrations: RegistrationFigures[] = [];
    const lookups: LookupFigures[] = [];
    let churn: ChurnFigures | undefined;
    const firstLookupRuns: FirstLookupFigures[] = [];
    const largest = options.meshCounts.at(-1) ?? 0;

    for (const count of options.meshCounts) {
      const from = meshIds.length;
      const batch: string[] = [];
      for (let i = from; i < count; i++) batch.push(`bench-${runTag}-${i}`);
      if (batch.length > 0) {
        process.stdout.write(`registering ${fmt(batch.length)} meshes (${fmt(from)} → ${fmt(count)}) … `);
        const figures = await registerBatch(server.url, batch, key, pubkeys, options.registerConcurrency);
        meshIds.push(...batch);
        registrations.push({ fromMeshes: from, toMeshes: count, ...figures });
        const retried = Object.values(figures.retries).reduce((a, b) => a + b, 0);
        console.log(
          `${fmt(figures.perSecond)}/s, p50 ${fmt(figures.latencyMs.p50, 1)} ms, p99 ${fmt(figures.latencyMs.p99, 1)} ms` +
            (retried ? `, ${fmt(retried)} retried (${Object.keys(figures.retries).join("; ")})` : ""),
        );
      }
      if (batch.length > 0) {
        process.stdout.write(`first lookup of each new mesh (${fmt(batch.length)}, cold) … `);
        const cold = await firstLookups(server.url, batch, pubkeys, options.registerConcurrency, count);
        firstLookupRuns.push(cold);
        console.log(`${fmt(cold.perSecond)}/s, p50 ${fmt(cold.latencyMs.p50, 1)} ms, p99 ${fmt(cold.latencyMs.p99, 1)} ms`);
      }

      const base: Omit<LoadConfig, "mode" | "url"> = {
        meshIds: [...meshIds],
        connections: options.connections,
        durationSeconds: options.durationSeconds,
        warmupSeconds: options.warmupSeconds,
      };
      process.stdout.write(`Connect LookupColony over ${fmt(count)} meshes … `);
      const connect = await runLoad(`connect-${count}`, { ...base, mode: "connect", url: server.url }, server, scratch);
      lookups.push(connect);
      console.log(`${fmt(connect.requestsPerSecond)} req/s, p99 ${fmt(connect.latencyMs.p99, 1)} ms`);

      if (options.fixedRate > 0) {
        process.stdout.write(`Connect LookupColony over ${fmt(count)} meshes at ${fmt(options.fixedRate)}/s … `);
        const atRate = await runLoad(
          `connect-at-${options.fixedRate}-${count}`,
          { ...base, mode: "connect", url: server.url, overallRate: options.fixedRate },
          server,
          scratch,
        );
        lookups.push(atRate);
        console.log(`${fmt(atRate.requestsPerSecond)} req/s, p99 ${fmt(atRate.latencyMs.p99, 1)} ms`);
      }

      if (count === largest && options.churnPerSecond > 0) {
        const rate = options.fixedRate || undefined;
        process.stdout.write(
          `Connect LookupColony over ${fmt(count)} meshes${rate ? ` at ${fmt(rate)}/s` : ""} while re-registering ${fmt(options.churnPerSecond)}/s … `,
        );
        const stopChurn = startChurn(server.url, meshIds, key, options.churnPerSecond);
        const mixed = await runLoad(
          `connect-churn-${count}`,
          { ...base, mode: "connect", url: server.url, overallRate: rate },
          server,
          scratch,
        ).finally(async () => void (churn = await stopChurn()));
        lookups.push(mixed);
        console.log(
          `${fmt(mixed.requestsPerSecond)} req/s, p99 ${fmt(mixed.latencyMs.p99, 1)} ms; ` +
            `${fmt(churn?.registrations ?? 0)} re-registrations (${fmt(churn?.perSecond ?? 0)}/s, ${fmt(churn?.failures ?? 0)} failed)`,
        );
        if (churn?.failures) throw new Error(`${churn.failures} re-registrations failed during the churn run`);
      }

      if (count === largest && options.restDurationSeconds > 0) {
        process.stdout.write(`REST GET /v1/mesh/<id>/colony over ${fmt(count)} meshes … `);
        const rest = await runLoad(
          `rest-${count}`,
          { ...base, mode: "rest", url: server.url, durationSeconds: options.restDurationSeconds },
          server,
          scratch,
        );
        lookups.push(rest);
        console.log(`${fmt(rest.requestsPerSecond)} req/s, p99 ${fmt(rest.latencyMs.p99, 1)} ms`);
      }
      const shardCount = await shardsOf(dataDir);
      if (count === largest && options.direct && shardCount > 1) {
        console.log(`${shardCount} shards: one workerd port serves only its own meshes; skipping the direct comparison run`);
      } else if (count === largest && options.direct) {
        const inner = await innerWorkerdUrl(serverPid);
        if (inner) {
          process.stdout.write(`Connect LookupColony straight to workerd (${inner}, no Node front) … `);
          const direct = await runLoad(`direct-connect-${count}`, { ...base, mode: "connect", url: inner }, server, scratch);
          lookups.push(direct);
          console.log(`${fmt(direct.requestsPerSecond)} req/s, p99 ${fmt(direct.latencyMs.p99, 1)} ms`);
        } else {
          console.log("inner workerd port not found; skipping the direct comparison run");
        }
      }
    }

    const health = (await (await fetch(`${server.url}/health`)).json()) as Record<string, unknown>;
    // Met when the most the server serves is at least the target rate, and it
    // serves the target rate with p99 under the target (the fixed-rate runs;
    // without them, the p99 of the fastest runs counts).
    const verdicts = options.meshCounts.map((meshes) => {
      const fastest = lookups.find((l) => l.scenario === `connect-${meshes}`);
      const atRate = lookups.find((l) => l.scenario === `connect-at-${options.fixedRate}-${meshes}`);
      const latency = atRate ?? fastest;
      const clean = [fastest, atRate].every((l) => !l || (l.non2xx === 0 && l.errors === 0 && l.timeouts === 0));
      return {
        meshes,
        requestsPerSecond: Math.round(fastest?.requestsPerSecond ?? 0),
        p99Ms: latency?.latencyMs.p99 ?? Infinity,
        p99At: atRate ? `${options.fixedRate}/s` : "the fastest rate",
        met:
          clean &&
          (fastest?.requestsPerSecond ?? 0) >= target.lookupsPerSecond &&
          (latency?.latencyMs.p99 ?? Infinity) < target.p99Ms &&
          (!atRate || atRate.requestsPerSecond >= options.fixedRate * 0.98),
      };
    });
    const met = verdicts.length > 0 && verdicts.every((v) => v.met);

    console.log("\nRegistrations (Connect RegisterColony, signed, JSON)");
    printTable(
      registrations.map((r) => ({
        meshes: `${fmt(r.fromMeshes)} → ${fmt(r.toMeshes)}`,
        registrations: fmt(r.registrations),
        "in flight": String(r.concurrency),
        seconds: fmt(r.seconds, 2),
        "reg/s": fmt(r.perSecond),
        "p50 ms": fmt(r.latencyMs.p50, 1),
        "p99 ms": fmt(r.latencyMs.p99, 1),
        retried: fmt(Object.values(r.retries).reduce((a, b) => a + b, 0)),
      })),
    );
    console.log("\nFirst lookup of each mesh (Connect JSON, nothing cached in front of the worker)");
    printTable(
      firstLookupRuns.map((r) => ({
        meshes: fmt(r.meshes),
        lookups: fmt(r.lookups),
        "in flight": String(r.concurrency),
        seconds: fmt(r.seconds, 2),
        "lookups/s": fmt(r.perSecond),
        "p50 ms": fmt(r.latencyMs.p50, 1),
        "p99 ms": fmt(r.latencyMs.p99, 1),
      })),
    );
    console.log(`\nLookups (autocannon, ${options.connections} connections, separate process)`);
    printTable(
      lookups.map((l) => ({
        scenario: l.scenario,
        meshes: fmt(l.meshes),
        seconds: fmt(l.durationSeconds, 1),
        "req/s": fmt(l.requestsPerSecond),
        "2xx/s": fmt(l.durationSeconds > 0 ? l.ok2xx / l.durationSeconds : 0),
        "p50 ms": fmt(l.latencyMs.p50, 1),
        "p99 ms": fmt(l.latencyMs.p99, 1),
        "max ms": fmt(l.latencyMs.max, 1),
        "non-2xx": fmt(l.non2xx),
        errors: fmt(l.errors + l.timeouts),
        "CPU front": fmt(l.cores.front, 2),
        "CPU workerd": fmt(l.cores.workerd, 2),
        "CPU loadgen": fmt(l.cores.loadGenerator, 2),
        "CPU other": fmt(l.cores.other, 2),
        "workerd ms/req": fmt(l.cpuMsPerRequest.workerd, 2),
        "front ms/req": fmt(l.cpuMsPerRequest.front, 2),
        "workerd RSS MiB": fmt(l.workerdRssMiB),
      })),
    );
    console.log(
      "CPU columns: cores busy during the measured window (1.00 = one core; other = everything else on the machine); ms/req: CPU time per completed request.",
    );
    for (const l of lookups.filter((x) => x.non2xx > 0 || Object.keys(x.serverErrors).length > 0)) {
      const codes = Object.entries(l.statusCodes).map(([c, n]) => `${c}×${fmt(n)}`).join(", ");
      console.log(`\n${l.scenario}: status codes ${codes}; server logged:`);
      for (const [message, n] of Object.entries(l.serverErrors)) console.log(`  ${fmt(n)}× ${message}`);
    }
    console.log(
      `\nTarget ≥ ${fmt(target.lookupsPerSecond)} lookups/s with p99 < ${target.p99Ms} ms (Connect, public port): ${met ? "MET" : "NOT MET"}` +
        ` (${verdicts.map((v) => `${fmt(v.meshes)} meshes: at most ${fmt(v.requestsPerSecond)}/s, p99 ${fmt(v.p99Ms, 1)} ms at ${v.p99At}`).join("; ")})`,
    );

    const report = {
      benchmark: "discovery",
      date: startedAt.toISOString(),
      command: "node --import tsx bench/discovery/run.ts " + process.argv.slice(2).join(" "),
      machine: await machine(),
      code: startCode,
      config: options,
      serverStartSeconds: (performance.now() - serverStart) / 1000,
      health,
      registrations,
      firstLookups: firstLookupRuns,
      churn,
      lookups,
      target: { ...target, met, verdicts },
    };
    const resultsDir = join(repoRoot, "bench/results");
    await mkdir(resultsDir, { recursive: true });
    const file = join(resultsDir, `discovery-${startedAt.toISOString().slice(0, 16).replace(":", "")}Z.json`);
    await writeFile(file, JSON.stringify(report, null, 2) + "\n");
    console.log(`\nwrote ${relative(process.cwd(), file) || file}`);
    return 0;
  } catch (err) {
    if (interrupted) return 130;
    console.error(`\ndiscovery bench failed: ${err instanceof Error ? err.message : String(err)}`);
    if (server?.output.length) console.error(`last server output:\n${server.output.slice(-30).join("\n")}`);
    return 1;
  } finally {
    await cleanup();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    process.off("exit", onExit);
  }
}

process.exitCode = await main();
