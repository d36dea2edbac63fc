// Agent footprint benchmark. Prints a table and writes bench/results/agent-footprint-<date>.json.
//
//   node --import tsx bench/agent-footprint/run.ts [--minutes 10] [--lean-minutes 3]
//     [--baseline-seconds 30] [--rss-interval 5] [--lean-node-flags="<node flags>"]
//
// 1. Baselines: idle processes sampled like the agent, to split its RSS:
//    bare `node -e "setInterval(()=>{},1000)"`, `node --import tsx` of a
//    one-line file (bench/agent-footprint/idle.ts), that plus the coral CLI's
//    modules loaded, and that plus an empty agent store (SQLite) opened with the
//    agent's settings.
// 2. A real colony (temp project after `coral init`; the colony runtime in this
//    process with its own nats-server), one sample component
//    (`node component.mjs store <port>`), and ONE agent started as a user
//    would, as its own process:
//      node cli/bin/coral.js connect store --port <p> --health <url> --metrics <url>
//    in the project directory with CORAL_HOME and CORAL_API_PORT set, default
//    sampling (1 s) and retention (1 h).
// 3. Once the agent says it is connected and observing, for --minutes:
//    VmRSS from /proc/<pid>/status every 5 s; utime+stime from /proc/<pid>/stat
//    (CLK_TCK 100) at start and end; the agent's TCP sockets to the NATS port
//    and to the colony API port from `ss -tinp` every second, each socket's
//    bytes_acked (bytes the colony's side acknowledged) summed over every
//    socket seen, so connections opened and closed during the run count too.
//    At the end, the size of the agent's store files, then the agent is
//    stopped (SIGTERM) and the sizes read again.
// 4. Experiments (--lean-minutes each, 0 skips them), run one after the other
//    once the agent above has stopped, against the same colony and component,
//    measured the same way: the same startAgent call from an entry point that
//    loads only @coral/agent (lean-agent.ts), through tsx, then bundled with
//    esbuild and run by plain node. They show what a lean, precompiled agent
//    entry would weigh; they are not how users run the agent.
//    --lean-node-flags="<flags>" adds a third run of the bundle with those node
//    flags (e.g. --cpu-prof --cpu-prof-dir=/tmp/prof). The bundle is built in
//    bench/agent-footprint/.lean-build-<pid>/ (so its npm imports resolve) and
//    removed at the end.
// --agent-node-flags="<flags>" runs the agent (`coral connect`) with those node
//    flags, e.g. --cpu-prof --cpu-prof-dir=/tmp/prof, or --heapsnapshot-signal=SIGUSR2.
// --services N (default 1): N sample components and one agent observing them
//    all (`coral connect store:<p>/health store2:<p2>/health …`); the figures
//    are that one process's; the colony rows and store files are store's.
// Exits non-zero only when something breaks, never because a target is missed.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { sampleComponentScript } from "@coral/cli/sample-app";
import { PollTimeoutError, pollUntil, sleep } from "@coral/common/async";
import { colonyApi, createTestProject, mintInvitation } from "../../tests/helpers/colony.ts";
import { freePort } from "../../tests/helpers/ports.ts";
import { CLK_TCK, commandLine, descendants, loadAverage, machineInfo, readCpuTicks, readPss, readSockets, readStatus, readThreadTicks, smapsBreakdown, SocketTally, type ByteTotals, type MemStatus } from "./proc.ts";

