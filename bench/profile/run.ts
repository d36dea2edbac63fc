// CPU profiling benchmark (issue 20 targets): attribution, samples collected,
// trigger to first sample, and the overhead on the profiled program.
//
//   node --conditions=coral-source --import tsx bench/profile/run.ts [--runs 5] [--seconds 3]
//   npm run bench:profile            (root: bpftrace uprobes and perf events)
//
// The agent's own CpuProfiler (bpftrace profile:hz, symbolized on the agent),
// no colony in between:
//  - attribution: agent/src/profile/testdata/burn.c (gcc -O1
//    -fno-omit-frame-pointer) spends 75 % of its CPU in hot_loop and 25 % in
//    warm_loop; each run profiles it for --seconds at 99 Hz and reports the
//    shares of samples with each on the stack, samples / (hz × seconds) and
//    the time from the request to the first sample; the same for the Go
//    program of the tests, stripped (when go is installed), and the Node one
//    (through the V8 inspector, when it exists);
//  - overhead: bench/profile/tput.c does units of fixed work for --seconds;
//    paired runs, alone and profiled (on demand at 99 Hz; then the always-on
//    ContinuousProfiler at 19 Hz with 1 s windows, counting only after a 3 s
//    warm-up in which its long-lived program attaches, alone runs too), in
//    alternating order; overhead = 1 − median(units profiled / units alone).
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { existsSync } from "node:fs";
import { ContinuousProfiler, CpuProfiler, type CpuProfileData } from "@coral/agent/profile";
import { loadAverage, machineInfo, median, round, table } from "../colony-ingest/lib.ts";
import { positive } from "../args.ts";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../..");
const { values: args } = parseArgs({ options: { runs: { type: "string", default: "5" }, seconds: { type: "string", default: "3" } } });
const runs = positive("runs", args.runs);
const seconds = positive("seconds", args.seconds);
const log = (m: string) => process.stderr.write(`[bench:profile] ${m}\n`);
if (process.getuid?.() !== 0) {
  console.log("bench:profile needs root (bpftrace); skipped");
  process.exit(0);
}

const build = mkdtempSync(join(tmpdir(), "coral-bench-profile-"));
const compile = (src: string, out: string) => {
  execFileSync("gcc", ["-O1", "-fno-omit-frame-pointer", "-o", join(build, out), src]);
  return join(build, out);
};
const burn = compile(join(repoRoot, "agent/src/profile/testdata/burn.c"), "burn");
const tput = compile(join(here, "tput.c"), "tput");
const machine = await machineInfo();
const loadBefore = await loadAverage();

/** Share of samples with `fn` anywhere on the stack (JavaScript frames are named "fn (file:line)"). */
function share(p: CpuProfileData, fn: string): number {
  const ids = new Set(p.frames.flatMap((f, i) => (f.function === fn || f.function.startsWith(`${fn} (`) ? [i] : [])));
  const on = p.stacks.filter((s) => s.frameIds.some((id) => ids.has(id))).reduce((n, s) => n + s.samples, 0);
  return p.totalSamples ? on / p.totalSamples : 0;
}

