// Publisher: drains the outbox to the colony. One loop takes pending rows in
// seq order and hands each to `publish` (in the agent: a JetStream publish with
// header Nats-Msg-Id = batchId, awaiting the stream's ack). Success deletes the
// row (ack); failure records the attempt (fail) and the loop backs off until
// that row is due again. Delivery is at-least-once (a crash between the
// JetStream ack and our ack republishes the batch; the colony dedupes by
// batch id) and in order: a row is never published before an earlier one, so
// while the head of the outbox is backing off, nothing behind it is sent.
import { sleep } from "@coral/common/async";
import { AgentStoreClosedError } from "./store.ts";
import type { AgentStore, StorageLogger } from "./types.ts";

/** Sends one batch; resolves once the broker has acknowledged it. */
export type PublishFn = (subject: string, payload: Uint8Array, msgId: string) => Promise<void>;

export interface PublisherOptions {
  store: Pick<AgentStore, "peek" | "ack" | "fail">;
  publish: PublishFn;
  logger?: StorageLogger;
  /** Rows read from the outbox per pass (default 100). */
  batchSize?: number;
  /** How often an idle publisher looks at the outbox without being notified (default 5 s). */
  pollMs?: number;
  /** Clock (default: the system clock). */
  now?: () => Date;
}

export class Publisher implements AsyncDisposable {
  readonly #store: PublisherOptions["store"];
  readonly #publish: PublishFn;
  readonly #logger: StorageLogger | undefined;
  readonly #batchSize: number;
  readonly #pollMs: number;
  readonly #now: () => Date;
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
  }

  /** True between start() and stop(). */
  get running(): boolean {
    return this.#loop !== undefined && !this.#stopping;
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

  /** One pass over the head of the outbox; returns how long to wait before the next (0: go on now). */
  async #pass(): Promise<number> {
    this.#notified = false;
    const rows = await this.#store.peek(this.#batchSize);
    for (const row of rows) {
      if (this.#stopping) return 0;
      const now = this.#now();
      const wait = row.nextAttemptAt.getTime() - now.getTime();
      // Head of line: the oldest pending row is backing off; nothing behind it may overtake it.
      if (wait > 0) return wait;
      try {
        await this.#publish(row.subject, row.payload, row.batchId);
      } catch (err) {
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
