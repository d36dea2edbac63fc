// NATS for the colony: its own nats-server (when none is configured), the
// telemetry stream, and ingestion from it.
export {
  defaultNatsPort,
  resolveNatsServerBinary,
  startManagedNats,
  type AgentNatsCredentials,
  type AgentUserInfo,
  type ColonyNatsCredentials,
  type ManagedNats,
  type ManagedNatsOptions,
  type NatsCredentials,
} from "./managed-server.ts";
export { agentPermissions, colonyInboxPrefix } from "./server-config.ts";
export { NatsReloadError, NatsServerNotFoundError, NatsServerStartError, natsInstallHint } from "./errors.ts";
export {
  defaultDuplicateWindowMs,
  defaultIngestMaxDeliver,
  defaultStreamMaxAgeMs,
  ensureIngestConsumer,
  ensureTelemetryStream,
  ingestDurableName,
  type IngestConsumerOptions,
  type TelemetryStreamOptions,
} from "./stream.ts";
export { startIngestion, type Ingestion, type IngestionOptions, type IngestionStats, type LastDeadLetter } from "./ingestion.ts";
export { decodeBatch, decodeBatchFast, decodeTelemetryMessage, type DecodedTelemetry } from "./decode.ts";
export { validateTelemetryBatch } from "./validate.ts";
export { classifySinkError, type SinkFailure } from "./failure.ts";
export { agentOfSubject, deadLetterKey, type DeadLetter } from "./dead-letter.ts";
export { batchLimits, deadLetterPayloadBytes, defaultStreamMaxBytes, defaultStreamMaxMsgSize, maxStoredCount, natsMaxPayloadBytes } from "./limits.ts";
export {
  agentInboxPrefix,
  agentSubjectPrefix,
  deadLetterSubject,
  parseTelemetrySubject,
  streamName,
  streamSubjects,
  subjectTokenProblem,
  telemetryFilterSubject,
  telemetrySubject,
  type ParsedTelemetrySubject,
} from "./subjects.ts";
export type { NatsLogger } from "./logger.ts";
