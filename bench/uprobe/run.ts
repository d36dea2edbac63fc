// Live-debugging benchmark. Prints its figures and writes bench/results/uprobe-<date>.json.
//
//   node --import tsx bench/uprobe/run.ts [--calls 200000] [--rounds 5]
//
// 1. Per-call overhead: a compiled C program (loop.c, gcc -O2) and a Go program
//    (go/main.go) call one tiny function in a tight loop and time it
//    themselves (mean ns per call over --calls calls, median of --rounds
//    rounds): without a session, with a session recording every call
//    (C: bpftrace entry uprobe + uretprobe; Go: tracefs uprobes on entry and
//    RET instructions; at most 60000 calls a round so the session never
//    reaches its max events), and with --sample-rate 1000 (the probes still fire on
//    every call, output for one in 1000).
// 2. Concurrent sessions: 10 collectors at once on one process (the agent's
//    default limit), the time each took to attach, and the 11th refused.
// 3. Attach latency: a real colony and agent (this process) beside loop.c in
//    serve mode (one call per ms); `coral debug attach` run as a user would,
//    from spawning the CLI to its first ENTRY line on stdout.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { GoRetSession } from "@coral/agent/debug";
import { pollUntil, sleep } from "@coral/common/async";
import { generateProgram, listFunctions, SessionLimiter, UprobeSession } from "@coral/agent/debug";
import { testAgent } from "../../tests/helpers/agents.ts";
import { coralBin } from "../../tests/helpers/cli.ts";
import { createTestProject } from "../../tests/helpers/colony.ts";
import { freePort } from "../../tests/helpers/ports.ts";

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const CALLS = arg("calls", 200_000);
const ROUNDS = arg("rounds", 5);
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const work = mkdtempSync(join(tmpdir(), "coral-bench-uprobe-"));
const children: ChildProcess[] = [];

function build() {
  const c = join(work, "loop");
  execFileSync("gcc", ["-O2", "-fno-inline", "-pthread", "-o", c, here("./loop.c")]);
  const go = join(work, "loop-go");
  execFileSync("go", ["build", "-o", go, "."], { cwd: here("./go/"), env: { ...process.env, GOCACHE: join(tmpdir(), "coral-go-cache"), GOPATH: join(tmpdir(), "coral-gopath") } });
  return { c, go };
}

