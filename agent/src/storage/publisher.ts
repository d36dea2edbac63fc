// Publisher: drains the outbox to the colony. One loop takes pending rows in
// seq order and hands each to `publish` (in the agent: a JetStream publish with
// header Nats-Msg-Id = batchId, awaiting the stream's ack). Success deletes the
// row (ack); failure records the attempt (fail) and the loop backs off until
// that row is due again. Delivery is at-least-once (a crash between the
// JetStream ack and our ack republishes the batch; the colony dedupes by
// batch id) and in order: a row is never published before an earlier one, so
// while the head of the outbox is backing off, nothing behind it is sent.
//
// Nothing blocks the head for good: a row bigger than the server's max payload
// is split into parts that fit (split.ts); an item that fits in no message, or
// a row that is not a batch at all, is dropped and counted. The outbox itself
// is bounded by bytes and age (trimmed every few seconds, oldest first); every
// drop is counted, logged and handed to onDrop (the agent turns it into an
// "outbox.dropped" event, published once NATS is back).
import { sleep } from "@coral/common/async";
import { splitBatch } from "./split.ts";
import { AgentStoreClosedError } from "./store.ts";
import type { AgentStore, OutboxBounds, OutboxEntry, StorageLogger } from "./types.ts";

/** Sends one batch; resolves once the broker has acknowledged it. */
export type PublishFn = (subject: string, payload: Uint8Array, msgId: string) => Promise<void>;

/** What was dropped, and why: "size" and "age" (the outbox's bounds), "too-large" (items fitting no message), "undecodable". */
export interface OutboxDrop {
  reason: "size" | "age" | "too-large" | "undecodable";
  rows: number;
  bytes: number;
  /** Metric summaries, events or connections dropped from a batch that was otherwise sent. */
  items: number;
  batchIds: string[];
}

export interface DropCounters {
  rows: number;
  bytes: number;
  items: number;
}

export interface PublisherOptions {
  store: Pick<AgentStore, "peek" | "ack" | "fail"> & Partial<Pick<AgentStore, "trimOutbox">>;
  publish: PublishFn;
  logger?: StorageLogger;
  /** Rows read from the outbox per pass (default 100). */
  batchSize?: number;
  /** How often an idle publisher looks at the outbox without being notified (default 5 s). */
  pollMs?: number;
  /** Clock (default: the system clock). */
  now?: () => Date;
  /** The server's largest message (NATS `info.max_payload`), once known; bigger rows are split. */
  maxPayload?: () => number | undefined;
  /** Bytes kept free in each message for headers (default 4096). */
  headroomBytes?: number;
  /** The outbox's bounds (default 64 MiB, 24 h); needs the store's trimOutbox. */
  outboxBounds?: Partial<OutboxBounds>;
  /** How often the bounds are enforced (default 5 s). */
  trimIntervalMs?: number;
  /** Told about every drop (after it was counted and logged). */
  onDrop?: (drop: OutboxDrop) => void;
}

const sizeError = /MAX_PAYLOAD|max(imum)?[ _]payload|message size|payload.*(too large|exceed)/i;

export class Publisher implements AsyncDisposable {
  readonly #store: PublisherOptions["store"];
  readonly #publish: PublishFn;
  readonly #logger: StorageLogger | undefined;
  readonly #batchSize: number;
  readonly #pollMs: number;
  readonly #now: () => Date;
  readonly #maxPayload: () => number | undefined;
  readonly #headroom: number;
  readonly #bounds: Partial<OutboxBounds> | undefined;
  readonly #trimIntervalMs: number;
  readonly #onDrop: ((drop: OutboxDrop) => void) | undefined;
  readonly #dropped: DropCounters = { rows: 0, bytes: 0, items: 0 };
  #lastTrim = Number.NEGATIVE_INFINITY;
  /** Lowered when the server refuses a message as too big despite max_payload. */
  #sizeCap = Number.POSITIVE_INFINITY;
  #loop: Promise<void> | undefined;
  #stopping = false;
  /** Set by notify() while a pass runs, so the wake-up is not lost. */
  #notified = false;
  #wake: (() => void) | undefined;

  constructor(options: PublisherOptions) {
    this.#store = options.store;
    this.#publish = options.publish;
    this.#logger = options.logger;
    this.#batchSize = positive(options.batchSize ?? 100, "batchSize");
    this.#pollMs = positive(options.pollMs ?? 5_000, "pollMs");
    this.#now = options.now ?? (() => new Date());
    this.#maxPayload = options.maxPayload ?? (() => undefined);
    this.#headroom = options.headroomBytes ?? 4096;
    this.#bounds = options.outboxBounds;
    this.#trimIntervalMs = options.trimIntervalMs ?? 5_000;
    this.#onDrop = options.onDrop;
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.#loop !== undefined && !this.#stopping;
  }

