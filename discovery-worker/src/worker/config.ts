// Reads the worker's variables once per isolate, with defaults.
import { Code, ConnectError } from "@connectrpc/connect";
import { maxMeshBuckets } from "./mesh-hash.ts";

export interface DiscoveryConfig {
  ttlMs: number;
  cleanupIntervalMs: number;
  pinGraceMs: number;
  replayWindowMs: number;
  registerRatePerMinute: number;
  /** How long an isolate may reuse a lookup answer (0: never). */
  lookupCacheMs: number;
  /** Durable Objects that meshes are hashed into; 0: one object per mesh. */
  meshBuckets: number;
  version: string;
}

/**
 * A variable of the worker has a value it cannot run with. Every request
 * answers with the reason (internal, naming the variable: nothing secret, and
 * it says what to fix), through the Connect and REST routes alike.
 */
export class ConfigError extends ConnectError {
  constructor(reason: string) {
    // Its name stays "ConnectError": connect-es recognises its errors by name.
    super(`discovery is misconfigured: ${reason}`, Code.Internal);
  }
}

function seconds(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === "") return fallback * 1000;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new ConfigError(`${name} must be a number of seconds (got "${value}")`);
  return n * 1000;
}

/** MESH_BUCKETS: unset or "0" keeps one object per mesh (the hosted layout). */
export function parseMeshBuckets(value: string | undefined): { buckets: number } | { error: string } {
  if (value === undefined || value === "") return { buckets: 0 };
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n > maxMeshBuckets)
    return {
      error:
        `MESH_BUCKETS must be a whole number from 0 to ${maxMeshBuckets} ` +
        `(0: one Durable Object per mesh; N: meshes share N objects) (got "${value}")`,
    };
  return { buckets: n };
}

let cached: { env: DiscoveryEnv; config: DiscoveryConfig } | undefined;

export function readConfig(env: DiscoveryEnv): DiscoveryConfig {
  // The env object is the same for every request of an isolate.
  if (cached?.env === env) return cached.config;
  const rate = env.REGISTER_RATE_PER_MINUTE === undefined ? 60 : Number(env.REGISTER_RATE_PER_MINUTE);
  const buckets = parseMeshBuckets(env.MESH_BUCKETS);
  if ("error" in buckets) throw new ConfigError(buckets.error);
  const config: DiscoveryConfig = {
    ttlMs: seconds(env.REGISTRATION_TTL_SECONDS, 300, "REGISTRATION_TTL_SECONDS"),
    cleanupIntervalMs: seconds(env.CLEANUP_INTERVAL_SECONDS, 0, "CLEANUP_INTERVAL_SECONDS"),
    pinGraceMs: seconds(env.PIN_GRACE_SECONDS, 86400, "PIN_GRACE_SECONDS"),
    replayWindowMs: seconds(env.REPLAY_WINDOW_SECONDS, 300, "REPLAY_WINDOW_SECONDS"),
    registerRatePerMinute: Number.isFinite(rate) && rate >= 0 ? rate : 60,
    lookupCacheMs: seconds(env.LOOKUP_CACHE_SECONDS, 1, "LOOKUP_CACHE_SECONDS"),
    meshBuckets: buckets.buckets,
    version: env.VERSION ?? "dev",
  };
  cached = { env, config };
  return config;
}
