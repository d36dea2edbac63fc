// CLI start-up benchmark: how long the built `coral` bin takes for
// --version and for the read commands against a running colony, as a ratio
// to `node -e 0` measured in the same run (absolute times on a shared VM
// drift; the ratio of interleaved runs does not).
//
//   node --conditions=coral-source --import tsx bench/cli/run.ts [--runs 15] [--warmup 2] [--compare <bin>]
//   npm run bench:cli
//
// --compare <path>/cli/bin/coral.js measures another build's bin too (e.g. a
// built `git archive` of the last commit), every coral case once more per
// round, labelled "(compare)": before/after figures from the same run.
//
// Setup: a real colony (temp project after `coral init`, its own nats-server
// and DuckDB file) in this process; 5 synthetic agents register over Connect
// and heartbeat; 6 h of 1-minute summaries for 3 metrics per agent plus
// deploy/restart events go in through the store's ingest API, then a rollup;
// every agent publishes its connections over NATS, so the topology has edges.
//
// Measured: --runs rounds after --warmup rounds; every round runs each case
// once as a fresh process (node cli/bin/coral.js …, the built JavaScript, as
// the `coral` bin does), in a shuffled order, wall time from spawn to exit,
// started by a small process of its own (bench/cli/spawner.mjs), without
// NODE_OPTIONS or NODE_EXTRA_CA_CERTS.
// Read commands use --colony-url and --token (the local token works from
// loopback); "status (in project)" runs in the project folder with no flags,
// as a user types it. Targets: --version ≤ 2×, read commands ≤ 4× node -e 0
// (medians). Exits non-zero only when a command fails, never for a missed target.
import { execFileSync, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { HealthStatus } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { TelemetryBatchSchema, type Event, type MetricSummary, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { colonyApi, createTestProject } from "../../tests/helpers/colony.ts";
import { SyntheticAgent } from "../../tests/helpers/synthetic-agent.ts";
import { loadAverage, machineInfo, median, percentile, round, table } from "../colony-ingest/lib.ts";
import { summary } from "../colony-ingest/workload.ts";
import { positive } from "../args.ts";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../..");
const coralBin = join(repoRoot, "cli", "bin", "coral.js");
const minute = 60_000;

const { values: args } = parseArgs({
  options: {
    runs: { type: "string", default: "15" },
    warmup: { type: "string", default: "2" },
    compare: { type: "string" },
  },
});
const options = { runs: positive("runs", args.runs), warmup: Number(args.warmup), compare: args.compare ? resolve(args.compare) : undefined };
if (!Number.isInteger(options.warmup) || options.warmup < 0) throw new Error(`--warmup must be a whole number (got ${args.warmup})`);
const log = (m: string) => process.stderr.write(`[bench:cli] ${m}\n`);
const svc = (a: number) => `svc-${String(a).padStart(2, "0")}`;

interface Case {
  name: string;
  /** Arguments after `node`. */
  argv: string[];
  cwd?: string;
  /** Median ratio to node -e 0 it must stay under; none for the baseline. */
  target?: number;
  /** Something the output must contain, so a failing command cannot look fast. */
  expect?: RegExp;
  /** The command's RPC, made in this process: how much of its time is the colony's answer. */
  call?: () => Promise<unknown>;
}

interface Run {
  ms: number;
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the measured commands from bench/cli/spawner.mjs, a small process of its own (why: see there). */
class Spawner {
  private readonly child = spawn(process.execPath, [join(here, "spawner.mjs")], { stdio: ["pipe", "pipe", "inherit"] });
  private readonly pending = new Map<number, (run: Run) => void>();
  private nextId = 0;

  constructor() {
    createInterface({ input: this.child.stdout! }).on("line", (line) => {
      const { id, ...run } = JSON.parse(line) as Run & { id: number };
      this.pending.get(id)?.(run);
      this.pending.delete(id);
    });
  }

  run(c: Case, env: NodeJS.ProcessEnv): Promise<Run> {
    const id = this.nextId++;
    return new Promise((done) => {
      this.pending.set(id, done);
      this.child.stdin!.write(`${JSON.stringify({ id, argv: c.argv, cwd: c.cwd ?? repoRoot, env })}\n`);
    });
  }

  close(): void {
    this.child.stdin!.end();
  }
}

function shuffle<T>(items: T[]): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function gitState(): { commit: string; uncommittedChanges: string[] } {
  const git = (...a: string[]) => {
    try {
      return execFileSync("git", a, { cwd: repoRoot, encoding: "utf8" }).trim();
    } catch {
      return "";
    }
  };
  const changes = git("status", "--porcelain", "--", "cli", "colony/src/index.ts", "colony/package.json", "common", "proto/src", "scripts/build.mjs");
  return { commit: git("rev-parse", "HEAD"), uncommittedChanges: changes ? changes.split("\n").map((l) => l.trim()) : [] };
}

async function main(): Promise<void> {
  const machine = await machineInfo();
  log(`machine: ${JSON.stringify(machine)}`);
  await using project = await createTestProject({ app: "bench-cli" });
  const colony = await project.start();
  const api = colonyApi(colony.url, project.localToken);

  // ---- 5 agents, 6 h of 1-minute summaries for 3 metrics each, events, connections
  const metricNames = ["cpu_percent", "memory_bytes", "http_latency_ms"];
  const agents = Array.from(
    { length: 5 },
    (_, a) => new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: `agent-${a}`, serviceName: svc(a), port: 10_000 + a, version: `2.${a}.0` }),
  );
  for (const [a, agent] of agents.entries()) {
    await agent.register();
    await agent.heartbeat(a === 3 ? HealthStatus.DEGRADED : HealthStatus.HEALTHY, { restartCount: a });
  }
  const hours = 6;
  const end = Math.floor(Date.now() / minute) * minute - minute;
  const first = end - (hours * 60 - 1) * minute;
  const ev = (id: string, at: number, type: string, details: Record<string, unknown>) =>
    ({ eventId: id, timestamp: timestampFromDate(new Date(at)), eventType: type, detailsJson: JSON.stringify(details) }) as Event;
  const batches: TelemetryBatch[] = [];
  agents.forEach((agent, a) => {
    for (let h = 0; h < hours; h++) {
      const metrics: MetricSummary[] = [];
      for (let m = 0; m < 60; m++) metricNames.forEach((name, k) => metrics.push(summary(name, new Date(first + (h * 60 + m) * minute), a + h + m + k)));
      const hourStart = first + h * 60 * minute;
      const events: Event[] = [ev(`deploy-${a}-${h}`, hourStart + (5 + a) * minute, "deploy", { version: `2.${a}.${h}`, previous: `2.${a}.${Math.max(0, h - 1)}` })];
      if ((h + a) % 3 === 0) events.push(ev(`restart-${a}-${h}`, hourStart + 30 * minute, "restart", { exit_code: 137, signal: "SIGKILL", reason: "OOMKilled" }));
      batches.push(create(TelemetryBatchSchema, { batchId: `load-${a}-${h}`, agentId: agent.options.agentId, serviceName: agent.options.serviceName, createdAt: timestampFromDate(new Date()), metrics, events }));
    }
  });
  let rows = 0;
  let events = 0;
  for (let i = 0; i < batches.length; i += 10) {
    const r = await colony.store.ingest(batches.slice(i, i + 10));
    rows += r.metricRows;
    events += r.eventRows;
  }
  await colony.store.rollup(new Date());
  const observedAt = timestampFromDate(new Date());
  for (const [a, agent] of agents.entries()) {
    const peers = [(a + 1) % agents.length, (a + 2) % agents.length].map((p) => `127.0.0.1:${10_000 + p}`);
    await agent.publish({
      connections: [...peers, "10.0.0.5:5432"].map((remote, i) => ({ localAddr: `127.0.0.1:${40_000 + a * 10 + i}`, remoteAddr: remote, state: "ESTABLISHED", observedAt, count: 1 + i })),
    });
  }
  const waitUntil = Date.now() + 60_000;
  while ((await api.getTopology({})).edges.length < agents.length) {
    if (Date.now() > waitUntil) throw new Error("the topology has no edges after 60 s");
    await new Promise((r) => setTimeout(r, 250));
  }
  log(`colony ${colony.url}: ${agents.length} agents, ${rows} 1-minute rows, ${events} events, topology ready`);

  // ---- cases
  const remote = ["--colony-url", colony.url, "--token", project.localToken];
  const cases: Case[] = [
    { name: "node -e 0", argv: ["-e", "0"] },
    { name: "coral --version", argv: [coralBin, "--version"], target: 2, expect: /^\d+\.\d+\.\d+/ },
    { name: "coral status", argv: [coralBin, "status", ...remote], target: 4, expect: /svc-03/, call: () => api.getStatus({}) },
    { name: "coral status (in project)", argv: [coralBin, "status"], cwd: project.dir, target: 4, expect: /svc-03/ },
    { name: "coral topology", argv: [coralBin, "topology", ...remote], target: 4, expect: /svc-01/, call: () => api.getTopology({}) },
    {
      name: "coral events",
      argv: [coralBin, "events", "--since", "24h", ...remote],
      target: 4,
      expect: /deploy/,
      call: () => api.queryEvents({ since: timestampFromDate(new Date(Date.now() - 24 * 3600_000)), limit: 100 }),
    },
    {
      name: "coral metrics",
      argv: [coralBin, "metrics", svc(2), "cpu_percent", "--since", "10m", ...remote],
      target: 4,
      expect: /cpu_percent/,
      call: () => api.queryMetrics({ service: svc(2), metricName: "cpu_percent", since: timestampFromDate(new Date(Date.now() - 10 * minute)) }),
    },
  ];
  if (options.compare) {
    const bin = options.compare;
    cases.push(...cases.filter((c) => c.argv[0] === coralBin).map((c) => ({ ...c, name: `${c.name} (compare)`, argv: [bin, ...c.argv.slice(1)] })));
  }
  // NO_COLOR and a pipe: what a script sees; CORAL_HOME of the project (no
  // other colony is current); CORAL_API_PORT because the colony listens on
  // the port it was given, not the one in .coral/config.yaml.
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1", CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port };
  delete env.NODE_OPTIONS;
  // Node reads NODE_EXTRA_CA_CERTS as it starts: with a system bundle of ~150
  // certificates (a proxy set-up on this VM) that adds ~65 ms to every
  // process, node -e 0 included, which would flatter every ratio. These
  // commands speak plain HTTP to loopback; measure them as a user's shell runs them.
  const extraCaCerts = env.NODE_EXTRA_CA_CERTS;
  delete env.NODE_EXTRA_CA_CERTS;
  if (extraCaCerts) log(`NODE_EXTRA_CA_CERTS (${extraCaCerts}) unset for the measured processes`);
  const samples = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  const check = (c: Case, r: Run) => {
    if (r.code !== 0 || (c.expect && !c.expect.test(r.stdout))) throw new Error(`${c.name} failed (exit ${r.code}):\n${r.stdout.slice(0, 2000)}\n${r.stderr.slice(0, 2000)}`);
  };
  const loadBefore = await loadAverage();
  const spawner = new Spawner();
  for (let round = 0; round < options.warmup + options.runs; round++) {
    for (const c of shuffle(cases)) {
      const r = await spawner.run(c, env);
      check(c, r);
      if (round >= options.warmup) samples.get(c.name)!.push(r.ms);
    }
    if (round === options.warmup - 1) log("warm-up done");
  }
  spawner.close();
  const loadAfter = await loadAverage();
  // The colony's share of each command: the same RPC from this process with a
  // warm client, i.e. the colony's answer plus one loopback round trip.
  const callMs = new Map<string, number>();
  for (const c of cases) {
    if (!c.call || callMs.has(c.name)) continue;
    for (let i = 0; i < 3; i++) await c.call();
    const times: number[] = [];
    for (let i = 0; i < options.runs; i++) {
      const t = performance.now();
      await c.call();
      times.push(performance.now() - t);
    }
    callMs.set(c.name, median(times));
  }

  const baseline = median(samples.get("node -e 0")!);
  const results = cases.map((c) => {
    const s = [...samples.get(c.name)!].sort((a, b) => a - b);
    const p50 = median(s);
    const ratio = p50 / baseline;
    return {
      name: c.name,
      argv: c.argv.map((a) => (a === coralBin ? "cli/bin/coral.js" : a === project.localToken ? "<local token>" : a)),
      cwd: c.cwd ? "<project>" : undefined,
      runs: s.length,
      medianMs: round(p50, 1),
      p90Ms: round(percentile(s, 90), 1),
      minMs: round(s[0]!, 1),
      ratio: round(ratio, 2),
      rpcInProcessMs: callMs.has(c.name) ? round(callMs.get(c.name)!, 1) : undefined,
      target: c.target,
      met: c.target === undefined ? undefined : ratio <= c.target,
      samplesMs: s.map((v) => round(v, 1)),
    };
  });

  console.log(
    `\nCLI start-up: ${options.runs} rounds after ${options.warmup} warm-up rounds, each case once per round in a shuffled order, fresh process each; ` +
      `colony with ${agents.length} agents, ${rows} 1-minute rows and ${events} events. Ratio = median / median(node -e 0).\n`,
  );
  console.log(
    table(
      ["command", "median ms", "p90 ms", "min ms", "ratio", "target", "", "RPC in process ms"],
      results.map((r) => [
        r.name,
        r.medianMs.toFixed(1),
        r.p90Ms.toFixed(1),
        r.minMs.toFixed(1),
        `${r.ratio.toFixed(2)}×`,
        r.target ? `≤ ${r.target}×` : "",
        r.met === undefined ? "" : r.met ? "met" : "MISSED",
        r.rpcInProcessMs === undefined ? "" : r.rpcInProcessMs.toFixed(1),
      ]),
    ),
  );
  console.log(`\nload average ${loadBefore} before, ${loadAfter} after (1 min; ${machine.nproc} CPUs)`);
  console.log("RPC in process: the command's call from the bench process (warm Connect client): the colony's answer plus one loopback round trip.");

  const out = join(repoRoot, "bench", "results", `cli-${new Date().toISOString().slice(0, 10)}.json`);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(
    out,
    JSON.stringify({ machine, options, code: gitState(), unsetForMeasuredProcesses: { NODE_OPTIONS: process.env.NODE_OPTIONS, NODE_EXTRA_CA_CERTS: extraCaCerts }, loadAverage: { before: loadBefore, after: loadAfter }, rows, events, results }, null, 2),
  );
  log(`wrote ${out}`);
  for (const agent of agents) await agent[Symbol.asyncDispose]();
}

await main();
