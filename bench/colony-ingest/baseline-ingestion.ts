// The colony's ingestion as it was before issue 17 (reflective protobuf decode,
// no validation, no isolation: a failing fetch is nak'ed whole), kept here only
// so the bench can run it beside today's code in the same run and compare.
// Not used by the colony.
import { fromBinary } from "@bufbuild/protobuf";
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type Consumer, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { TelemetryBatchSchema, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { backoffMs, sleep } from "@coral/common/async";
import { ensureIngestConsumer, ensureTelemetryStream, ingestDurableName, parseTelemetrySubject, streamName, type NatsLogger } from "@coral/colony/nats";

const errorMessage = (err: unknown) => (err instanceof Error ? err.message : String(err));
const ignore = () => {};
const silentLogger: NatsLogger = { debug: ignore, info: ignore, warn: ignore, error: ignore };

export interface IngestionOptions {
  nc: NatsConnection;
  colonyId: string;
  /** Stores the batches of one fetch; resolve only once they are committed. Should be idempotent by batch_id. */
  sink: (batches: TelemetryBatch[]) => Promise<unknown>;
  logger?: NatsLogger;
  /** Messages per fetch (default 500). */
  batchSize?: number;
  /** How long one fetch waits to fill its batch, ≥ 1000 ms (default 1000). This bounds ingestion latency. */
  maxWaitMs?: number;
  /** Redelivery delay of the batches of a failed sink call (default 2000 ms). */
  nakDelayMs?: number;
  /** Backoff after a failure (sink or connection): initial and cap (default 500 ms → 30 s). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** The consumer's ack wait (default 30 s); a slow sink keeps its messages alive meanwhile. */
  ackWaitMs?: number;
  durableName?: string;
}

export interface IngestionStats {
  /** Messages fetched, including redeliveries and poison. */
  received: number;
  /** Messages acked after the sink stored them. */
  acked: number;
  /** Messages termed because they could not be decoded or lied about their agent. */
  poison: number;
  /** Sink calls that rejected. */
  sinkErrors: number;
  /** Messages nak'ed after a failed sink call. */
  nakked: number;
  /** Acks the server did not confirm (the message comes back after the ack wait). */
  ackErrors: number;
  /** Messages that were a redelivery. */
  redelivered: number;
}

export interface Ingestion extends AsyncDisposable {
  /** Resolves once the consumer is bound (or, if that never happened, when ingestion ends). */
  readonly ready: Promise<void>;
  stats(): IngestionStats;
  /** Stops fetching, lets the batch in hand finish (stored and acked, or nak'ed). Idempotent. */
  stop(): Promise<void>;
}

type DecodedTelemetry = { batch: TelemetryBatch } | { error: string };

/** Decodes one message; an error means the message is poison. */
function decodeTelemetryMessage(colonyId: string, subject: string, data: Uint8Array): DecodedTelemetry {
  const parsed = parseTelemetrySubject(colonyId, subject);
  if ("error" in parsed) return parsed;
  let batch: TelemetryBatch;
  try {
    batch = fromBinary(TelemetryBatchSchema, data);
  } catch (err) {
    return { error: `not a protobuf TelemetryBatch (${errorMessage(err)})` };
  }
  if (batch.agentId !== parsed.agentId)
    return { error: `batch agent_id ${JSON.stringify(batch.agentId)} does not match the subject's agent ${JSON.stringify(parsed.agentId)}` };
  if (!batch.batchId) return { error: "batch_id is empty" };
  return { batch };
}

type FetchOutcome = "idle" | "stored" | "sink-failed";

export function startBaselineIngestion(options: IngestionOptions): Ingestion {
  const { nc, colonyId, sink } = options;
  const log = options.logger ?? silentLogger;
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? 500));
  const maxWaitMs = Math.max(1000, options.maxWaitMs ?? 1000);
  const nakDelayMs = options.nakDelayMs ?? 2000;
  const retryInitialMs = options.retryInitialMs ?? 500;
  const retryMaxMs = options.retryMaxMs ?? 30_000;
  const ackWaitMs = options.ackWaitMs ?? 30_000;
  const durable = options.durableName ?? ingestDurableName;
  const stream = streamName(colonyId);

  const stats: IngestionStats = { received: 0, acked: 0, poison: 0, sinkErrors: 0, nakked: 0, ackErrors: 0, redelivered: 0 };
  const stopController = new AbortController();
  let stopped = false;
  let current: ConsumerMessages | undefined;
  let markReady!: () => void;
  const ready = new Promise<void>((done) => (markReady = done));

  async function bind(): Promise<Consumer> {
    const jsm = await jetstreamManager(nc);
    try {
      await jsm.streams.info(stream);
    } catch (err) {
      if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound)) throw err;
      log.info({ stream }, "Telemetry stream missing; creating it");
      await ensureTelemetryStream(jsm, colonyId);
    }
    await ensureIngestConsumer(jsm, colonyId, { durableName: durable, ackWaitMs, maxAckPending: Math.max(1000, batchSize * 2) });
    return jetstream(nc).consumers.get(stream, durable);
  }

  async function flushQuietly(): Promise<void> {
    if (!nc.isClosed()) await nc.flush().catch(() => {});
  }

  async function handle(msgs: JsMsg[]): Promise<FetchOutcome> {
    stats.received += msgs.length;
    const good: Array<{ m: JsMsg; batch: TelemetryBatch }> = [];
    for (const m of msgs) {
      if (m.redelivered) stats.redelivered++;
      const decoded = decodeTelemetryMessage(colonyId, m.subject, m.data);
      if ("error" in decoded) {
        stats.poison++;
        log.warn({ subject: m.subject, stream_seq: m.seq, deliveries: m.info.deliveryCount, reason: decoded.error }, "Poison telemetry message; terminating it");
        // No reason text: nats-server 2.9 only understands a bare +TERM.
        m.term();
        continue;
      }
      good.push({ m, batch: decoded.batch });
    }
    if (good.length === 0) {
      await flushQuietly();
      return "idle";
    }
    // A sink slower than the ack wait would see its batches redelivered; keep them in progress.
    const keepAlive = setInterval(() => good.forEach(({ m }) => m.working()), Math.max(1000, Math.floor(ackWaitMs / 3)));
    try {
      await sink(good.map(({ batch }) => batch));
    } catch (err) {
      stats.sinkErrors++;
      for (const { m } of good) m.nak(nakDelayMs);
      stats.nakked += good.length;
      log.warn({ err: errorMessage(err), batches: good.length, redeliver_in_ms: nakDelayMs }, "Telemetry sink failed; the batches will be redelivered");
      await flushQuietly();
      return "sink-failed";
    } finally {
      clearInterval(keepAlive);
    }
    const acks = await Promise.allSettled(good.map(({ m }) => m.ackAck()));
    const failed = acks.filter((a) => a.status === "rejected");
    stats.acked += acks.length - failed.length;
    stats.ackErrors += failed.length;
    if (failed.length > 0)
      log.warn({ failed: failed.length, err: errorMessage(failed[0]!.reason) }, "Some acks were not confirmed; those batches will be redelivered after the ack wait");
    log.debug({ batches: good.length }, "Stored telemetry batches");
    return "stored";
  }

  async function fetchOnce(consumer: Consumer): Promise<FetchOutcome> {
    const iter = await consumer.fetch({ max_messages: batchSize, expires: maxWaitMs });
    current = iter;
    if (stopped) void iter.close();
    const msgs: JsMsg[] = [];
    let fetchError: unknown;
    try {
      for await (const m of iter) msgs.push(m);
    } catch (err) {
      fetchError = err;
    } finally {
      current = undefined;
    }
    const outcome = msgs.length > 0 ? await handle(msgs) : "idle";
    if (fetchError) throw fetchError;
    return outcome;
  }

  async function run(): Promise<void> {
    let failures = 0;
    let sinkFailures = 0;
    while (!stopped) {
      try {
        const consumer = await bind();
        markReady();
        log.info({ stream, durable }, "Ingestion consumer bound");
        while (!stopped) {
          const outcome = await fetchOnce(consumer);
          failures = 0;
          if (outcome === "sink-failed") await sleep(backoffMs(sinkFailures++, retryInitialMs, retryMaxMs), stopController.signal);
          else if (outcome === "stored") sinkFailures = 0;
        }
      } catch (err) {
        if (stopped) break;
        if (nc.isClosed()) {
          log.error({ err: errorMessage(err) }, "NATS connection is closed; ingestion stopped");
          break;
        }
        const wait = backoffMs(failures++, retryInitialMs, retryMaxMs);
        log.warn({ err: errorMessage(err), retry_in_ms: wait }, "Ingestion lost its consumer; binding again");
        await sleep(wait, stopController.signal);
      }
    }
  }

  const loop = run()
    .catch((err: unknown) => log.error({ err: errorMessage(err) }, "Ingestion loop failed"))
    .finally(markReady);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      stopped = true;
      stopController.abort();
      void current?.close();
      await loop;
      await flushQuietly();
      log.info({ ...stats }, "Ingestion stopped");
    })());

  return { ready, stats: () => ({ ...stats }), stop, [Symbol.asyncDispose]: stop };
}