  /** What was dropped since this publisher started. */
  dropped(): DropCounters {
    return { ...this.#dropped };
  }

  /** Starts the loop (idempotent). A stopped publisher cannot be restarted; make a new one. */
  start(): void {
    if (this.#stopping) throw new Error("the publisher has been stopped; create a new one");
    this.#loop ??= this.#run();
  }

  /** Call after an enqueue: an idle loop looks at the outbox now instead of at its next poll. */
  notify(): void {
    if (this.#wake) this.#wake();
    else this.#notified = true;
  }

  /** Stops the loop; resolves once an in-flight publish has finished and its outcome is recorded. Idempotent. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wake?.();
    await this.#loop;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      let waitMs: number;
      try {
        waitMs = await this.#pass();
      } catch (err) {
        if (err instanceof AgentStoreClosedError) {
          this.#log("warn", "outbox publisher stopped: the store is closed", {});
          this.#stopping = true;
          break;
        }
        this.#log("error", "outbox publisher pass failed", { err: (err as Error).message });
        waitMs = this.#pollMs;
      }
      if (waitMs > 0 && !this.#stopping) await this.#sleep(waitMs);
    }
  }

  /** Enforces the outbox's bounds at most every trimIntervalMs. */
  async #trim(): Promise<void> {
    if (!this.#store.trimOutbox) return;
    const now = this.#now();
    if (now.getTime() - this.#lastTrim < this.#trimIntervalMs) return;
    this.#lastTrim = now.getTime();
    const trimmed = await this.#store.trimOutbox(now, this.#bounds);
    if (trimmed.rows === 0) return;
    this.#drop({ reason: trimmed.bySize > 0 ? "size" : "age", rows: trimmed.rows, bytes: trimmed.bytes, items: 0, batchIds: trimmed.batchIds }, "outbox over its bounds: dropped the oldest batches", {
      bySize: trimmed.bySize,
      byAge: trimmed.byAge,
      oldest: trimmed.oldest?.toISOString(),
    });
  }

  #drop(drop: OutboxDrop, msg: string, extra: Record<string, unknown> = {}): void {
    this.#dropped.rows += drop.rows;
    this.#dropped.bytes += drop.bytes;
    this.#dropped.items += drop.items;
    this.#log("warn", msg, { ...drop, ...extra, droppedSoFar: { ...this.#dropped } });
    try {
      this.#onDrop?.(drop);
    } catch {
      // a broken callback must not stop the publisher
    }
  }

  /** The largest payload one message may carry now, or undefined before the server is known. */
  #limit(): number | undefined {
    const max = this.#maxPayload();
    if (max === undefined || !(max > 0)) return Number.isFinite(this.#sizeCap) ? this.#sizeCap : undefined;
    return Math.max(1024, Math.min(max - this.#headroom, this.#sizeCap));
  }

  /** Publishes one row, split when it does not fit; false when nothing could be sent and the row was dropped. */
  async #send(row: OutboxEntry): Promise<void> {
    const limit = this.#limit();
    if (limit === undefined || row.payload.length <= limit) {
      await this.#publish(row.subject, row.payload, row.batchId);
      return;
    }
    const split = splitBatch(row.batchId, row.payload, limit);
    if (split.error !== undefined) {
      this.#drop({ reason: "undecodable", rows: 1, bytes: row.payload.length, items: 0, batchIds: [row.batchId] }, "outbox row cannot be sent: dropped it", { err: split.error });
      return;
    }
    for (const part of split.parts) await this.#publish(row.subject, part.payload, part.batchId);
    this.#log("info", "outbox row over the message size: sent in parts", { batchId: row.batchId, bytes: row.payload.length, parts: split.parts.length, limit });
    if (split.droppedItems > 0)
      this.#drop({ reason: "too-large", rows: 0, bytes: 0, items: split.droppedItems, batchIds: [row.batchId] }, "items too big for any message: dropped them");
  }

  /** One pass over the head of the outbox; returns how long to wait before the next (0: go on now). */
  async #pass(): Promise<number> {
    this.#notified = false;
    await this.#trim();
    const rows = await this.#store.peek(this.#batchSize);
    for (const row of rows) {
      if (this.#stopping) return 0;
      const now = this.#now();
      const wait = row.nextAttemptAt.getTime() - now.getTime();
      // Head of line: the oldest pending row is backing off; nothing behind it may overtake it.
      if (wait > 0) return wait;
      try {
        await this.#send(row);
      } catch (err) {
        // Refused as too big although it fitted max_payload (headers, a smaller stream cap): split smaller next time.
        if (sizeError.test(err instanceof Error ? err.message : String(err)))
          this.#sizeCap = Math.max(16 * 1024, Math.floor(Math.min(this.#limit() ?? row.payload.length, row.payload.length) / 2));
        const retry = await this.#store.fail(row.batchId, err, this.#now());
        const retryInMs = retry ? Math.max(0, retry.nextAttemptAt.getTime() - this.#now().getTime()) : 0;
        this.#log("warn", "publish failed; will retry", {
          batchId: row.batchId,
          subject: row.subject,
          attempts: retry?.attempts,
          retryInMs,
          err: err instanceof Error ? err.message : String(err),
        });
        return retryInMs;
      }
      // If this ack fails the row stays and is published again later: at-least-once.
      await this.#store.ack(row.batchId);
    }
    // A full page means more rows may be waiting; otherwise idle until notified or polled.
    return rows.length === this.#batchSize ? 0 : this.#pollMs;
  }

  /** The idle wait: notify() or stop() cuts it short; it does not keep the process alive. */
  async #sleep(ms: number): Promise<void> {
    if (this.#notified) {
      this.#notified = false;
      return;
    }
    const wake = new AbortController();
    const done = (): void => {
      if (this.#wake === done) this.#wake = undefined;
      wake.abort();
    };
    this.#wake = done;
    await sleep(ms, wake.signal, { unref: true });
    if (this.#wake === done) this.#wake = undefined;
  }

  #log(level: "info" | "warn" | "error", msg: string, fields: Record<string, unknown>): void {
    try {
      this.#logger?.(level, msg, fields);
    } catch {
      // a broken logger must not stop the publisher
    }
  }
}

function positive(n: number, what: string): number {
  if (typeof n !== "number" || !Number.isFinite(n) || n <= 0) {
    throw new RangeError(`${what} must be a positive number, got ${String(n)}`);
  }
  return n;
}
