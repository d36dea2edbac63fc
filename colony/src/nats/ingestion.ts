// Ingestion: a durable JetStream pull consumer on the colony's telemetry.
//
// Bad input cannot stop it. Every message is decoded and validated first; one
// that fails is set aside (dead-lettered: recorded, republished on the
// dead-letter subject, termed, counted). The good batches of a fetch go to the
// sink in one call and are acked once it resolves. When that call fails:
//  - the store is unavailable: the batches are held (kept in progress) and the
//    call retried with backoff, so an outage loses nothing and burns no deliveries;
//  - otherwise the group is bisected until the batch at fault is alone; the
//    rest is stored and acked. A batch the store refuses for good is set aside;
//    one failing for an unknown reason is redelivered later, and set aside once
//    it has been delivered maxDeliveries times (the consumer's max_deliver is
//    finite too, a little above, so nothing is redelivered forever).
// Fetching and decoding the next messages overlaps storing the previous ones.
import { jetstream, jetstreamManager, JetStreamApiCodes, JetStreamApiError, type Consumer, type ConsumerMessages, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { backoffMs, sleep } from "@coral/common/async";
import { agentOfSubject, deadLetterKey, publishDeadLetter, type DeadLetter } from "./dead-letter.ts";
import { decodeTelemetryMessage } from "./decode.ts";
import { classifySinkError, type SinkFailure } from "./failure.ts";
import { errorMessage, silentLogger, type NatsLogger } from "./logger.ts";
import { ensureIngestConsumer, ensureTelemetryStream, ingestDurableName } from "./stream.ts";
import { streamName } from "./subjects.ts";

export { decodeTelemetryMessage, type DecodedTelemetry } from "./decode.ts";

export interface IngestionOptions {
  nc: NatsConnection;
  colonyId: string;
  /** Stores the batches of one call; resolve only once they are committed. Must be idempotent by batch_id. */
  sink: (batches: TelemetryBatch[]) => Promise<unknown>;
  /** Records set-aside messages durably (the colony: its dead-letter table and an event). */
  deadLetterSink?: (letters: DeadLetter[]) => Promise<unknown>;
  /**
   * Stores batches and records dead letters in one transaction (one commit,
   * not two, for a fetch that holds both); tried first for such a fetch.
   */
  sinkWithDeadLetters?: (batches: TelemetryBatch[], letters: DeadLetter[]) => Promise<unknown>;
  /** A cheap write through the store: tells a store outage from a bad batch when the error does not say. */
  probe?: () => Promise<unknown>;
  /** How a sink error is read (default classifySinkError). */
  classify?: (err: unknown) => SinkFailure;
  logger?: NatsLogger;
  /** Messages per fetch (default 500). */
  batchSize?: number;
  /** How long one fetch waits to fill its batch, ≥ 1000 ms (default 1000). This bounds ingestion latency. */
  maxWaitMs?: number;
  /** Redelivery delay of a batch failing alone, doubled per delivery up to 5 min (default 2000 ms). */
  nakDelayMs?: number;
  /** Deliveries after which a batch that still cannot be stored is set aside (default 10). */
  maxDeliveries?: number;
  /** Backoff of held retries and of binding again: initial and cap (default 500 ms → 30 s). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** The consumer's ack wait (default 30 s); messages in hand are kept in progress meanwhile. */
  ackWaitMs?: number;
  durableName?: string;
}

export interface LastDeadLetter {
  reason: string;
  at: Date;
  agentId: string;
  batchId: string;
}

export interface IngestionStats {
  /** Messages fetched, including redeliveries. */
  received: number;
  /** Messages acked after the sink stored them. */
  acked: number;
  /** Messages set aside because they failed decoding or validation. */
  poison: number;
  /** Messages set aside for any reason (poison, refused by the store, too many deliveries). */
  deadLettered: number;
  /** Sink calls that rejected. */
  sinkErrors: number;
  /** Retries of held batches while the store was unavailable. */
  heldRetries: number;
  /** Messages nak'ed for a later redelivery. */
  nakked: number;
  /** Acks that could not be sent (the message comes back after the ack wait). */
  ackErrors: number;
  /** Messages that were a redelivery. */
  redelivered: number;
  lastDeadLetter?: LastDeadLetter;
}

export interface Ingestion extends AsyncDisposable {
  /** Resolves once the consumer is bound (or, if that never happened, when ingestion ends). */
  readonly ready: Promise<void>;
  stats(): IngestionStats;
  /** Stops fetching, lets the batches in hand finish (stored and acked, or nak'ed). Idempotent. */
  stop(): Promise<void>;
}

interface Item {
  m: JsMsg;
  batch?: TelemetryBatch;
  error?: string;
}

interface Letter {
  item: Item;
  reason: string;
  /** Already recorded, with the good batches of its fetch (sinkWithDeadLetters). */
  record?: DeadLetter;
}

const maxNakDelayMs = 5 * 60_000;

export function startIngestion(options: IngestionOptions): Ingestion {
  const { nc, colonyId, sink } = options;
  const log = options.logger ?? silentLogger;
  const classify = options.classify ?? classifySinkError;
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? 500));
  const maxWaitMs = Math.max(1000, options.maxWaitMs ?? 1000);
  const nakDelayMs = options.nakDelayMs ?? 2000;
  const maxDeliveries = Math.max(1, Math.floor(options.maxDeliveries ?? 10));
  const retryInitialMs = options.retryInitialMs ?? 500;
  const retryMaxMs = options.retryMaxMs ?? 30_000;
  const ackWaitMs = options.ackWaitMs ?? 30_000;
  const durable = options.durableName ?? ingestDurableName;
  const stream = streamName(colonyId);

  const stats: IngestionStats = { received: 0, acked: 0, poison: 0, deadLettered: 0, sinkErrors: 0, heldRetries: 0, nakked: 0, ackErrors: 0, redelivered: 0 };
  const stopController = new AbortController();
  let stopped = false;
  let current: ConsumerMessages | undefined;
  let inFlight: Promise<void> = Promise.resolve();
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
    await ensureIngestConsumer(jsm, colonyId, {
      durableName: durable,
      ackWaitMs,
      maxAckPending: Math.max(1000, batchSize * 3),
      // A little above ours: the delivery past maxDeliveries still reaches us, to be set aside.
      maxDeliver: maxDeliveries + 3,
    });
    return jetstream(nc).consumers.get(stream, durable);
  }

  async function flushQuietly(): Promise<void> {
    if (!nc.isClosed()) await nc.flush().catch(() => {});
  }

  /** Waits out a backoff step; false when stopping cut it short. */
  async function pause(attempt: number): Promise<boolean> {
    if (stopped) return false;
    await sleep(backoffMs(attempt, retryInitialMs, retryMaxMs), stopController.signal);
    return !stopped;
  }

  function nak(items: Item[], delayMs: number): void {
    for (const { m } of items) m.nak(delayMs);
    stats.nakked += items.length;
  }

  /**
   * Acks without waiting for the server's confirmation (flushed after the
   * group): the store is free for the next group at once. An ack lost on the
   * way brings the batch back after the ack wait, and the store skips it (its
   * batch id is recorded), so it is still stored exactly once.
   */
  function ack(items: Item[]): void {
    for (const { m } of items) {
      try {
        m.ack();
        stats.acked++;
      } catch (err) {
        stats.ackErrors++;
        log.warn({ err: errorMessage(err), stream_seq: m.seq }, "Could not ack; the batch will be redelivered after the ack wait and skipped");
      }
    }
  }

  /** Reads a failure; an unknown one is a store outage when the probe fails too. */
  async function failureOf(err: unknown): Promise<SinkFailure> {
    const kind = classify(err);
    if (kind !== "unknown" || !options.probe) return kind;
    try {
      await options.probe();
      return "unknown";
    } catch {
      return "store-unavailable";
    }
  }

  /** Stores a group, isolating what fails; collects what must be set aside in `letters`. */
  async function storeGroup(group: Item[], letters: Letter[]): Promise<void> {
    for (let attempt = 0; group.length > 0; attempt++) {
      try {
        await sink(group.map((i) => i.batch!));
        ack(group);
        return;
      } catch (err) {
        stats.sinkErrors++;
        const kind = await failureOf(err);
        const reason = errorMessage(err);
        if (kind === "store-unavailable") {
          log.warn({ err: reason, batches: group.length, attempt }, "The store is unavailable; holding the batches and retrying");
          if (!(await pause(attempt))) {
            nak(group, 0); // back soon after the restart
            return;
          }
          stats.heldRetries++;
          continue;
        }
        if (group.length > 1) {
          // Find the batch at fault; the others are stored.
          log.warn({ err: reason, batches: group.length }, "Telemetry sink failed; storing the batches in smaller groups");
          const half = Math.ceil(group.length / 2);
          await storeGroup(group.slice(0, half), letters);
          await storeGroup(group.slice(half), letters);
          return;
        }
        const item = group[0]!;
        const deliveries = item.m.info.deliveryCount;
        if (kind === "batch-rejected") letters.push({ item, reason: `the store refused it: ${reason}` });
        else if (deliveries >= maxDeliveries) letters.push({ item, reason: `not stored after ${deliveries} deliveries: ${reason}` });
        else {
          const delay = Math.min(maxNakDelayMs, nakDelayMs * 2 ** (deliveries - 1));
          log.warn({ err: reason, batch_id: item.batch!.batchId, deliveries, redeliver_in_ms: delay }, "A telemetry batch failed alone; it will be redelivered");
          nak([item], delay);
        }
        return;
      }
    }
  }

  function toDeadLetter({ item, reason }: Letter, at: Date): DeadLetter {
    const { m } = item;
    return {
      key: deadLetterKey(m.seq, m.subject, m.data),
      at,
      agentId: agentOfSubject(m.subject),
      subject: m.subject,
      batchId: (item.batch?.batchId ?? m.headers?.get("Nats-Msg-Id") ?? "").slice(0, 256),
      reason: reason.slice(0, 2000),
      payload: m.data,
      streamSeq: m.seq,
      deliveries: m.info.deliveryCount,
    };
  }

  /** Records, republishes, terms and counts what was set aside. */
  async function setAside(letters: Letter[]): Promise<void> {
    if (letters.length === 0) return;
    const at = new Date();
    const records = letters.map((l) => l.record ?? toDeadLetter(l, at));
    const unrecorded = records.filter((_, i) => !letters[i]!.record);
    if (options.deadLetterSink && unrecorded.length > 0) {
      for (let attempt = 0; ; attempt++) {
        try {
          await options.deadLetterSink(unrecorded);
          break;
        } catch (err) {
          const kind = await failureOf(err);
          log.warn({ err: errorMessage(err), letters: records.length, attempt }, "Could not record set-aside telemetry; retrying");
          // A record that can never be written must not hold ingestion: the stream copy remains.
          if (kind !== "store-unavailable" && attempt >= 4) {
            log.error({ err: errorMessage(err), keys: records.map((r) => r.key) }, "Giving up recording set-aside telemetry; its copy is on the dead-letter subject");
            break;
          }
          if (!(await pause(attempt))) {
            nak(letters.map((l) => l.item), 0); // set aside after the restart
            return;
          }
        }
      }
    }
    for (const record of records) publishDeadLetter(nc, colonyId, record, log);
    for (const { item } of letters) item.m.term();
    stats.deadLettered += letters.length;
    const last = records.at(-1)!;
    stats.lastDeadLetter = { reason: last.reason, at, agentId: last.agentId, batchId: last.batchId };
    for (const r of records)
      log.warn({ subject: r.subject, agent_id: r.agentId, batch_id: r.batchId, stream_seq: r.streamSeq, deliveries: r.deliveries, reason: r.reason }, "Telemetry set aside (dead letter)");
  }

  /**
   * The fast path for a fetch holding both good batches and dead letters: one
   * transaction for both. Returns what is left to store (all of it when this
   * did not work out; storeGroup then handles it, and setAside the letters).
   */
  async function storeWithLetters(good: Item[], letters: Letter[]): Promise<Item[]> {
    if (!options.sinkWithDeadLetters || letters.length === 0 || good.length === 0) return good;
    const at = new Date();
    const records = letters.map((l) => toDeadLetter(l, at));
    try {
      await options.sinkWithDeadLetters(
        good.map((i) => i.batch!),
        records,
      );
    } catch (err) {
      stats.sinkErrors++;
      log.debug({ err: errorMessage(err) }, "Storing with the dead letters failed; storing them apart");
      return good;
    }
    letters.forEach((l, i) => (l.record = records[i]));
    ack(good);
    return [];
  }

  /** Decodes and validates one message as it arrives (on the main thread, while the previous group is being stored). */
  function prepare(m: JsMsg): Item {
    stats.received++;
    if (m.redelivered) stats.redelivered++;
    const decoded = decodeTelemetryMessage(colonyId, m.subject, m.data);
    return "error" in decoded ? { m, error: decoded.error } : { m, batch: decoded.batch };
  }

  async function processItems(items: Item[]): Promise<void> {
    const letters: Letter[] = [];
    const good: Item[] = [];
    for (const item of items) {
      if (item.error !== undefined) {
        stats.poison++;
        letters.push({ item, reason: item.error });
      } else if (item.m.info.deliveryCount > maxDeliveries)
        letters.push({ item, reason: `delivered ${item.m.info.deliveryCount} times without being stored` });
      else good.push(item);
    }
    // Slower than the ack wait (a held outage, a slow store): keep every message in hand alive.
    const keepAlive = setInterval(() => items.forEach(({ m }) => m.working()), Math.max(1000, Math.floor(ackWaitMs / 3)));
    try {
      const rest = await storeWithLetters(good, letters);
      await storeGroup(rest, letters);
      await setAside(letters);
    } catch (err) {
      // Not expected (the steps above handle their errors); never lose the messages over it.
      log.error({ err: errorMessage(err) }, "Ingestion step failed; the batches will be redelivered");
      nak(items, nakDelayMs);
    } finally {
      clearInterval(keepAlive);
      await flushQuietly();
    }
    log.debug({ batches: good.length, set_aside: letters.length }, "Processed telemetry");
  }

  async function fetchOnce(consumer: Consumer): Promise<Item[]> {
    const iter = await consumer.fetch({ max_messages: batchSize, expires: maxWaitMs });
    current = iter;
    if (stopped) void iter.close();
    const items: Item[] = [];
    try {
      for await (const m of iter) items.push(prepare(m));
    } catch (err) {
      // Handle what arrived before the error; then rebind.
      if (items.length > 0) await hand(items);
      throw err;
    } finally {
      current = undefined;
    }
    return items;
  }

  /** Hands decoded messages to the store once the previous group is done (one group in the store at a time). */
  async function hand(items: Item[]): Promise<void> {
    // Decoded messages waiting for the store are kept in progress too.
    const waiting = setInterval(() => items.forEach(({ m }) => m.working()), Math.max(1000, Math.floor(ackWaitMs / 3)));
    try {
      await inFlight;
    } finally {
      clearInterval(waiting);
    }
    inFlight = processItems(items);
  }

  async function run(): Promise<void> {
    let failures = 0;
    while (!stopped) {
      try {
        const consumer = await bind();
        markReady();
        log.info({ stream, durable }, "Ingestion consumer bound");
        while (!stopped) {
          const items = await fetchOnce(consumer);
          failures = 0;
          if (items.length > 0) await hand(items);
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
    await inFlight;
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
      await inFlight;
      await flushQuietly();
      log.info({ ...stats, lastDeadLetter: undefined }, "Ingestion stopped");
    })());

  return { ready, stats: () => ({ ...stats }), stop, [Symbol.asyncDispose]: stop };
}
