// coral-discovery: run the discovery service self-hosted.
import { availableParallelism } from "node:os";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { generateSigningJwk } from "./keys.ts";
import { createLogger, logLevels, type LogLevel } from "@coral/common/log";
import { defaultAnswerCacheEntries, defaultMeshBuckets, discoveryVersion, startDiscoveryServer } from "./server.ts";
import { defaultShardCount, maxMeshBuckets, maxShards, MeshBucketsError, ShardCountError } from "./shards.ts";

function integer(name: string, min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
}

export function discoveryCli(): Command {
  const program = new Command("coral-discovery")
    .description("Run Coral's discovery service (the Cloudflare Worker, self-hosted in workerd)")
    .version(discoveryVersion)
    .option("--port <port>", "HTTP port to listen on", integer("--port", 0, 65535), 8080)
    .option("--host <address>", "address to listen on", "0.0.0.0")
    .option("--ttl <seconds>", "time-to-live of registrations", integer("--ttl", 1, 86400), 300)
    .option("--cleanup-interval <seconds>", "purge expired entries at most this often (lookups never return them)", integer("--cleanup-interval", 0, 86400), 60)
    .option("--data-dir <dir>", "where registrations persist across restarts", ".coral/discovery")
    .option("--rate-limit <per-minute>", "registrations per minute per client address (0: off)", integer("--rate-limit", 0, 1_000_000), 60)
    .option("--pin-grace <seconds>", "how long an expired colony keeps its identity key pinned", integer("--pin-grace", 0, 31_536_000), 86400)
    .option(
      "--shards <n>",
      `workerd processes to split meshes over (default: one per CPU but one, which the front needs: ${defaultShardCount(availableParallelism())} here; for a new data dir; ` +
        "an existing data dir keeps its count)",
      integer("--shards", 1, maxShards),
    )
    .option(
      "--mesh-buckets <n>",
      `Durable Objects per shard that meshes share (0: one per mesh, as hosted; default ${defaultMeshBuckets} for a new data dir; ` +
        "an existing data dir keeps its count, one per mesh if it predates buckets)",
      integer("--mesh-buckets", 0, maxMeshBuckets),
    )
    .option(
      "--answer-cache <entries>",
      "lookup answers the front keeps and serves until a registration of their mesh or their expiry (0: off)",
      integer("--answer-cache", 0, 10_000_000),
      defaultAnswerCacheEntries,
    )
    .addOption(new Option("--log-level <level>", "logging level").choices(logLevels).default("info"))
    .addOption(new Option("--log-format <format>", "log format").choices(["console", "json"]).default("console"))
    .showHelpAfterError()
    // Usage errors become exit code 2 in runDiscoveryCli (set before keygen so it inherits it).
    .exitOverride()
    .action(async (opts: {
      port: number;
      host: string;
      ttl: number;
      cleanupInterval: number;
      dataDir: string;
      rateLimit: number;
      pinGrace: number;
      shards?: number;
      meshBuckets?: number;
      answerCache: number;
      logLevel: LogLevel;
      logFormat: "console" | "json";
    }) => {
      const log = createLogger({ level: opts.logLevel, format: opts.logFormat });
      log.info({ port: opts.port, ttl: `${opts.ttl}s`, version: discoveryVersion }, "Starting discovery service");
      const server = await startDiscoveryServer({
        port: opts.port,
        host: opts.host,
        ttlSeconds: opts.ttl,
        cleanupIntervalSeconds: opts.cleanupInterval,
        dataDir: opts.dataDir,
        rateLimitPerMinute: opts.rateLimit,
        pinGraceSeconds: opts.pinGrace,
        shards: opts.shards,
        defaultShards: defaultShardCount(availableParallelism()),
        meshBuckets: opts.meshBuckets,
        answerCacheEntries: opts.answerCache,
        signingKey: process.env.CORAL_DISCOVERY_SIGNING_KEY || undefined,
        logger: log,
      }).catch((err: NodeJS.ErrnoException) => {
        if (err instanceof ShardCountError || err instanceof MeshBucketsError) {
          log.error(err.message);
          process.exit(2);
        }
        if (err.code === "EADDRINUSE") {
          log.error(`failed to listen on ${opts.host}:${opts.port}: address already in use; pick another with --port`);
          process.exit(1);
        }
        log.error(`failed to start: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      });
      log.info({ addr: `${opts.host === "0.0.0.0" ? "" : opts.host}:${server.port}`, data_dir: opts.dataDir, shards: server.shards, mesh_buckets: server.meshBuckets }, "Discovery service listening");
      const stop = async (signal: string) => {
        const cache = server.answerCacheStats();
        const cacheFields = cache && { cache_hits: cache.hits, cache_misses: cache.misses, cache_entries: cache.entries };
        log.info({ signal, ...cacheFields }, "Stopping discovery service");
        await server.close();
        process.exit(0);
      };
      process.once("SIGINT", () => void stop("SIGINT"));
      process.once("SIGTERM", () => void stop("SIGTERM"));
    });

  program
    .command("keygen")
    .description("print a new Ed25519 private JWK for signing bootstrap tokens (for `wrangler secret put BOOTSTRAP_SIGNING_KEY`)")
    .action(async () => {
      process.stdout.write((await generateSigningJwk()) + "\n");
    });
  return program;
}

/** Runs coral-discovery; exit codes as coral's: 0 ok (or --help), 1 failure, 2 usage error. */
export async function runDiscoveryCli(argv: string[]): Promise<number> {
  try {
    await discoveryCli().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    console.error(`Error: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}
