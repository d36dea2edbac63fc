// Load generator for bench/discovery/run.ts, started as its own process so the
// client does not share an event loop with the orchestrator. Reads a JSON
// config file (path in argv[2]), runs autocannon or lean-load.ts (a warm-up
// run, then the measured one) and prints JSON lines on stdout: start, end,
// result (with the generator's own CPU seconds).
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { askEachOnce, connectLookupPath, restLookupPath, runLeanLoad } from "./lean-load.ts";
import type { LoadConfig, LoadResult } from "./types.ts";

// autocannon ships no type declarations: describe the part this file uses.
interface AutocannonRequest {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string;
  setupRequest?: (req: AutocannonRequest) => AutocannonRequest;
}

interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  pipelining?: number;
  timeout?: number;
  /** Fixed request rate; autocannon then corrects latencies for coordinated omission. */
  overallRate?: number;
  requests: AutocannonRequest[];
}

interface Histogram {
  average: number;
  mean: number;
  max: number;
  p50: number;
  p90: number;
  p99: number;
  total?: number;
}

interface AutocannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  "2xx": number;
  latency: Histogram & { totalCount: number };
  requests: Histogram & { sent: number };
  statusCodeStats: Record<string, { count: number }>;
}

const require = createRequire(import.meta.url);
const autocannon = require("autocannon") as (options: AutocannonOptions) => PromiseLike<AutocannonResult>;

/** One request template that picks a mesh id per request, starting at a random offset per connection. */
function requestFor(config: LoadConfig): AutocannonRequest {
  const ids = config.meshIds;
  if (ids.length === 0) throw new Error("no mesh ids to look up");
  // Prebuilt bodies and paths keep the generator's per-request work small.
  if (config.mode === "connect") {
    const bodies = ids.map((meshId) => JSON.stringify({ meshId }));
    let next = Math.floor(Math.random() * ids.length);
    return {
      method: "POST",
      path: connectLookupPath,
      headers: { "content-type": "application/json" },
      setupRequest: (req) => {
        next = (next + 7919) % bodies.length; // a prime stride spreads consecutive requests over meshes
        return { ...req, body: bodies[next]! };
      },
    };
  }
  const paths = ids.map(restLookupPath);
  let next = Math.floor(Math.random() * ids.length);
  return {
    method: "GET",
    setupRequest: (req) => {
      next = (next + 7919) % paths.length;
      return { ...req, path: paths[next]! };
    },
  };
}

function autocannonOptions(config: LoadConfig, durationSeconds: number): AutocannonOptions {
  return {
    url: config.url,
    connections: config.connections,
    duration: durationSeconds,
    pipelining: 1,
    timeout: 10,
    ...(config.overallRate ? { overallRate: config.overallRate } : {}),
    requests: [requestFor(config)],
  };
}

function emit(message: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(message) + "\n");
}

async function runLoad(config: LoadConfig): Promise<LoadResult & { cpuSeconds: number }> {
  if (config.client === "lean") {
    // The lean client's warm-up asks every mesh once (see askEachOnce), however long that takes.
    if (config.warmupSeconds > 0) await askEachOnce(config);
    emit({ event: "start" });
    const cpuBefore = process.cpuUsage();
    const result = await runLeanLoad(config, config.durationSeconds);
    const cpu = process.cpuUsage(cpuBefore);
    emit({ event: "end" });
    return { ...result, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  }
  if (config.warmupSeconds > 0) await autocannon(autocannonOptions(config, config.warmupSeconds));
  // The orchestrator samples the server's CPU time between "start" and "end".
  emit({ event: "start" });
  const cpuBefore = process.cpuUsage();
  const result = await autocannon(autocannonOptions(config, config.durationSeconds));
  const cpu = process.cpuUsage(cpuBefore);
  emit({ event: "end" });
  const completed = result["2xx"] + result.non2xx;
  const statusCodes = Object.fromEntries(Object.entries(result.statusCodeStats).map(([code, s]) => [code, s.count]));
  return {
    mode: config.mode,
    connections: config.connections,
    durationSeconds: result.duration,
    requests: completed,
    requestsPerSecond: result.duration > 0 ? completed / result.duration : 0,
    latencyMs: {
      p50: result.latency.p50,
      p90: result.latency.p90,
      p99: result.latency.p99,
      max: result.latency.max,
      mean: result.latency.mean,
    },
    ok2xx: result["2xx"],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}

const configPath = process.argv[2];
if (!configPath) {
  console.error("usage: node --import tsx bench/discovery/load.ts <config.json>");
  process.exit(2);
}
const config = JSON.parse(await readFile(configPath, "utf8")) as LoadConfig;
emit({ event: "result", ...(await runLoad(config)) });
