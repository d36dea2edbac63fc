// Feature-flag benchmark. Prints its figures and writes bench/results/flags-<date>.json.
//
//   node --import tsx bench/flags/run.ts [--evals 5000000] [--flips 40]
//
// 1. Evaluation: coral.flags.isEnabled (the SDK's public call) against a
//    cache of 1,000 flags, for a flag on for everyone, a 25 % rollout with a
//    user id (hash path), a listed user, and a flag the colony never sent.
// 2. Memory: heap growth of a FlagCache holding 1,000 flags (10 listed users
//    on every tenth), after a forced GC; the SDK's whole heap too.
// 3. Propagation: a real colony (temp project, its own nats-server and
//    DuckDB), a real agent and an SDK-using HTTP app (the agent observes this
//    very process and finds its SDK by the announcement). Measured: from
//    sending SetFlag to the colony (what `coral flags enable` sends, without
//    the CLI's Node start-up) to the app's flags.onChange callback.
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { CoralSdk, FlagCache } from "@coral/sdk";
import { ControlService } from "@coral/proto/gen/coral/control/v1/control_pb";
import { testAgent } from "../../tests/helpers/agents.ts";
import { createTestProject } from "../../tests/helpers/colony.ts";
import { freePort } from "../../tests/helpers/ports.ts";
import { waitFor } from "../../tests/helpers/wait.ts";

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const thousandFlags = () =>
  Array.from({ length: 1000 }, (_, i) => ({
    name: `flag-${i}`,
    enabled: i % 3 !== 0,
    rolloutPercentage: i % 4 === 0 ? 25 : 100,
    userIds: i % 10 === 0 ? Array.from({ length: 10 }, (_, j) => `user-${i}-${j}`) : [],
  }));

function evaluation(n: number) {
  const sdk = new CoralSdk();
  // The SDK's cache, filled as a SyncFlags call fills it.
  const cache = (sdk as unknown as { cache: FlagCache }).cache;
  cache.replace(thousandFlags(), Date.now());
  const cases: Array<[string, string, { userId: string } | undefined]> = [
    ["on for everyone (flag-1)", "flag-1", undefined],
    ["25 % rollout with a user id (flag-4)", "flag-4", { userId: "user-12345" }],
    ["listed user (flag-10)", "flag-10", { userId: "user-10-3" }],
    ["never sent (default)", "missing-flag", undefined],
  ];
  const rows: Array<{ case: string; nsPerEval: number }> = [];
  let sink = 0;
  for (const [label, name, ctx] of cases) {
    for (let i = 0; i < 100_000; i++) if (sdk.flags.isEnabled(name, ctx)) sink++;
    const start = performance.now();
    for (let i = 0; i < n; i++) if (sdk.flags.isEnabled(name, ctx)) sink++;
    rows.push({ case: label, nsPerEval: ((performance.now() - start) * 1e6) / n });
  }
  // Distinct users, so the hash sees new input every call.
  const users = Array.from({ length: 1024 }, (_, i) => ({ userId: `user-${i}` }));
  const start = performance.now();
  for (let i = 0; i < n; i++) if (sdk.flags.isEnabled("flag-4", users[i & 1023])) sink++;
  rows.push({ case: "25 % rollout, 1,024 different users", nsPerEval: ((performance.now() - start) * 1e6) / n });
  return { rows, sink };
}

function memory() {
  gc();
  const before = process.memoryUsage().heapUsed;
  const cache = new FlagCache();
  cache.replace(thousandFlags(), Date.now());
  gc();
  const after = process.memoryUsage().heapUsed;
  if (!cache.isEnabled("flag-1")) throw new Error("cache lost its flags");
  return { bytesFor1000Flags: after - before };
}

async function propagation(flips: number) {
  await using project = await createTestProject({ app: "bench" });
  const colony = await project.start();
  process.env.CORAL_SDK_DIR = await mkdtemp(join(tmpdir(), "coral-bench-sdk-"));
  const sdk = new CoralSdk();
  await sdk.init({ serviceName: "checkout", version: "1.0.0", flags: { "new-checkout": {} } });
  const appPort = await freePort();
  const server = http.createServer((_req, res) => res.end("ok"));
  await new Promise<void>((r) => server.listen(appPort, "127.0.0.1", () => r()));
  const agent = await testAgent(project, colony.url, "checkout", appPort, { healthUrl: undefined });
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${project.localToken}`);
    return next(req);
  };
  const control = createClient(ControlService, createConnectTransport({ baseUrl: colony.url, httpVersion: "1.1", interceptors: [auth] }));
  try {
    await waitFor("the agent to find the SDK", async () => ((await control.setFlag({ service: "checkout", name: "warm-up", enabled: true })).agentsNotified === 1 && sdk.flags.names().includes("warm-up") ? true : undefined), { timeoutMs: 60_000, intervalMs: 250 });
    const samples: number[] = [];
    for (let i = 0; i < flips; i++) {
      const want = i % 2 === 0;
      const seen = new Promise<number>((resolve) => {
        const off = sdk.flags.onChange(() => {
          if (sdk.flags.isEnabled("new-checkout") === want) {
            off();
            resolve(performance.now());
          }
        });
      });
      const start = performance.now();
      await control.setFlag({ service: "checkout", name: "new-checkout", enabled: want });
      samples.push((await seen) - start);
    }
    samples.sort((a, b) => a - b);
    const q = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))]!;
    return { flips, p50Ms: q(0.5), p95Ms: q(0.95), maxMs: samples.at(-1)!, minMs: samples[0]! };
  } finally {
    await agent.close();
    await sdk.shutdown();
    server.close();
  }
}

const load = (await import("node:os")).loadavg();
const evals = evaluation(arg("evals", 5_000_000));
const mem = memory();
const prop = await propagation(arg("flips", 40));
const result = { date: new Date().toISOString(), node: process.version, cpus: (await import("node:os")).cpus().length, loadavgAtStart: load, evaluation: evals.rows, memory: mem, propagation: prop };

console.log("\nFlag evaluation (coral.flags.isEnabled, 1,000 flags cached; target < 1 µs)");
for (const r of evals.rows) console.log(`  ${r.case.padEnd(40)} ${r.nsPerEval.toFixed(1).padStart(7)} ns  ${r.nsPerEval < 1000 ? "met" : "NOT met"}`);
console.log(`\nMemory for 1,000 flags (target < 1 MB): ${(mem.bytesFor1000Flags / 1024).toFixed(0)} KiB  ${mem.bytesFor1000Flags < 1024 * 1024 ? "met" : "NOT met"}`);
console.log(`\nPropagation SetFlag → app's onChange over ${prop.flips} flips (target < 100 ms): p50 ${prop.p50Ms.toFixed(1)} ms, p95 ${prop.p95Ms.toFixed(1)} ms, max ${prop.maxMs.toFixed(1)} ms  ${prop.p95Ms < 100 ? "met" : "NOT met"}`);
console.log(`(load average at start: ${load.map((l) => l.toFixed(1)).join(" ")} on ${result.cpus} cores)`);
const dir = join(import.meta.dirname, "..", "results");
await mkdir(dir, { recursive: true });
await writeFile(join(dir, `flags-${result.date.slice(0, 10)}.json`), JSON.stringify(result, null, 2) + "\n");
process.exit(0);
