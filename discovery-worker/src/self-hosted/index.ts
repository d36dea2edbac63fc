export { startDiscoveryServer, discoveryVersion, defaultMeshBuckets, type DiscoveryServer, type DiscoveryServerOptions } from "./server.ts";
export type { AnswerCacheStats } from "./answer-cache.ts";
export { bundleWorker } from "./bundle.ts";
export { createLogger, type LogLevel } from "@coral/common/log";
export { meshBucketOf, shardOf, shardStorageDir, MeshBucketsError, ShardCountError } from "./shards.ts";
