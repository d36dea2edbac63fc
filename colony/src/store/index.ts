// The colony store's public surface. Nothing outside this folder imports its
// other modules.
export { openStore } from "./open.ts";
export { StoreClosedError } from "./store.ts";
export { IngestError } from "./ingest.ts";
export { SnapshotVersionError } from "./actors.ts";
export { pickInterval } from "./metrics-query.ts";
export { defaultRetention, resolveRetention } from "./retention.ts";
export { migrations, type Migration } from "./migrations.ts";
export { isLoopback, parseHostPort } from "./addresses.ts";
export * from "./types.ts";
