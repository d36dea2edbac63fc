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
}
