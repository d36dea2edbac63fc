// Node live-debugging benchmark (issue 21): a plain Node HTTP service
// (agent/src/debug/node/testdata/app.mjs), traced through its V8 inspector.
//
//   node --conditions=coral-source --import tsx bench/node-debug/run.ts [--rounds 5] [--seconds 3]
//
// 1. Per-call overhead: GET /add?n=4000 (4000 calls of a sync function) and
//    GET /lookup?n=500&ms=1 (500 async calls), median request time without
//    and with a session recording every call, for each way of seeing calls:
//    the function rewritten in place ("instrumented", the default) and
//    conditional breakpoints (two hits a sync call; one plus promise hooks
//    an async call).
// 2. Throughput: a closed-loop client (8 connections) on GET / for --seconds,
//    without and with a session on the request handler `handle`, in paired
//    rounds (untraced, traced, alternating).
// 3. Fixed load: GET / offered open-loop at --rate requests/s (default 1000,
//    the issue's target load) for --seconds, paired rounds as above:
//    requests answered per second, latency p50/p99, and the app's CPU time
//    (utime + stime from /proc), so the cost shows even when the service
//    keeps up.
// 4. Attach latency: NodeFunctionSession.start() until the first event of a
//    call made right after it resolved.
import { spawn } from "node:child_process";
import { Agent, request } from "node:http";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { NodeFunctionSession } from "@coral/agent/debug";
import { pollUntil } from "@coral/common/async";
import { positive } from "../args.ts";
import { openLoop } from "../load.ts";

const argv = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? positive(name, argv[i + 1]) : dflt;
};
const rounds = opt("rounds", 5);
const seconds = opt("seconds", 3);
const rate = opt("rate", 1000);
const appJs = fileURLToPath(new URL("../../agent/src/debug/node/testdata/app.mjs", import.meta.url));

const app = spawn(process.execPath, [appJs, "0"], { stdio: ["ignore", "pipe", "ignore"] });
const port = await new Promise<number>((resolve) => app.stdout.on("data", (d: Buffer) => resolve((JSON.parse(String(d)) as { port: number }).port)));
const pid = app.pid!;
let nextId = 1;
const session = (functionName: string, mechanism: "auto" | "breakpoints" = "auto") =>
  NodeFunctionSession.start({ id: `bench-${nextId++}`, pid, functionName, durationMs: 600_000, maxEvents: 1_000_000, perSecond: 1_000_000, mechanism });

const agent = new Agent({ keepAlive: true, maxSockets: 8 });
const get = (path: string) =>
  new Promise<void>((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, agent }, (res) => {
      res.resume();
      res.on("end", () => resolve());
    });
    req.on("error", reject);
    req.end();
  });
const fixedAgent = new Agent({ keepAlive: true, maxSockets: 64 });
const fixedLoad = () => openLoop({ port, rate, seconds, path: () => "/", agent: fixedAgent, cpuPid: pid });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
async function timed(path: string, reps = 7): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await get(path);
    ms.push(performance.now() - t);
  }
  return median(ms);
}
async function throughput(): Promise<number> {
  let done = 0;
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (performance.now() < until) {
        await get("/");
        done++;
      }
    }),
  );
  return done / seconds;
}

try {
  console.log(`node-debug bench: ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)}, Node ${process.version}`);
  const perCall: Record<string, { untracedMs: number; tracedMs: number; usPerCall: number; recorded: number }> = {};
  for (const mechanism of ["auto", "breakpoints"] as const) {
    for (const [fn, path, calls] of [
      ["add", "/add?n=4000", 4000],
      ["lookupUser", "/lookup?n=500&ms=1", 500],
    ] as const) {
      await timed(path, 2);
      const untracedMs = await timed(path);
      const s = await session(fn, mechanism);
      const tracedMs = await timed(path);
      const recorded = (await s.stop()).calls;
      const r = (perCall[`${fn} ${s.method}`] = { untracedMs, tracedMs, usPerCall: ((tracedMs - untracedMs) / calls) * 1000, recorded });
      console.log(`${fn} (${s.method}): ${calls} calls ${untracedMs.toFixed(1)} ms untraced, ${tracedMs.toFixed(1)} ms traced: ${r.usPerCall.toFixed(1)} µs added per call (${recorded} calls recorded over 7 requests)`);
    }
  }

  const pairs: { untraced: number; traced: number }[] = [];
  await throughput();
  for (let r = 0; r < rounds; r++) {
    const untraced = await throughput();
    const s = await session("handle");
    const traced = await throughput();
    await s.stop();
    pairs.push({ untraced, traced });
    console.log(`round ${r + 1}: ${untraced.toFixed(0)} req/s untraced, ${traced.toFixed(0)} req/s with a session on handle (${s.method}) (${((1 - traced / untraced) * 100).toFixed(1)} % less)`);
  }
  console.log(`throughput: median drop ${median(pairs.map((p) => (1 - p.traced / p.untraced) * 100)).toFixed(1)} %`);

  const fixed: { untraced: Awaited<ReturnType<typeof fixedLoad>>; traced: Awaited<ReturnType<typeof fixedLoad>> }[] = [];
  await fixedLoad();
  for (let r = 0; r < rounds; r++) {
    const untraced = await fixedLoad();
    const s = await session("handle");
    const traced = await fixedLoad();
    const recorded = (await s.stop()).calls;
    fixed.push({ untraced, traced });
    const line = (x: typeof untraced) => `${x.answered.toFixed(0)} req/s, p50 ${x.p50.toFixed(2)} ms, p99 ${x.p99.toFixed(2)} ms, app CPU ${x.cpuPct.toFixed(1)} %${x.failed ? `, ${x.failed} failed` : ""}`;
    console.log(`fixed ${rate} req/s round ${r + 1}: untraced ${line(untraced)}; traced (${s.method}) ${line(traced)} (${recorded} calls recorded)`);
  }
  const drop = median(fixed.map((p) => (1 - p.traced.answered / p.untraced.answered) * 100));
  const cpuAdded = median(fixed.map((p) => p.traced.cpuPct - p.untraced.cpuPct));
  const p50Added = median(fixed.map((p) => (p.traced.p50 - p.untraced.p50) * 1000));
  console.log(`fixed ${rate} req/s: median throughput drop ${drop.toFixed(1)} %, app CPU +${cpuAdded.toFixed(1)} points of a core, p50 +${p50Added.toFixed(0)} µs`);

  const attach: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t = performance.now();
    const s = await session("add");
    await get("/add?n=1");
    await pollUntil(() => (s.events.length > 0 ? true : undefined), { what: "the first event", timeoutMs: 10_000, intervalMs: 5 });
    attach.push(performance.now() - t);
    await s.stop();
  }
  console.log(`attach latency (start → first event): median ${median(attach).toFixed(0)} ms, max ${Math.max(...attach).toFixed(0)} ms`);
} finally {
  agent.destroy();
  fixedAgent.destroy();
  app.kill();
}
