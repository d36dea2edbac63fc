// The colony's telemetry stream and the ingestion's durable consumer.
import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  ReplayPolicy,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type ConsumerInfo,
  type JetStreamManager,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { defaultStreamMaxBytes, defaultStreamMaxMsgSize } from "./limits.ts";
import { streamName, streamSubjects, telemetryFilterSubject } from "./subjects.ts";

export interface TelemetryStreamOptions {
  /** How long messages are kept (default 24 h). */
  maxAgeMs?: number;
  /** Window in which a repeated Nats-Msg-Id is dropped (default 2 min). */
  duplicateWindowMs?: number;
  /** Cap on the stream's size in bytes, oldest dropped first (default 1 GiB): no agent can fill the disk. */
  maxBytes?: number;
  /** Cap on one message in bytes (default 1 MiB, the server's max_payload); larger publishes are refused. */
  maxMsgSize?: number;
}

export const defaultStreamMaxAgeMs = 24 * 60 * 60_000;
export const defaultDuplicateWindowMs = 2 * 60_000;

function isApiError(err: unknown, code: number): boolean {
  return err instanceof JetStreamApiError && err.code === code;
}

/** Creates the colony's stream, or updates it to this configuration. Idempotent. */
export async function ensureTelemetryStream(jsm: JetStreamManager, colonyId: string, options: TelemetryStreamOptions = {}): Promise<StreamInfo> {
  const name = streamName(colonyId);
  const maxAgeMs = options.maxAgeMs ?? defaultStreamMaxAgeMs;
  const duplicateWindowMs = Math.min(options.duplicateWindowMs ?? defaultDuplicateWindowMs, maxAgeMs);
  const wanted: Partial<StreamConfig> & { name: string } = {
    name,
    description: `Coral telemetry of colony ${colonyId}`,
    subjects: streamSubjects(colonyId),
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    max_age: nanos(maxAgeMs),
    duplicate_window: nanos(duplicateWindowMs),
    max_bytes: options.maxBytes ?? defaultStreamMaxBytes,
    max_msg_size: options.maxMsgSize ?? defaultStreamMaxMsgSize,
    num_replicas: 1,
  };
  let existing: StreamInfo | undefined;
  try {
    existing = await jsm.streams.info(name);
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
  }
  if (!existing) {
    try {
      return await jsm.streams.add(wanted);
    } catch (err) {
      // Created concurrently: fall through to the update.
      if (!(err instanceof JetStreamApiError)) throw err;
      existing = await jsm.streams.info(name);
    }
  }
  if (existing.config.storage !== StorageType.File)
    throw new Error(`stream ${name} exists with ${existing.config.storage} storage; delete it so the colony can recreate it with file storage`);
  const { name: _name, storage: _storage, ...updatable } = wanted;
  return jsm.streams.update(name, { ...existing.config, ...updatable });
}

export const ingestDurableName = "colony-ingest";

export interface IngestConsumerOptions {
  durableName?: string;
  ackWaitMs?: number;
  maxAckPending?: number;
  /** Deliveries of one message at most (default 13); ingestion sets a message aside before that. */
  maxDeliver?: number;
}

export const defaultIngestMaxDeliver = 13;

/** Creates the ingestion's durable pull consumer, or updates its changeable settings. Idempotent. */
export async function ensureIngestConsumer(jsm: JetStreamManager, colonyId: string, options: IngestConsumerOptions = {}): Promise<ConsumerInfo> {
  const stream = streamName(colonyId);
  const durable = options.durableName ?? ingestDurableName;
  const ackWaitMs = options.ackWaitMs ?? 30_000;
  const maxDeliver = Math.max(2, options.maxDeliver ?? defaultIngestMaxDeliver);
  const changeable = {
    description: "Coral colony ingestion: telemetry batches into the store",
    ack_wait: nanos(ackWaitMs),
    // Finite: a message is never redelivered forever (ingestion sets it aside first).
    // The backoff between deliveries is ingestion's own (its nak delays double per
    // delivery); no consumer `backoff`: nats-server 2.9 lets it override nak delays.
    max_deliver: maxDeliver,
    max_ack_pending: options.maxAckPending ?? 1000,
  } satisfies Partial<ConsumerConfig>;
  let exists = true;
  try {
    await jsm.consumers.info(stream, durable);
  } catch (err) {
    if (!isApiError(err, JetStreamApiCodes.ConsumerNotFound)) throw err;
    exists = false;
  }
  if (exists) return jsm.consumers.update(stream, durable, changeable);
  return jsm.consumers.add(stream, {
    ...changeable,
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    replay_policy: ReplayPolicy.Instant,
    filter_subject: telemetryFilterSubject(colonyId),
  });
}
