// Requests benchmark (issue 22), the eBPF side: RED metrics seen by the
// agent's request tracer (agent/src/observe/http) on a plain node:http
// server (agent/src/observe/http/testdata/server.mjs), as root.
//
//   node --conditions=coral-source --import tsx bench/traffic/run.ts [--seconds 10] [--rounds 3] [--rate 1000] [--high-rate 5000]
//
// 1. Counted: --rate requests/s open-loop for --seconds, over keep-alive
//    connections (GET /users/<i>) and with a new connection per request
//    (GET /r/<i>); requests the tracer saw ÷ requests answered.
// 2. Durations: GET /slow (the server answers after 50 ms) at 100/s, the
//    tracer's durations against the client's (median and p99 of each).
// 3. Cost: --high-rate requests/s over keep-alive for --seconds, without
//    and with the tracer, paired rounds (alternating): answers a second,
//    latency, and the server's CPU, plus the tracer's (bpftrace and the
//    Node process that parses its output, run apart from this client as in
//    the agent: bench/traffic/tracer-process.ts).
import { fork, spawn } from "node:child_process";
import { Agent } from "node:http";
import { cpus, loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { kernelConnectionsUnavailable } from "@coral/agent/observe/http";
import { pollUntil } from "@coral/common/async";
import { positive } from "../args.ts";
import { cpuMs, openLoop, quantile } from "../load.ts";

const argv = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? positive(name, argv[i + 1]) : dflt;
};
const seconds = opt("seconds", 10);
const rounds = opt("rounds", 3);
const rate = opt("rate", 1000);
const highRate = opt("high-rate", 5000);

const why = kernelConnectionsUnavailable();
if (why) {
  console.log(`traffic bench needs eBPF: ${why}`);
  process.exit(1);
}

const serverJs = fileURLToPath(new URL("../../agent/src/observe/http/testdata/server.mjs", import.meta.url));
const server = spawn(process.execPath, [serverJs, "0"], { stdio: ["ignore", "pipe", "inherit"] });
let out = "";
server.stdout.on("data", (d: Buffer) => (out += d.toString()));
const port = await pollUntil(() => Number(/listening (\d+)/.exec(out)?.[1]) || undefined, { timeoutMs: 30_000, what: "the server listening" });
const pid = server.pid!;
const keepAlive = new Agent({ keepAlive: true, maxSockets: 32 });