/** A child process by what it runs: a kernel program by its first comment line, else the command. */
function childKind(command: string): string {
  if (command.includes("inet_sock_set_state")) return "bpftrace (connections)";
  if (command.includes("RED metrics")) return "bpftrace (requests)";
  if (command.includes("always-on CPU")) return "bpftrace (always-on profile)";
  return command.split(" ")[0]!.split("/").pop()!;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const coralBin = join(repoRoot, "cli/bin/coral.js");
const here = join(repoRoot, "bench/agent-footprint");

const targets = {
  rssMb: 80,
  cpuPercent: 1,
  bytesPerSecond: 1024,
  seedGo: { rssMb: 50, cpuPercent: 0.1 },
};

const { values: args } = parseArgs({
  options: {
    minutes: { type: "string", default: "10" },
    "baseline-seconds": { type: "string", default: "30" },
    "rss-interval": { type: "string", default: "5" },
    "lean-minutes": { type: "string", default: "3" },
    "lean-node-flags": { type: "string", default: "" },
    "agent-node-flags": { type: "string", default: "" },
    services: { type: "string", default: "1" },
  },
});

function positive(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number (got ${value})`);
  return n;
}

const minutes = positive("minutes", args.minutes);
const baselineSeconds = positive("baseline-seconds", args["baseline-seconds"]);
const rssIntervalMs = positive("rss-interval", args["rss-interval"]) * 1000;
const netIntervalMs = 1000;
const leanMinutes = args["lean-minutes"] === "0" ? 0 : positive("lean-minutes", args["lean-minutes"]);
// --services N (> 1): N sample components and ONE agent for all of them
// (`coral connect store:<p>/health store2:<p2>/health …`, issue 24).
const serviceCount = Math.round(positive("services", args.services));

const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);
const mb = (kb: number) => kb / 1024;
const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

interface RssSummary {
  samples: number;
  startMb: number;
  maxMb: number;
  meanMb: number;
  endMb: number;
  /** VmHWM at the end: the peak RSS since the process started, startup included. */
  peakSinceStartMb: number;
}

function summarizeRss(samples: MemStatus[]): RssSummary {
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (!first || !last) throw new Error("no RSS samples");
  const values = samples.map((s) => s.vmRssKb);
  return {
    samples: samples.length,
    startMb: round(mb(first.vmRssKb)),
    maxMb: round(mb(Math.max(...values))),
    meanMb: round(mb(values.reduce((a, b) => a + b, 0) / values.length)),
    endMb: round(mb(last.vmRssKb)),
    peakSinceStartMb: round(mb(last.vmHwmKb)),
  };
}

function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join("  ");
  return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...cells.slice(1).map(line)].join("\n");
}

function waitForOutput(child: ChildProcess, what: string, test: (out: string) => boolean, timeoutMs: number, output: () => string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; output so far:\n${output()}`));
    }, timeoutMs);
    const check = () => {
      if (!test(output())) return;
      cleanup();
      resolvePromise();
    };
    const exited = (code: number | null) => {
      cleanup();
      reject(new Error(`process exited (${code}) before ${what}; output:\n${output()}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off("data", check);
      child.stderr?.off("data", check);
      child.off("exit", exited);
    };
    child.stdout?.on("data", check);
    child.stderr?.on("data", check);
    child.once("exit", exited);
    check();
  });
}

function stopProcess(child: ChildProcess, signal: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolvePromise(code);
    });
    child.kill(signal);
  });
}

function spawnCaptured(cmd: string, argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) {
  const child = spawn(cmd, argv, { cwd: options.cwd ?? repoRoot, env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  return { child, output: () => out };
}

async function filesIn(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of await readdir(dir).catch(() => [] as string[])) out[name] = (await stat(join(dir, name))).size;
  return out;
}

// ------------------------------------------------------------------ baselines

interface Baseline {
  name: string;
  command: string;
  rss: RssSummary;
  cpuPercent: number;
  threads: number;
  smapsKb: ReturnType<typeof smapsBreakdown>;
}

async function measureBaselines(scratch: string): Promise<Baseline[]> {
  const node = process.execPath;
  const baselineScript = relative(repoRoot, join(here, "baseline.ts"));
  const specs: Array<{ name: string; argv: string[] }> = [
    { name: "node (bare)", argv: ["-e", "console.log('ready');setInterval(()=>{},1000)"] },
    { name: "node + tsx", argv: ["--import", "tsx", relative(repoRoot, join(here, "idle.ts"))] },
    { name: "node + tsx + coral modules", argv: ["--import", "tsx", baselineScript, "modules"] },
    { name: "node + tsx + agent store (SQLite, agent defaults)", argv: ["--import", "tsx", baselineScript, "store", join(scratch, "store")] },
  ];
  const running = specs.map((s) => ({ ...s, ...spawnCaptured(node, s.argv) }));
  try {
    await Promise.all(
      running.map(async (r) => {
        // The tsx idle file prints nothing: give it the same settle time.
        if (r.name === "node + tsx") await sleep(3000);
        else await waitForOutput(r.child, `${r.name} to be ready`, (o) => o.includes("ready"), 60_000, r.output);
      }),
    );
    await sleep(2000);
    const samples = running.map(() => [] as MemStatus[]);
    const ticks0 = running.map((r) => readCpuTicks(r.child.pid!));
    const t0 = Date.now();
    for (;;) {
      running.forEach((r, i) => samples[i]!.push(readStatus(r.child.pid!)));
      if (Date.now() - t0 >= baselineSeconds * 1000) break;
      await sleep(Math.min(rssIntervalMs, baselineSeconds * 1000 - (Date.now() - t0)));
    }
    const seconds = (Date.now() - t0) / 1000;
    return running.map((r, i) => ({
      name: r.name,
      command: `node ${r.argv.map((a) => (/[\s'()]/.test(a) ? JSON.stringify(a) : a)).join(" ")}`,
      rss: summarizeRss(samples[i]!),
      cpuPercent: round(((readCpuTicks(r.child.pid!) - ticks0[i]!) / CLK_TCK / seconds) * 100, 3),
      threads: readStatus(r.child.pid!).threads,
      smapsKb: smapsBreakdown(r.child.pid!),
    }));
  } finally {
    await Promise.all(running.map((r) => stopProcess(r.child, "SIGKILL")));
  }
}

// ------------------------------------------------------------------ the agent

interface TimelinePoint {
  tSeconds: number;
  rssMb: number;
  cpuSecondsSinceStart: number;
  bytesAckedToColony: number;
}

interface PortBytes {
  port: number;
  ackedBytes: number;
  sentBytes: number;
  receivedBytes: number;
  segmentsOut: number;
}

/** IPv4 (20) + TCP with the timestamp option (32) header bytes per segment, for a rough on-the-wire estimate. */
const HEADER_BYTES = 52;

interface Measurement {
  pid: number;
  seconds: number;
  connectSeconds: number;
  startupCpuSeconds: number;
  rss: RssSummary;
  finalStatus: MemStatus;
  smapsKb: ReturnType<typeof smapsBreakdown>;
  pssAtEndKb: ReturnType<typeof readPss>;
  cpuSeconds: number;
  cpuPercent: number;
  /** CPU of the main (JavaScript) thread, and of all the other threads together. */
  cpuPercentMainThread: number;
  cpuPercentOtherThreads: number;
  bytesPerSecond: number;
  /** Payload plus HEADER_BYTES per segment sent (segments of sockets closed between samples partly missed). */
  wireBytesPerSecondEstimate: number;
  ackedBytes: number;
  perPort: { nats: PortBytes; api: PortBytes };
  socketsSeen: number;
  /** Descendant processes seen during the run, with their command lines. */
  children: Array<{ pid: number; command: string }>;
  childRssKb: number;
  /** The agent's child processes (bpftrace, addr2line): alive at the end, their RSS, PSS and anonymous RSS summed; CPU over the run. */
  childrenAtEnd: { alive: number; rssKb: number; rssAnonKb: number; pssKb: number; cpuPercent: number };
  timeline: TimelinePoint[];
}

type Captured = ReturnType<typeof spawnCaptured>;

/** Waits for the agent to connect and observe, then samples it for `minutes`. */
async function measureAgent(agent: Captured, spawnedAt: number, ports: { nats: number; api: number }, measureMinutes: number, label: string): Promise<Measurement> {
  const pid = agent.child.pid!;
  await waitForOutput(agent.child, `${label} to connect and observe`, (o) => o.includes("✓ Connected: ") && o.includes("Observing: pid"), 120_000, agent.output);
  const connectSeconds = (Date.now() - spawnedAt) / 1000;
  const startupCpuSeconds = readCpuTicks(pid) / CLK_TCK;
  log(`${label}: pid ${pid} connected and observing after ${round(connectSeconds, 2)} s (${round(startupCpuSeconds, 2)} s CPU to get there); measuring for ${measureMinutes} min`);

  const portList = [ports.nats, ports.api];
  const tally = new SocketTally();
  tally.update(await readSockets(pid, portList));
  const bytesAtStart = tally.totals();
  const acked = () => sumPorts(tally.totals(), portList, "acked") - sumPorts(bytesAtStart, portList, "acked");
  const ticks0 = readCpuTicks(pid);
  const mainTicks0 = readThreadTicks(pid).get(pid) ?? 0;
  const t0 = Date.now();
  const endAt = t0 + measureMinutes * 60_000;
  const rssSamples: MemStatus[] = [readStatus(pid)];
  const timeline: TimelinePoint[] = [];
  const childPids = new Map<number, string>();
  // CPU ticks of each child when first seen and when last seen (a child that exits keeps its last reading).
  const childTicks = new Map<number, { first: number; last: number }>();
  const noteChildren = () => {
    for (const c of descendants(pid)) {
      if (!childPids.has(c)) childPids.set(c, commandLine(c));
      try {
        const t = readCpuTicks(c);
        const seen = childTicks.get(c);
        if (seen) seen.last = t;
        else childTicks.set(c, { first: t, last: t });
      } catch {
        // gone
      }
    }
  };
  let nextRss = t0 + rssIntervalMs;
  let nextLog = t0 + 60_000;
  while (Date.now() < endAt) {
    if (agent.child.exitCode !== null) throw new Error(`${label} exited (${agent.child.exitCode}) during the run:\n${agent.output()}`);
    await sleep(Math.max(0, Math.min(netIntervalMs - ((Date.now() - t0) % netIntervalMs), endAt - Date.now())));
    tally.update(await readSockets(pid, portList));
    noteChildren();
    if (Date.now() >= nextRss) {
      nextRss += rssIntervalMs;
      const s = readStatus(pid);
      rssSamples.push(s);
      timeline.push({ tSeconds: round((Date.now() - t0) / 1000, 1), rssMb: round(mb(s.vmRssKb)), cpuSecondsSinceStart: round((readCpuTicks(pid) - ticks0) / CLK_TCK, 2), bytesAckedToColony: acked() });
    }
    if (Date.now() >= nextLog) {
      nextLog += 60_000;
      const elapsed = (Date.now() - t0) / 1000;
      const last = rssSamples[rssSamples.length - 1]!;
      log(`  ${label} ${round(elapsed / 60, 1)} min: RSS ${round(mb(last.vmRssKb))} MB, CPU ${round(((readCpuTicks(pid) - ticks0) / CLK_TCK / elapsed) * 100, 2)} %, ${round(acked() / elapsed, 1)} B/s to the colony`);
    }
  }
  const seconds = (Date.now() - t0) / 1000;
  const cpuTicks = readCpuTicks(pid) - ticks0;
  const mainTicks = (readThreadTicks(pid).get(pid) ?? 0) - mainTicks0;
  const finalStatus = readStatus(pid);
  rssSamples.push(finalStatus);
  const smapsKb = smapsBreakdown(pid);
  const pssAtEndKb = readPss(pid);
  tally.update(await readSockets(pid, portList));
  const bytesAtEnd = tally.totals();
  noteChildren();
  const childrenAtEnd = { alive: 0, rssKb: 0, rssAnonKb: 0, pssKb: 0, cpuPercent: 0 };
  for (const p of descendants(pid)) {
    try {
      const st = readStatus(p);
      const pss = readPss(p);
      childrenAtEnd.alive++;
      childrenAtEnd.rssKb += st.vmRssKb;
      childrenAtEnd.rssAnonKb += st.rssAnonKb;
      childrenAtEnd.pssKb += pss.pssKb;
    } catch {
      // gone
    }
  }
  const childRssKb = childrenAtEnd.rssKb;
  childrenAtEnd.cpuPercent = round(([...childTicks.values()].reduce((n, t) => n + t.last - t.first, 0) / CLK_TCK / seconds) * 100, 3);
  const delta = (port: number): PortBytes => ({
    port,
    ackedBytes: (bytesAtEnd.get(port)?.acked ?? 0) - (bytesAtStart.get(port)?.acked ?? 0),
    sentBytes: (bytesAtEnd.get(port)?.sent ?? 0) - (bytesAtStart.get(port)?.sent ?? 0),
    receivedBytes: (bytesAtEnd.get(port)?.received ?? 0) - (bytesAtStart.get(port)?.received ?? 0),
    segmentsOut: (bytesAtEnd.get(port)?.segsOut ?? 0) - (bytesAtStart.get(port)?.segsOut ?? 0),
  });
  const perPort = { nats: delta(ports.nats), api: delta(ports.api) };
  const ackedBytes = perPort.nats.ackedBytes + perPort.api.ackedBytes;
  const pct = (ticks: number) => round((ticks / CLK_TCK / seconds) * 100, 3);
  return {
    pid,
    seconds: round(seconds, 1),
    connectSeconds: round(connectSeconds, 2),
    startupCpuSeconds: round(startupCpuSeconds, 2),
    rss: summarizeRss(rssSamples),
    finalStatus,
    smapsKb,
    pssAtEndKb,
    cpuSeconds: round(cpuTicks / CLK_TCK, 2),
    cpuPercent: pct(cpuTicks),
    cpuPercentMainThread: pct(mainTicks),
    cpuPercentOtherThreads: pct(cpuTicks - mainTicks),
    bytesPerSecond: round(ackedBytes / seconds, 1),
    wireBytesPerSecondEstimate: round((ackedBytes + HEADER_BYTES * (perPort.nats.segmentsOut + perPort.api.segmentsOut)) / seconds, 1),
    ackedBytes,
    perPort,
    socketsSeen: tally.socketsSeen,
    children: [...childPids].map(([p, command]) => ({ pid: p, command })),
    childRssKb,
    childrenAtEnd,
    timeline,
  };
}

/** Bundles lean-agent.ts with esbuild (workspace TypeScript inlined, npm packages left external) into `outDir`. */
async function bundleLeanAgent(outDir: string): Promise<string> {
  const esbuild = await import("esbuild");
  const outfile = join(outDir, "lean-agent.mjs");
  await esbuild.build({
    entryPoints: [join(here, "lean-agent.ts")],
    outfile,
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
    plugins: [
      {
        name: "externalize-npm-packages",
        setup(build) {
          build.onResolve({ filter: /^[^./]/ }, (a) => (a.path.startsWith("@coral/") ? undefined : { path: a.path, external: true }));
        },
      },
    ],
  });
  return outfile;
}

async function main() {
  const machine = machineInfo();
  const startedAt = new Date();
  log(`agent footprint: ${minutes} min measured, RSS every ${rssIntervalMs / 1000} s, sockets every ${netIntervalMs / 1000} s${leanMinutes > 0 ? `; then ${leanMinutes} min each of two lean-agent experiments` : ""}`);
  log(`machine: ${machine.nproc} CPUs (${machine.cpuModel}), ${round(machine.memTotalKb / 1024 / 1024, 1)} GiB, Linux ${machine.kernel}, Node ${machine.node}; load ${loadAverage().join(" ")}`);

  const scratch = await mkdtemp(join(tmpdir(), "coral-agent-footprint-"));
  // The bundle must sit inside the repository so its npm imports resolve from node_modules.
  const buildDir = join(here, `.lean-build-${process.pid}`);
  log(`baselines: ${baselineSeconds} s of idle processes ...`);
  const baselines = await measureBaselines(scratch);
  for (const b of baselines) log(`  ${b.name}: RSS ${b.rss.endMb} MB (max ${b.rss.maxMb}), ${b.threads} threads`);

  await using project = await createTestProject();
  const colony = await project.start();
  const ports = { api: Number(new URL(colony.url).port), nats: Number(new URL(colony.natsUrl).port) };
  log(`colony ${project.colonyId}: API ${colony.url}, NATS ${colony.natsUrl} (in this process)`);

  const appPorts: number[] = [];
  for (let i = 0; i < serviceCount; i++) appPorts.push(await freePort());
  const appPort = appPorts[0]!;
  const apps = appPorts.map((p) => spawn(process.execPath, [sampleComponentScript, "store", String(p)], { stdio: "ignore" }));
  const app = apps[0]!;
  const running: Captured[] = [];
  try {
    await pollUntil(() => fetch(`http://127.0.0.1:${appPort}/health`).then((r) => (r.ok ? true : undefined), () => undefined), {
      what: "the sample component's /health",
      timeoutMs: 10_000,
      intervalMs: 100,
    }).catch((err: unknown) => {
      throw err instanceof PollTimeoutError ? new Error("the sample component never answered /health") : err;
    });
    const base = `http://127.0.0.1:${appPort}`;
    const loadBefore = loadAverage();

    // ---- the agent as users run it
    const agentArgs =
      serviceCount === 1
        ? ["connect", "store", "--port", String(appPort), "--health", `${base}/health`, "--metrics", `${base}/metrics`]
        : ["connect", ...appPorts.map((p, i) => `store${i === 0 ? "" : i + 1}:${p}/health`)];
    const command = `node ${args["agent-node-flags"] ? args["agent-node-flags"] + " " : ""}cli/bin/coral.js ${agentArgs.join(" ")}`;
    log(`agent: ${command} (cwd ${project.dir}, CORAL_HOME=${project.home}, CORAL_API_PORT=${ports.api})`);
    const spawnedAt = Date.now();
    const agentNodeFlags = (args["agent-node-flags"] ?? "").split(/\s+/).filter(Boolean);
    const agent = spawnCaptured(process.execPath, [...agentNodeFlags, coralBin, ...agentArgs], {
      cwd: project.dir,
      env: { ...process.env, CORAL_HOME: project.home, CORAL_API_PORT: String(ports.api), NO_COLOR: "1" },
    });
    running.push(agent);
    const m = await measureAgent(agent, spawnedAt, ports, minutes, "agent");
    const dataDir = join(project.dir, ".coral", "agents", "store");
    const filesRunning = await filesIn(dataDir);

    // What the colony got from it.
    const api = colonyApi(colony.url, project.localToken);
    const service = (await api.getStatus({})).services.find((s) => s.name === "store");
    const colonyRows = await colony.store.read(async (c) => {
      const q = async (sql: string) => Number((await c.runAndReadAll(sql)).getRowObjectsJS()[0]?.n ?? 0);
      return {
        batches: await q("select count(*) as n from ingested_batches"),
        summaryRows1m: await q("select count(*) as n from metric_summaries where service_id = 'store' and interval = '1m'"),
        events: await q("select count(*) as n from events where service_id = 'store'"),
      };
    });
    const exitCode = await stopProcess(agent.child);
    const filesAfterStop = await filesIn(dataDir);
    const loadAfter = loadAverage();
    const storeSize = (files: Record<string, number>) => Object.entries(files).filter(([n]) => n.startsWith("agent.sqlite")).reduce((a, [, size]) => a + size, 0);
    const storeBytes = storeSize(filesRunning);
    const storeBytesAfterStop = storeSize(filesAfterStop);

    // ---- experiments: the same startAgent call from a lean entry point
    const lean: Array<{ name: string; command: string; measurement: Measurement }> = [];
    if (leanMinutes > 0) {
      const leanArgs = (service: string) => [service, String(appPort), `${base}/health`, `${base}/metrics`, colony.url, join(project.dir, ".coral", "agents", service)];
      const variants: Array<{ name: string; service: string; argv: () => Promise<string[]> }> = [
        { name: "lean entry (only @coral/agent) through tsx", service: "store-lean-tsx", argv: async () => ["--import", "tsx", join(here, "lean-agent.ts")] },
        {
          name: "lean entry bundled with esbuild, plain node (no tsx)",
          service: "store-lean-bundle",
          argv: async () => [await bundleLeanAgent(buildDir)],
        },
      ];
      const flags = (args["lean-node-flags"] ?? "").split(/\s+/).filter(Boolean);
      if (flags.length > 0)
        variants.push({ name: `lean entry bundled, plain node ${flags.join(" ")}`, service: "store-lean-flags", argv: async () => [...flags, await bundleLeanAgent(buildDir)] });
      for (const v of variants) {
        let argv: string[];
        try {
          argv = await v.argv();
        } catch (err) {
          log(`experiment "${v.name}" skipped: ${(err as Error).message}`);
          continue;
        }
        const full = [...argv, ...leanArgs(v.service)];
        // Each lean agent has its own data folder, so its own key: a one-use invitation from
        // the colony (with the project's local token, as coral connect does), through the environment.
        const invitation = await mintInvitation(colony.url, project.localToken, `agent-footprint ${v.service}`);
        const spawned = Date.now();
        const child = spawnCaptured(process.execPath, full, {
          env: {
            ...process.env,
            CORAL_BENCH_INVITATION_ID: invitation.invitationId,
            CORAL_BENCH_INVITATION_SECRET: invitation.invitationSecret,
            CORAL_BENCH_COLONY_PUBKEY: invitation.colonyPubkey,
            NO_COLOR: "1",
          },
        });
        running.push(child);
        const measurement = await measureAgent(child, spawned, ports, leanMinutes, v.name);
        await stopProcess(child.child);
        lean.push({ name: v.name, command: `node ${full.map((a) => (a.startsWith(repoRoot + "/") ? relative(repoRoot, a) : a)).join(" ")}`, measurement });
      }
    }

    // ---- figures
    const met = {
      rss: m.rss.maxMb < targets.rssMb,
      cpu: m.cpuPercent < targets.cpuPercent,
      bytes: m.bytesPerSecond < targets.bytesPerSecond,
      seedGoRss: m.rss.maxMb < targets.seedGo.rssMb,
      seedGoCpu: m.cpuPercent < targets.seedGo.cpuPercent,
    };
    const yes = (b: boolean) => (b ? "yes" : "NO");

    console.log(`\nAgent (pid ${m.pid}), ${round(m.seconds / 60, 2)} min measured; load average ${loadBefore.join(" ")} before, ${loadAfter.join(" ")} after\n`);
    console.log(
      table(
        ["figure", "value", "target", "met", "seed Go target", "met"],
        [
          ["RSS start (MB)", m.rss.startMb, "", "", "", ""],
          ["RSS max (MB)", m.rss.maxMb, `< ${targets.rssMb}`, yes(met.rss), `< ${targets.seedGo.rssMb}`, yes(met.seedGoRss)],
          ["RSS mean (MB)", m.rss.meanMb, "", "", "", ""],
          ["RSS end (MB)", m.rss.endMb, "", "", "", ""],
          ["RSS peak since spawn, VmHWM (MB)", m.rss.peakSinceStartMb, "", "", "", ""],
          ["CPU (% of one core)", m.cpuPercent, `< ${targets.cpuPercent}`, yes(met.cpu), `< ${targets.seedGo.cpuPercent}`, yes(met.seedGoCpu)],
          ["  main thread / other threads (%)", `${m.cpuPercentMainThread} / ${m.cpuPercentOtherThreads}`, "", "", "", ""],
          ["to colony, bytes acked (B/s)", m.bytesPerSecond, `< ${targets.bytesPerSecond}`, yes(met.bytes), "", ""],
          ["  of which NATS (B/s)", round(m.perPort.nats.ackedBytes / m.seconds, 1), "", "", "", ""],
          ["  of which Connect API (B/s)", round(m.perPort.api.ackedBytes / m.seconds, 1), "", "", "", ""],
          ["  with TCP/IP headers, estimate (B/s)", m.wireBytesPerSecondEstimate, "", "", "", ""],
          ["from colony, bytes received (B/s)", round((m.perPort.nats.receivedBytes + m.perPort.api.receivedBytes) / m.seconds, 1), "", "", "", ""],
          ["store files while running (KB)", round(storeBytes / 1024), "", "", "", ""],
          ["store file after stop (KB)", round(storeBytesAfterStop / 1024), "", "", "", ""],
          ["threads", m.finalStatus.threads, "", "", "", ""],
          ["startup: spawn → connected (s)", m.connectSeconds, "", "", "", ""],
          ["startup CPU (s)", m.startupCpuSeconds, "", "", "", ""],
        ],
      ),
    );
    console.log(`\nStore files while running: ${JSON.stringify(filesRunning)}; after stop: ${JSON.stringify(filesAfterStop)}`);
    console.log(`RSS at the end by kind: anon ${round(mb(m.finalStatus.rssAnonKb))} MB, file ${round(mb(m.finalStatus.rssFileKb))} MB, shmem ${round(mb(m.finalStatus.rssShmemKb))} MB; PSS ${round(mb(m.pssAtEndKb.pssKb))} MB (file pages shared with other node processes counted in part)`);
    const kinds = m.children.map((c) => childKind(c.command));
    console.log(`Sockets to the colony seen: ${m.socketsSeen}; child processes of the agent seen: ${m.children.length} (${[...new Set(kinds)].map((k) => `${kinds.filter((x) => x === k).length} ${k}`).join(", ") || "none"})`);
    const c = m.childrenAtEnd;
    console.log(
      `Children at the end: ${c.alive} alive, RSS ${round(mb(c.rssKb))} MB (anonymous ${round(mb(c.rssAnonKb))} MB), PSS ${round(mb(c.pssKb))} MB; CPU ${c.cpuPercent} % of a core over the run. Agent + children: PSS ${round(mb(m.pssAtEndKb.pssKb + c.pssKb))} MB, CPU ${round(m.cpuPercent + c.cpuPercent, 3)} %`,
    );
    console.log(`Colony received: ${colonyRows.batches} batches, ${colonyRows.summaryRows1m} 1-minute summary rows, ${colonyRows.events} events; store is ${service?.status ?? "?"} with pid ${service?.pid ?? "?"} (app pid ${app.pid}); agent exit code after SIGTERM: ${exitCode}`);

    const procs = [
      ...baselines.map((b, i) => ({ label: `b${i + 1} ${b.name} (idle)`, rss: b.rss, cpu: b.cpuPercent, threads: b.threads, smaps: b.smapsKb })),
      { label: "agent: coral connect (this run)", rss: m.rss, cpu: m.cpuPercent, threads: m.finalStatus.threads, smaps: m.smapsKb },
      ...lean.map((l, i) => ({ label: `x${i + 1} ${l.name}`, rss: l.measurement.rss, cpu: l.measurement.cpuPercent, threads: l.measurement.finalStatus.threads, smaps: l.measurement.smapsKb })),
    ];
    console.log("\nBaselines and experiments (RSS in MB):\n");
    console.log(table(["process", "start", "max", "mean", "end", "CPU %", "threads"], procs.map((p) => [p.label, p.rss.startMb, p.rss.maxMb, p.rss.meanMb, p.rss.endMb, p.cpu, p.threads])));
    if (lean.length > 0)
      console.log(`\n${lean.map((l, i) => `x${i + 1}: ${l.measurement.bytesPerSecond} B/s to the colony, CPU main/other ${l.measurement.cpuPercentMainThread}/${l.measurement.cpuPercentOtherThreads} %, connected after ${l.measurement.connectSeconds} s`).join("\n")}`);
    const tag = (label: string) => label.split(" ")[0] ?? label;
    console.log("\nResident memory by mapping at the end (smaps Rss, MB):\n");
    console.log(table(["mapping", ...procs.map((p) => tag(p.label))], (Object.keys(m.smapsKb) as Array<keyof typeof m.smapsKb>).map((k) => [k, ...procs.map((p) => round(mb(p.smaps[k])))])));

    const result = {
      benchmark: "agent-footprint",
      startedAt: startedAt.toISOString(),
      machine,
      command: `node --import tsx bench/agent-footprint/run.ts --minutes ${minutes} --lean-minutes ${leanMinutes}`,
      agentCommand: command,
      options: { minutes, leanMinutes, baselineSeconds, rssIntervalSeconds: rssIntervalMs / 1000, socketIntervalSeconds: netIntervalMs / 1000, sampleInterval: "1s (default)", retention: "1h (default)" },
      loadAverage: { before: loadBefore, after: loadAfter },
      targets,
      met,
      agent: {
        ...m,
        store: { filesWhileRunning: filesRunning, filesAfterStop, bytesWhileRunning: storeBytes, bytesAfterStop: storeBytesAfterStop },
        exitCode,
      },
      colonyReceived: { ...colonyRows, serviceStatus: service?.status, servicePid: service?.pid, appPid: app.pid },
      baselines,
      experiments: lean,
      agentOutputTail: agent.output().split("\n").slice(-40),
    };
    const out = join(repoRoot, "bench/results", `agent-footprint-${startedAt.toISOString().slice(0, 10)}.json`);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, JSON.stringify(result, null, 2) + "\n");
    log(`wrote ${relative(repoRoot, out)}`);
  } finally {
    for (const r of running) await stopProcess(r.child);
    for (const a of apps) await stopProcess(a, "SIGKILL");
    await rm(scratch, { recursive: true, force: true });
    await rm(buildDir, { recursive: true, force: true });
  }
}

function sumPorts(totals: Map<number, ByteTotals>, ports: number[], key: keyof ByteTotals): number {
  return ports.reduce((sum, p) => sum + (totals.get(p)?.[key] ?? 0), 0);
}

await main();