/** A loop target driven over stdin: round(n) resolves with ns per call. */
function loopTarget(bin: string, args: string[] = []) {
  const child = spawn(bin, args, { stdio: ["pipe", "pipe", "ignore"] });
  children.push(child);
  const lines = createInterface({ input: child.stdout! });
  const waiting: ((v: number) => void)[] = [];
  lines.on("line", (l) => waiting.shift()?.(Number(l)));
  return {
    pid: child.pid!,
    round: (n: number) =>
      new Promise<number>((resolve) => {
        waiting.push(resolve);
        child.stdin!.write(`${n}\n`);
      }),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// With a session, rounds stay under the session's max events (2 events a call).
const SESSION_CALLS = Math.min(CALLS, 60_000);

async function rounds(t: ReturnType<typeof loopTarget>, calls = CALLS): Promise<number> {
  await t.round(10_000); // warm-up
  const r: number[] = [];
  for (let i = 0; i < ROUNDS; i++) r.push(await t.round(calls));
  return median(r);
}

async function overhead(kind: "c" | "go", bin: string, symbol: string) {
  const t = loopTarget(bin);
  await sleep(300); // exec done before reading /proc/<pid>/exe
  const base = await rounds(t);
  const out: Record<string, number> = { baseline_ns: base };
  for (const sampleRate of [1, 1000]) {
    const maxEvents = 1_000_000;
    let s: UprobeSession | GoRetSession;
    if (kind === "c") s = await UprobeSession.start({ pid: t.pid, symbol, sampleRate, maxEvents, durationMs: 600_000 });
    else {
      const functions = await listFunctions(t.pid);
      const program = generateProgram({ pid: t.pid, symbol, functions, sampleRate, maxEvents, durationMs: 600_000 });
      s = await GoRetSession.start({ pid: t.pid, program, binary: `/proc/${t.pid}/exe` });
    }
    const withSession = await rounds(t, SESSION_CALLS);
    const events = s.events.length;
    await s.stop();
    out[`sample_${sampleRate}_ns`] = withSession;
    out[`sample_${sampleRate}_overhead_us`] = (withSession - base) / 1000;
    out[`sample_${sampleRate}_events`] = events;
  }
  return out;
}

async function concurrent(bin: string) {
  const t = loopTarget(bin);
  await sleep(300);
  const limiter = new SessionLimiter(10);
  const attachMs: number[] = [];
  const sessions: UprobeSession[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    sessions.push(await UprobeSession.start({ pid: t.pid, symbol: "cheap", limiter, durationMs: 120_000, sampleRate: 1000 }));
    attachMs.push(performance.now() - t0);
  }
  const nsWithTen = await rounds(t, SESSION_CALLS);
  let eleventh = "accepted";
  try {
    sessions.push(await UprobeSession.start({ pid: t.pid, symbol: "cheap", limiter }));
  } catch (err) {
    eleventh = `refused: ${(err as Error).message}`;
  }
  await Promise.all(sessions.map((s) => s.stop()));
  return { attach_ms_median: median(attachMs), attach_ms_max: Math.max(...attachMs), ns_per_call_with_10: nsWithTen, eleventh };
}

async function attachLatency(bin: string) {
  await using project = await createTestProject();
  const colony = await project.start();
  const port = await freePort();
  const target = spawn(bin, ["serve", String(port)], { stdio: ["pipe", "ignore", "ignore"] });
  children.push(target);
  const agent = await testAgent(project, colony.url, "bench", port, { healthUrl: undefined });
  try {
    // Wait until the agent observes the target (at most 30 s, then go on regardless).
    await pollUntil(() => listFunctions(target.pid!), { what: "the target's functions", timeoutMs: 30_000, intervalMs: 100 }).catch(() => undefined);
    await sleep(3000);
    const samples: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      const cli = spawn(process.execPath, [coralBin, "debug", "attach", "bench", "--function", "cheap", "--duration", "3s", "--colony-url", colony.url, "--token", project.localToken, "--output-dir", work], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, NO_COLOR: "1", CORAL_HOME: project.home },
      });
      const first = await new Promise<number>((resolve, reject) => {
        createInterface({ input: cli.stdout! }).on("line", (l) => {
          if (/\] ENTRY/.test(l)) resolve(performance.now() - t0);
        });
        cli.on("exit", (code) => reject(new Error(`coral debug attach exited ${code} before an event`)));
      });
      samples.push(first);
      await new Promise((r) => cli.on("exit", r));
    }
    return { cli_to_first_event_ms: samples.map((x) => Math.round(x)), median_ms: Math.round(median(samples)) };
  } finally {
    await agent.close();
  }
}

async function main() {
  const started = new Date();
  const bins = build();
  const c = await overhead("c", bins.c, "cheap");
  const go = await overhead("go", bins.go, "main.Cheap");
  const conc = await concurrent(bins.c);
  const attach = await attachLatency(bins.c);
  const result = {
    date: started.toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg() },
    calls: CALLS,
    session_calls: SESSION_CALLS,
    rounds: ROUNDS,
    c,
    go,
    concurrent: conc,
    attach,
  };
  console.log(JSON.stringify(result, null, 2));
  mkdirSync(join(process.cwd(), "bench", "results"), { recursive: true });
  writeFileSync(join(process.cwd(), "bench", "results", `uprobe-${started.toISOString().slice(0, 10)}.json`), JSON.stringify(result, null, 2) + "\n");
}

try {
  await main();
} finally {
  for (const ch of children) ch.kill("SIGKILL");
}
