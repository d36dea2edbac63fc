// Size and shape limits at the ingest edge. One place, so the nats-server
// config, the stream, the validator and the tests agree.

/** nats-server's max_payload (headers + body of one message), set explicitly. */
export const natsMaxPayloadBytes = 1024 * 1024;

/** The telemetry stream's cap on its total size, oldest dropped first. */
export const defaultStreamMaxBytes = 1024 * 1024 * 1024;

/** The telemetry stream's cap on one message. */
export const defaultStreamMaxMsgSize = natsMaxPayloadBytes;

/** What one TelemetryBatch may hold; anything beyond is set aside, not stored. */
export const batchLimits = Object.freeze({
  batchIdLength: 256,
  serviceNameLength: 128,
  /** More than fits in one message anyway: the payload cap is the real bound. */
  metrics: 50_000,
  events: 10_000,
  connections: 10_000,
  metricNameLength: 256,
  labels: 64,
  labelKeyLength: 128,
  labelValueLength: 1024,
  eventIdLength: 256,
  eventTypeLength: 128,
  detailsJsonLength: 64 * 1024,
  addrLength: 256,
  stateLength: 32,
  /** Always-on profiler windows (agents send one a minute; more is a backlog). */
  profileWindows: 120,
  profileFrames: 5000,
  profileStacks: 2000,
  /** Frames of one stack (the agent cuts deeper stacks). */
  profileStackDepth: 256,
  profileFunctionLength: 1024,
  profileModuleLength: 1024,
  profileMinHz: 1,
  profileMaxHz: 1000,
  /** A window longer than this is not the per-minute window agents send. */
  profileMaxDurationMs: 60 * 60_000,
  /** Timestamps before this are refused (2000-01-01T00:00:00Z). */
  earliestSeconds: 946_684_800n,
  /** Timestamps more than this ahead of the colony's clock are refused. */
  futureSlackMs: 24 * 60 * 60_000,
});

/** The store's count column is a signed 64-bit BIGINT. */
export const maxStoredCount = 2n ** 63n - 1n;

/** How many bytes of a set-aside payload are kept in the store (the stream keeps the whole message). */
export const deadLetterPayloadBytes = 1024;