// Attribution, samples and trigger, per language.
interface Target {
  name: string;
  command: string[];
  hot: string;
  warm: string;
}
/** The tests' Go program (agent/src/profile/testdata/burn-go), stripped as distributions ship Go (-ldflags="-s -w"); undefined without go. */
function buildGoBurn(): string | undefined {
  try {
    execFileSync("go", ["version"], { stdio: "ignore" });
  } catch {
    return undefined;
  }
  const out = join(build, "burn-go");
  execFileSync("go", ["build", "-ldflags=-s -w", "-o", out, "."], { cwd: join(repoRoot, "agent/src/profile/testdata/burn-go"), env: { ...process.env, GOFLAGS: "-mod=mod", GOCACHE: process.env.GOCACHE ?? join(tmpdir(), "coral-go-cache") } });
  return out;
}
const goBurn = buildGoBurn();
const nodeBurn = ["burn.mjs", "burn.js"].map((f) => join(repoRoot, "agent/src/profile/testdata", f)).find((f) => existsSync(f));
const targets: Target[] = [
  { name: "C", command: [burn], hot: "hot_loop", warm: "warm_loop" },
  ...(goBurn ? [{ name: "Go (stripped)", command: [goBurn], hot: "main.hotLoop", warm: "main.warmLoop" }] : []),
  // As in node-profile.test.ts: without --no-turbo-inlining, TurboFan inlines both loops into their caller once
  // warm, and V8's profiler credits the caller (its frames carry no inlined functions).
  ...(nodeBurn ? [{ name: "Node", command: [process.execPath, "--no-turbo-inlining", nodeBurn, "99"], hot: "hotLoop", warm: "warmLoop" }] : []),
];
type Row = { hot: number; warm: number; collected: number; firstSampleMs: number; method: string };
const attributionBy = new Map<string, Row[]>();
for (const t of targets) {
  const rows: Row[] = [];
  attributionBy.set(t.name, rows);
  const target = spawn(t.command[0]!, t.command.slice(1), { stdio: "ignore" });
  const profiler = new CpuProfiler({ observedPid: () => target.pid ?? null });
  try {
    for (let run = 0; run <= runs; run++) {
      const p = await profiler.profile({ hz: 99, durationMs: seconds * 1000, label: "bench" });
      if (run === 0) continue; // warm-up: bpftrace's first start reads the kernel's BTF; a Node program warms its JIT
      const row = { hot: share(p, t.hot), warm: share(p, t.warm), collected: p.totalSamples / (99 * seconds), firstSampleMs: p.firstSampleAfterMs ?? NaN, method: p.method };
      rows.push(row);
      log(`${t.name} attribution run ${run}: ${p.method}, hot ${(100 * row.hot).toFixed(1)} %, warm ${(100 * row.warm).toFixed(1)} %, samples ${(100 * row.collected).toFixed(1)} % of hz × s, first sample after ${round(row.firstSampleMs)} ms`);
    }
  } finally {
    await profiler.close();
    target.kill("SIGKILL");
  }
}
const attribution = attributionBy.get("C")!;

