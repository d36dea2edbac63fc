// The colony store's public surface. Nothing outside this folder imports its
// other modules.
export { openStore, readTokensOffline } from "./open.ts";
export { StoreClosedError } from "./store.ts";
export { IngestError } from "./ingest.ts";
export { deadLetterEventType, ingestWithDeadLetters, listDeadLetters, readIngestHealth, recordDeadLetters, type DeadLetterInput, type DeadLetterRow, type IngestHealthRow } from "./dead-letter.ts";
export { SnapshotVersionError } from "./actors.ts";
export { profileServiceKnown, profileStacksPerMinute, readProfileWindow, type StoredFrame, type StoredProfileWindow } from "./profiles.ts";
export { pickInterval } from "./metrics-query.ts";
export { defaultRetention, resolveRetention } from "./retention.ts";
export { migrations, type Migration } from "./migrations.ts";
export { isLoopback, parseHostPort } from "./addresses.ts";
export * from "./types.ts";
export { finishExec, getExec, insertExec, listExecs, type ExecEnd, type ExecOutcome, type ExecRecordRow } from "./execs.ts";
