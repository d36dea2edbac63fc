// Shared between bench/discovery/run.ts and the load generator it spawns.
export interface LoadConfig {
  /** Base URL of the server, e.g. http://127.0.0.1:8080 */
  url: string;
  mode: "connect" | "rest";
  meshIds: string[];
  connections: number;
  durationSeconds: number;
  warmupSeconds: number;
  /** Requests per second over all connections; unset: as fast as the server answers. */
  overallRate?: number;
  /** autocannon (default), or lean-load.ts (fixed rate only; a fraction of autocannon's CPU per request). */
  client?: "autocannon" | "lean";
}

export interface LoadResult {
  mode: LoadConfig["mode"];
  connections: number;
  durationSeconds: number;
  requests: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number; mean: number };
  ok2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  /** lean client: [second of the run, worst latency ms] for the seconds whose worst was over 100 ms. */
  slowSeconds?: Array<[number, number]>;
  /** lean client: p99 from each request's write to its answer, without the time it waited for the client. */
  onWireP99Ms?: number;
  /** lean client: how late its own event loop ran (p99 and worst, ms); a starved client adds this to latencies. */
  clientLoopDelayMs?: { p99: number; max: number };
}
