// Reads the worker's variables once per isolate, with defaults.
export interface DiscoveryConfig {
  ttlMs: number;
  cleanupIntervalMs: number;
  pinGraceMs: number;
  replayWindowMs: number;
  registerRatePerMinute: number;
  /** How long an isolate may reuse a lookup answer (0: never). */
  lookupCacheMs: number;
  version: string;
}

function seconds(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === "") return fallback * 1000;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a number of seconds (got "${value}")`);
  return n * 1000;
}

export function readConfig(env: DiscoveryEnv): DiscoveryConfig {
  const rate = env.REGISTER_RATE_PER_MINUTE === undefined ? 60 : Number(env.REGISTER_RATE_PER_MINUTE);
  return {
    ttlMs: seconds(env.REGISTRATION_TTL_SECONDS, 300, "REGISTRATION_TTL_SECONDS"),
    cleanupIntervalMs: seconds(env.CLEANUP_INTERVAL_SECONDS, 0, "CLEANUP_INTERVAL_SECONDS"),
    pinGraceMs: seconds(env.PIN_GRACE_SECONDS, 86400, "PIN_GRACE_SECONDS"),
    replayWindowMs: seconds(env.REPLAY_WINDOW_SECONDS, 300, "REPLAY_WINDOW_SECONDS"),
    registerRatePerMinute: Number.isFinite(rate) && rate >= 0 ? rate : 60,
    lookupCacheMs: seconds(env.LOOKUP_CACHE_SECONDS, 1, "LOOKUP_CACHE_SECONDS"),
    version: env.VERSION ?? "dev",
  };
}