/** The tracer in its own process (tracer-process.ts), as in the agent. */
async function startTracer(): Promise<{ ask: <T>(m: object) => Promise<T>; pid: number; bpftracePid: number; stop: () => Promise<void> }> {
  const child = fork(fileURLToPath(new URL("./tracer-process.ts", import.meta.url)), [String(pid)], { execArgv: ["--conditions=coral-source", "--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const ready = await new Promise<{ type: string; bpftracePid?: number; reason?: string }>((resolve, reject) => {
    child.once("message", (m) => resolve(m as { type: string }));
    child.once("exit", (code) => reject(new Error(`the tracer process exited (${code})`)));
  });
  if (ready.type !== "ready") throw new Error(ready.reason);
  const ask = <T>(m: object) =>
    new Promise<T>((resolve) => {
      child.once("message", (r) => resolve(r as T));
      child.send(m);
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.disconnect();
    });
  return { ask, pid: child.pid!, bpftracePid: ready.bpftracePid!, stop };
}

type Tracer = Awaited<ReturnType<typeof startTracer>>;

/** Waits until the tracer has seen `want` requests under `prefix`, or nothing new came for 3 s; its count and durations. */
async function settle(tracer: Tracer, prefix: string, want: number): Promise<{ count: number; durations: number[] }> {
  let last = -1;
  let stableSince = performance.now();
  return pollUntil(
    async () => {
      const r = await tracer.ask<{ count: number; durations: number[] }>({ type: "seen", prefix });
      if (r.count !== last) {
        last = r.count;
        stableSince = performance.now();
      }
      return r.count >= want || performance.now() - stableSince > 3000 ? r : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200, what: "the tracer's requests" },
  );
}

try {
  console.log(`traffic bench (eBPF): ${cpus().length} CPUs, load ${loadavg()[0]!.toFixed(2)}, Node ${process.version}`);
  const tracer = await startTracer();
  for (const [mode, agent, prefix] of [
    ["keep-alive", keepAlive, "/users/"],
    ["new connection per request", false, "/r/"],
  ] as const) {
    const r = await openLoop({ port, rate, seconds, path: (i) => `${prefix}${i}`, agent });
    const answered = r.latencies.length;
    const { count } = await settle(tracer, prefix, answered);
    console.log(`${mode}: ${answered} answered at ${r.answered.toFixed(0)}/s (${r.failed} failed), ${count} counted by the tracer (${((count / answered) * 100).toFixed(2)} %)`);
  }
  const slow = await openLoop({ port, rate: 100, seconds, path: () => "/slow", agent: keepAlive });
  const traced = (await settle(tracer, "/slow", slow.latencies.length)).durations;
  console.log(
    `durations of /slow: client median ${quantile(slow.latencies, 0.5).toFixed(2)} ms, p99 ${quantile(slow.latencies, 0.99).toFixed(2)} ms; tracer median ${quantile(traced, 0.5).toFixed(2)} ms, p99 ${quantile(traced, 0.99).toFixed(2)} ms (${traced.length} requests)`,
  );
  const { status } = await tracer.ask<{ status: { lines: number; malformed: number; lost: number; counts: object } }>({ type: "status" });
  console.log(`tracer: ${status.lines} lines, ${status.malformed} malformed, ${status.lost} lost, counts ${JSON.stringify(status.counts)}`);
  await tracer.stop();

  const pairs: { off: Awaited<ReturnType<typeof openLoop>>; on: Awaited<ReturnType<typeof openLoop>>; tracerCpu: number }[] = [];
  await openLoop({ port, rate: highRate, seconds: 2, path: (i) => `/users/${i}`, agent: keepAlive });
  for (let round = 0; round < rounds; round++) {
    const off = await openLoop({ port, rate: highRate, seconds, path: (i) => `/users/${i}`, agent: keepAlive, cpuPid: pid });
    const t = await startTracer();
    const cpu0 = cpuMs(t.pid) + cpuMs(t.bpftracePid);
    const on = await openLoop({ port, rate: highRate, seconds, path: (i) => `/users/${i}`, agent: keepAlive, cpuPid: pid });
    const tracerCpu = ((cpuMs(t.pid) + cpuMs(t.bpftracePid) - cpu0) / (seconds * 1000)) * 100;
    await t.stop();
    pairs.push({ off, on, tracerCpu });
    const line = (x: typeof off) => `${x.answered.toFixed(0)} answers/s, p50 ${x.p50.toFixed(2)} ms, p99 ${x.p99.toFixed(2)} ms, server CPU ${x.cpuPct.toFixed(1)} %`;
    console.log(`${highRate}/s round ${round + 1}: without ${line(off)}; with the tracer ${line(on)}, tracer (bpftrace + its Node process) CPU ${tracerCpu.toFixed(1)} %`);
  }
  const median = (xs: number[]) => quantile(xs, 0.5);
  console.log(
    `${highRate}/s: median throughput drop ${median(pairs.map((p) => (1 - p.on.answered / p.off.answered) * 100)).toFixed(1)} %, server CPU +${median(pairs.map((p) => p.on.cpuPct - p.off.cpuPct)).toFixed(1)} points, p50 +${median(pairs.map((p) => (p.on.p50 - p.off.p50) * 1000)).toFixed(0)} µs, tracer ${median(pairs.map((p) => p.tracerCpu)).toFixed(1)} % of a core`,
  );
} finally {
  keepAlive.destroy();
  server.kill();
}
