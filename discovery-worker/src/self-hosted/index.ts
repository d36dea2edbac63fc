export { startDiscoveryServer, discoveryVersion, type DiscoveryServer, type DiscoveryServerOptions } from "./server.ts";
export type { AnswerCacheStats } from "./answer-cache.ts";
export { bundleWorker } from "./bundle.ts";
export { createLogger, type LogLevel } from "@coral/common/log";
export { shardOf, shardStorageDir, ShardCountError } from "./shards.ts";
