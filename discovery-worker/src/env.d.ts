import type { Directory } from "./worker/directory.ts";
import type { MeshRegistry } from "./worker/mesh-registry.ts";
import type { RateLimiter } from "./worker/rate-limiter.ts";

declare global {
  interface DiscoveryEnv {
    MESHES: DurableObjectNamespace<MeshRegistry>;
    DIRECTORY: DurableObjectNamespace<Directory>;
    RATE_LIMITER: DurableObjectNamespace<RateLimiter>;
    /** Seconds a registration lives unless refreshed (default 300). */
    REGISTRATION_TTL_SECONDS?: string;
    /** Purge expired entries at most this often, in seconds (default 0: exactly at expiry). */
    CLEANUP_INTERVAL_SECONDS?: string;
    /** How long a pinned identity key outlives its last registration (default 86400). */
    PIN_GRACE_SECONDS?: string;
    /** How far a signature's timestamp may be from discovery's clock (default 300). */
    REPLAY_WINDOW_SECONDS?: string;
    /** Registrations per minute per client address; 0 turns the limit off (default 60). */
    REGISTER_RATE_PER_MINUTE?: string;
    /** Seconds an isolate may reuse a lookup answer (default 1; 0 turns the cache off; self-hosted sets the TTL, see server.ts). */
    LOOKUP_CACHE_SECONDS?: string;
    /**
     * Durable Objects meshes are hashed into (`bucket:<n>`), from 0 to 4096.
     * Default 0: one object per mesh, as hosted on Cloudflare; self-hosted
     * sets it per data dir (see shards.ts), since one SQLite database per mesh
     * is what limits registrations in workerd.
     */
    MESH_BUCKETS?: string;
    VERSION?: string;
    /** Set by the self-hosted server so Health reports the process's uptime. */
    STARTED_AT_MS?: string;
    /** Set by the self-hosted front (random per start): requests without it in x-coral-front-secret are refused. */
    FRONT_SECRET?: string;
    /** Secret: the Ed25519 private JWK that signs bootstrap tokens. */
    BOOTSTRAP_SIGNING_KEY?: string;
  }
}
export {};
