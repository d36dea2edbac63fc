export {
  startDiscoveryServer,
  discoveryVersion,
  defaultMeshBuckets,
  defaultRegistrationBatchWindowMs,
  type DiscoveryServer,
  type DiscoveryServerOptions,
} from "./server.ts";
export type { BatcherStats } from "./registration-batcher.ts";
export type { AnswerCacheStats } from "./answer-cache.ts";
export { bundleWorker } from "./bundle.ts";
export { createLogger, type LogLevel } from "@coral/common/log";
export { defaultShardCount, meshBucketOf, shardOf, shardStorageDir, MeshBucketsError, ShardCountError } from "./shards.ts";