// Overhead, paired.
type Mode = { kind: "on-demand"; hz: 99 } | { kind: "always-on"; hz: 19 };
async function throughput(mode: Mode | null, runSeconds: number, warmupSeconds: number): Promise<{ units: number; perCpuSecond: number }> {
  const child = spawn(tput, [String(runSeconds), String(warmupSeconds)], { stdio: ["ignore", "pipe", "ignore"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  if (mode?.kind === "on-demand") {
    const profiler = new CpuProfiler({ observedPid: () => child.pid ?? null });
    // The profile covers the run (it may end a little after the program: it is cut when the process is gone).
    await profiler.profile({ hz: mode.hz, durationMs: runSeconds * 1000, label: "bench" }).catch(() => undefined);
  }
  if (mode?.kind === "always-on") {
    let windows = 0;
    const profiler = new ContinuousProfiler({ observedPid: () => (child.exitCode === null ? (child.pid ?? null) : null), hz: mode.hz, windowMs: 1000, checkMs: 200, onWindow: async () => void windows++ });
    profiler.start();
    await exited;
    await profiler.close();
    if (windows === 0) log("always-on run: no window was handed over");
  }
  await exited;
  const [units, cpu] = out.trim().split(/\s+/).map(Number) as [number, number];
  return { units, perCpuSecond: units / cpu };
}
const modes: Mode[] = [
  { kind: "on-demand", hz: 99 },
  { kind: "always-on", hz: 19 },
];
const overhead: Record<string, number[]> = { "on-demand": [], "always-on": [] };
/** The same pairs by units per CPU second of the program: what the profiler costs the program itself, whatever else runs. */
const overheadPerCpu: Record<string, number[]> = { "on-demand": [], "always-on": [] };
for (const mode of modes) {
  const warmup = mode.kind === "always-on" ? 3 : 0;
  for (let run = 0; run < runs; run++) {
    const profiledFirst = run % 2 === 1;
    const a = profiledFirst ? await throughput(mode, seconds, warmup) : await throughput(null, seconds, warmup);
    const b = profiledFirst ? await throughput(null, seconds, warmup) : await throughput(mode, seconds, warmup);
    const [profiled, alone] = profiledFirst ? [a, b] : [b, a];
    const ratio = profiled.units / alone.units;
    const perCpu = profiled.perCpuSecond / alone.perCpuSecond;
    overhead[mode.kind]!.push(ratio);
    overheadPerCpu[mode.kind]!.push(perCpu);
    log(`overhead ${mode.kind} ${mode.hz} Hz run ${run + 1}: profiled / alone = ${ratio.toFixed(4)} (per CPU second ${perCpu.toFixed(4)})`);
  }
}

const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
const med = (k: "hot" | "warm" | "collected" | "firstSampleMs", rows: Row[] = attribution) => median(rows.map((r) => r[k]));
const range = (k: "hot" | "warm" | "collected", rows: Row[]) => `${pct(Math.min(...rows.map((r) => r[k])))} – ${pct(Math.max(...rows.map((r) => r[k])))}`;
console.log(
  table(
    ["program", "method", "hot share (75 %)", "warm share (25 %)", "samples / (hz × s)", "first sample (ms)"],
    targets.map((t) => {
      const rows = attributionBy.get(t.name)!;
      return [t.name, rows[0]?.method ?? "", `${pct(med("hot", rows))} (${range("hot", rows)})`, `${pct(med("warm", rows))} (${range("warm", rows)})`, `${pct(med("collected", rows))} (${range("collected", rows)})`, round(med("firstSampleMs", rows))];
    }),
  ),
);
console.log(
  table(
    ["measure", "median", "min", "max", "target"],
    [
      ["hot_loop share (75 % of CPU)", pct(med("hot")), pct(Math.min(...attribution.map((r) => r.hot))), pct(Math.max(...attribution.map((r) => r.hot))), "75 ± 5 %"],
      ["warm_loop share (25 % of CPU)", pct(med("warm")), pct(Math.min(...attribution.map((r) => r.warm))), pct(Math.max(...attribution.map((r) => r.warm))), "25 ± 5 %"],
      ["samples / (hz × seconds × 1 CPU)", pct(med("collected")), pct(Math.min(...attribution.map((r) => r.collected))), pct(Math.max(...attribution.map((r) => r.collected))), "≥ 90 %"],
      ["request → first sample (ms)", round(med("firstSampleMs")), round(Math.min(...attribution.map((r) => r.firstSampleMs))), round(Math.max(...attribution.map((r) => r.firstSampleMs))), "< 1000"],
      ["overhead on demand at 99 Hz (1 − throughput ratio)", pct(1 - median(overhead["on-demand"]!)), pct(1 - Math.max(...overhead["on-demand"]!)), pct(1 - Math.min(...overhead["on-demand"]!)), "< 5 %"],
      ["overhead always-on at 19 Hz", pct(1 - median(overhead["always-on"]!)), pct(1 - Math.max(...overhead["always-on"]!)), pct(1 - Math.min(...overhead["always-on"]!)), "< 1 %"],
      ["… on demand 99 Hz, per CPU second of the program", pct(1 - median(overheadPerCpu["on-demand"]!)), pct(1 - Math.max(...overheadPerCpu["on-demand"]!)), pct(1 - Math.min(...overheadPerCpu["on-demand"]!)), "< 5 %"],
      ["… always-on 19 Hz, per CPU second of the program", pct(1 - median(overheadPerCpu["always-on"]!)), pct(1 - Math.max(...overheadPerCpu["always-on"]!)), pct(1 - Math.min(...overheadPerCpu["always-on"]!)), "< 1 %"],
    ],
  ),
);
const out = join(repoRoot, "bench", "results", `profile-${new Date().toISOString().slice(0, 16).replace(/:/g, "")}Z.json`);
await mkdir(dirname(out), { recursive: true });
await writeFile(out, JSON.stringify({ machine, runs, seconds, loadAverage: { before: loadBefore, after: await loadAverage() }, attribution: Object.fromEntries(attributionBy), overhead, overheadPerCpu }, null, 2));
log(`figures in ${out}`);
