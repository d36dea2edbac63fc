// Cost of following a process set. Prints a table and writes
// bench/results/process-set-<date>.json.
//
//   node --conditions=coral-source --import tsx bench/process-set/run.ts [--seconds 60] [--workers 1,8,64]
//
// For each worker count N: our worker-pool server (tests/debug/testdata/
// workers.c: a parent holding the listening socket, N pre-forked workers),
// and a real agent observing it as a process of its own (agent.ts: the
// startAgent call `coral connect` makes, 1 s sampling) against one real
// colony in this process. Once the colony reports the set (1 + N processes),
// the agent warms up for 10 s, then its utime+stime over --seconds gives its
// CPU in percent of one core. Idle workers: this measures following the set
// (the /proc scan for descendants and sampling each member every second), not
// serving traffic.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { pollUntil, sleep } from "@coral/common/async";
import { colonyApi, createTestProject, mintInvitation } from "../../tests/helpers/colony.ts";
import { freePort } from "../../tests/helpers/ports.ts";
import { CLK_TCK, loadAverage, machineInfo, readCpuTicks } from "../agent-footprint/proc.ts";

const { values: args } = parseArgs({ options: { seconds: { type: "string", default: "60" }, workers: { type: "string", default: "1,8,64" } } });
const seconds = Number(args.seconds);
const counts = String(args.workers).split(",").map(Number);
if (!(seconds > 0) || counts.some((n) => !Number.isInteger(n) || n < 1)) throw new Error("--seconds must be > 0 and --workers a list of positive integers");

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const work = mkdtempSync(join(tmpdir(), "coral-bench-process-set-"));
const children: ChildProcess[] = [];
const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

const bin = join(work, "workers");
execFileSync("gcc", ["-O2", "-o", bin, here("../../tests/debug/testdata/workers.c")]);

interface Result {
  workers: number;
  processes: number;
  agentCpuPercent: number;
  loadBefore: number[];
  loadAfter: number[];
}

await using project = await createTestProject();
const colony = await project.start();
const api = colonyApi(colony.url, project.localToken);
const results: Result[] = [];
try {
  for (const n of counts) {
    const port = await freePort();
    const server = spawn(bin, [String(port), "pool", String(n)], { stdio: "ignore" });
    children.push(server);
    const service = `pool-${n}`;
    const token = await mintInvitation(colony.url, project.localToken, `bench ${service}`);
    const agent = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", here("./agent.ts"), service, String(port), colony.url, join(work, service)], {
      env: { ...process.env, CORAL_BENCH_INVITATION_ID: token.invitationId, CORAL_BENCH_INVITATION_SECRET: token.invitationSecret, CORAL_BENCH_COLONY_PUBKEY: token.colonyPubkey },
      stdio: ["ignore", "ignore", "inherit"],
    });
    children.push(agent);
    await pollUntil(async () => ((await api.getStatus({})).services.find((s) => s.name === service)?.processCount === 1 + n ? true : undefined), {
      what: `the colony to report ${1 + n} processes for ${service}`,
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    log(`${service}: the colony reports ${1 + n} processes; warming up 10 s`);
    await sleep(10_000); // a fixed measurement window, not synchronisation
    const loadBefore = loadAverage();
    const t0 = readCpuTicks(agent.pid!);
    const w0 = performance.now();
    await sleep(seconds * 1000);
    const cpu = ((readCpuTicks(agent.pid!) - t0) / CLK_TCK / ((performance.now() - w0) / 1000)) * 100;
    const result = { workers: n, processes: 1 + n, agentCpuPercent: Math.round(cpu * 100) / 100, loadBefore, loadAfter: loadAverage() };
    results.push(result);
    log(`${service}: agent CPU ${result.agentCpuPercent}% of a core over ${seconds} s (load ${result.loadBefore.join(" ")} → ${result.loadAfter.join(" ")})`);
    agent.kill("SIGTERM");
    await new Promise((r) => agent.once("exit", r));
    server.kill("SIGKILL"); // its workers die with it (PR_SET_PDEATHSIG)
  }
} finally {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}

console.log("\nworkers  processes  agent CPU % of a core");
for (const r of results) console.log(`${String(r.workers).padStart(7)}  ${String(r.processes).padStart(9)}  ${r.agentCpuPercent.toFixed(2).padStart(21)}`);
const out = join(fileURLToPath(new URL("../results/", import.meta.url)), `process-set-${new Date().toISOString().slice(0, 16).replace(":", "")}Z.json`);
mkdirSync(join(out, ".."), { recursive: true });
writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), machine: machineInfo(), seconds, results }, null, 2));
console.log(`\nwritten: ${out}`);
