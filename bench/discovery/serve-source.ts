// Self-hosted discovery from the TypeScript sources (run with
// --conditions=coral-source, so @coral/discovery-worker resolves to src/, not
// dist/), for benchmarks of uncommitted worker changes:
//   node --conditions=coral-source --import tsx bench/discovery/serve-source.ts
//     --port 8080 --data-dir <dir> [--ttl 3600] [--shards 1] [--mesh-buckets N]
//     [--worker-bundle <file>: run this worker build instead, e.g. one bundled from an older commit]
//     [--answer-cache <entries>: coral-discovery's --answer-cache]
//     [--registration-batch-ms <ms>: how long a registration may wait for others to its shard; 0: each alone]
//     [--worker-inspector: open each shard's V8 inspector and print "worker-inspector <ws url>"]
// Registration rate limit off, warnings and errors logged.
import { readFile } from "node:fs/promises";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { createLogger, startDiscoveryServer } from "@coral/discovery-worker";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    "data-dir": { type: "string" },
    ttl: { type: "string", default: "3600" },
    shards: { type: "string", default: "1" },
    "mesh-buckets": { type: "string" },
    "worker-bundle": { type: "string" },
    "answer-cache": { type: "string" },
    "registration-batch-ms": { type: "string" },
    // open each shard's V8 inspector and print its URL ("worker-inspector <url>"), to profile the worker
    "worker-inspector": { type: "boolean", default: false },
  },
});
if (!args["data-dir"]) throw new Error("--data-dir is required");
const server = await startDiscoveryServer({
  port: Number(args.port),
  host: "127.0.0.1",
  dataDir: args["data-dir"],
  ttlSeconds: Number(args.ttl),
  cleanupIntervalSeconds: 60,
  rateLimitPerMinute: 0,
  shards: Number(args.shards),
  meshBuckets: args["mesh-buckets"] === undefined ? undefined : Number(args["mesh-buckets"]),
  workerScript: args["worker-bundle"] === undefined ? undefined : await readFile(args["worker-bundle"], "utf8"),
  answerCacheEntries: args["answer-cache"] === undefined ? undefined : Number(args["answer-cache"]),
  registrationBatchWindowMs: args["registration-batch-ms"] === undefined ? undefined : Number(args["registration-batch-ms"]),
  workerInspector: args["worker-inspector"],
  logger: createLogger({ level: "warn", format: "console" }),
});
for (const url of await server.workerInspectorUrls()) console.log(`worker-inspector ${url}`);
// SIGUSR2 prints the front's answer-cache and registration-batch counters
// (registrations.ts reads them around each phase), and how late the front's
// event loop ran since the last SIGUSR2: a stalled loop delays every lookup.
const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
process.on("SIGUSR2", () => {
  const delay = { loopDelayP99Ms: loopDelay.percentile(99) / 1e6, loopDelayMaxMs: loopDelay.max / 1e6 };
  loopDelay.reset();
  console.log(`answer-cache ${JSON.stringify({ ...server.answerCacheStats(), ...prefixed(server.registrationBatchStats()), ...delay })}`);
});
const stop = () => void server.close().then(() => process.exit(0));
process.once("SIGINT", stop);
process.once("SIGTERM", stop);

/** The batch counters under names of their own (a front that sends registrations alone has none). */
function prefixed(stats: { batches: number; registrations: number } | undefined): Record<string, number> {
  return stats ? { batchBatches: stats.batches, batchRegistrations: stats.registrations } : {};
}
