// Self-hosted discovery from the TypeScript sources (run with
// --conditions=coral-source, so @coral/discovery-worker resolves to src/, not
// dist/), for benchmarks of uncommitted worker changes:
//   node --conditions=coral-source --import tsx bench/discovery/serve-source.ts
//     --port 8080 --data-dir <dir> [--ttl 3600] [--shards 1]
// Registration rate limit off, warnings and errors logged.
import { parseArgs } from "node:util";
import { createLogger, startDiscoveryServer } from "@coral/discovery-worker";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "0" },
    "data-dir": { type: "string" },
    ttl: { type: "string", default: "3600" },
    shards: { type: "string", default: "1" },
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
  logger: createLogger({ level: "warn", format: "console" }),
});
const stop = () => void server.close().then(() => process.exit(0));
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
