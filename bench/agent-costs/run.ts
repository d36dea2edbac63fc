// The CPU of two things the agent does in its baseline-compiled code (it runs
// with --max-opt=1): building a binary's function table for the profiler, and
// one HTTP health probe. Prints a table and writes
// bench/results/agent-costs-<date>.json.
//
//   node --conditions=coral-source --import tsx bench/agent-costs/run.ts [--builds 6] [--probes 400] [--binary /usr/bin/node]
//
// Each part runs in a child node with the agent's V8 flags (as cli/bin/coral.js
// sets them for `coral connect`): the table built --builds times in one
// process (CPU of each, and VmHWM above the start), and --probes health probes
// in a row against a plain node:http server in another process, through
// node:http (http-get.ts) and through the status-line probe (http-status.ts).
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { loadAverage, machineInfo } from "../agent-footprint/proc.ts";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "../..");
const { values: args } = parseArgs({
  options: { builds: { type: "string", default: "6" }, probes: { type: "string", default: "400" }, binary: { type: "string", default: process.execPath } },
});
const builds = Number(args.builds);
const probes = Number(args.probes);
if (!Number.isInteger(builds) || builds < 1 || !Number.isInteger(probes) || probes < 1) throw new Error("--builds and --probes must be positive integers");

const AGENT_FLAGS = ["--max-opt=1", "--optimize-for-size", "--semi-space-growth-factor=1"];

/** Runs `script` (this folder) in a child with the agent's flags; its last stdout line is JSON. */
function child(script: string, argv: string[]): unknown {
  const r = spawnSync(process.execPath, [...AGENT_FLAGS, "--conditions=coral-source", "--import", "tsx", join(here, script), ...argv], { cwd: root, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${script} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").at(-1)!);
}

const table = child("build-table.ts", [args.binary, String(builds)]) as { functions: number; cpuMs: number[]; hwmAboveStartMb: number };

const server = spawn(process.execPath, ["-e", `require("node:http").createServer((q, s) => s.end("ok")).listen(0, "127.0.0.1", function () { console.log(this.address().port); })`], { stdio: ["ignore", "pipe", "inherit"] });
const port = await new Promise<number>((resolve, reject) => {
  server.stdout.once("data", (d: Buffer) => resolve(Number(String(d).trim())));
  server.once("exit", (code) => reject(new Error(`probe target exited (${code})`)));
});
let probe: Record<string, number[]>;
try {
  probe = child("probe.ts", [String(port), String(probes)]) as Record<string, number[]>;
} finally {
  server.kill();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
console.log(`machine: ${JSON.stringify(machineInfo())}; load ${loadAverage().join(" ")}`);
console.log(`\nfunction table of ${args.binary} (${table.functions} functions), ${builds} builds in one process:`);
console.log(`  CPU ms per build: ${table.cpuMs.join(" ")} (median ${median(table.cpuMs)}); VmHWM above the start: ${table.hwmAboveStartMb} MB`);
console.log(`\nhealth probe, CPU µs per probe (${probes} in a row, 2 rounds):`);
for (const [name, rounds] of Object.entries(probe)) console.log(`  ${name.padEnd(34)} ${rounds.join(" / ")}`);

const results = join(root, "bench/results");
mkdirSync(results, { recursive: true });
const file = join(results, `agent-costs-${new Date().toISOString().slice(0, 10)}.json`);
writeFileSync(file, JSON.stringify({ benchmark: "agent-costs", startedAt: new Date().toISOString(), machine: machineInfo(), flags: AGENT_FLAGS, table: { binary: args.binary, ...table }, probeCpuMicroseconds: probe }, null, 2));
console.log(`\nwrote ${file}`);
