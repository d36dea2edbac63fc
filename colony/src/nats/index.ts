// NATS for the colony: its own nats-server (when none is configured), the
// telemetry stream, and ingestion from it.
export {
  defaultNatsPort,
  resolveNatsServerBinary,
  startManagedNats,
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
  defaultStreamMaxAgeMs,
  ensureIngestConsumer,
  ensureTelemetryStream,
  ingestDurableName,
  type IngestConsumerOptions,
  type TelemetryStreamOptions,
} from "./stream.ts";
export { decodeTelemetryMessage, startIngestion, type DecodedTelemetry, type Ingestion, type IngestionOptions, type IngestionStats } from "./ingestion.ts";
export {
  agentSubjectPrefix,
  parseTelemetrySubject,
  streamName,
  streamSubjects,
  subjectTokenProblem,
  telemetryFilterSubject,
  telemetrySubject,
  type ParsedTelemetrySubject,
} from "./subjects.ts";
export type { NatsLogger } from "./logger.ts";
