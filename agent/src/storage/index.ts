// The agent's local storage and publishing buffer. Other folders import this
// file only; the rest of the folder is internal.
export { openAgentStore, AgentStoreClosedError } from "./store.ts";
export { Publisher, type DropCounters, type OutboxDrop, type PublishFn, type PublisherOptions } from "./publisher.ts";
export { backoffDelay, defaultBackoff, defaultOutboxBounds } from "./outbox.ts";
export { splitBatch, type BatchPart, type SplitResult } from "./split.ts";
export { DEFAULT_CLEANUP_INTERVAL_MS, DEFAULT_RETENTION_MS, MAX_RETENTION_MS, checkRetention } from "./retention.ts";
export { migrations, type Migration } from "./migrations.ts";
export type * from "./types.ts";
