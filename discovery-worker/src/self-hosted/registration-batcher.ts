// Registrations that arrive together for one shard go to its worker as one
// request (../worker/registration-batch-wire.ts), which stores them with one
// call per mesh object: per registration, workerd's HTTP handling and the
// object call were most of a refresh's worker CPU besides its signature
// check (bench/BENCHMARKS.md, issue 26). A registration waits only while
// another batch to its shard is on its way: with none, it goes at once
// (alone on an idle server, it never waits). Else it goes with the next
// batch, sent when maxItems wait, windowMs have passed, or the shard has
// answered every batch sent before.
import type { BatchAnswerHead, BatchPart, BatchRequestHead } from "../worker/registration-batch-wire.ts";

export type SendBatch = (parts: Array<BatchPart<BatchRequestHead>>) => Promise<Array<BatchPart<BatchAnswerHead>>>;

export interface BatcherOptions {
  maxItems: number;
  windowMs: number;
}

interface Waiting {
  part: BatchPart<BatchRequestHead>;
  answer(part: BatchPart<BatchAnswerHead>): void;
  fail(err: unknown): void;
}

export interface BatcherStats {
  /** Batches sent to the worker. */
  batches: number;
  /** Registrations they carried. */
  registrations: number;
}

export class RegistrationBatcher {
  readonly stats: BatcherStats = { batches: 0, registrations: 0 };
  private queue: Waiting[] = [];
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly send: SendBatch,
    private readonly options: BatcherOptions,
  ) {}

  /** The worker's answer to this registration, as it answers it alone; rejects when the shard did not answer. */
  submit(part: BatchPart<BatchRequestHead>): Promise<BatchPart<BatchAnswerHead>> {
    return new Promise((answer, fail) => {
      this.queue.push({ part, answer, fail });
      if (this.inFlight === 0 || this.queue.length >= this.options.maxItems) this.flush();
      else this.timer ??= setTimeout(() => this.flush(), this.options.windowMs).unref();
    });
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxItems);
      this.inFlight++;
      this.stats.batches++;
      this.stats.registrations += batch.length;
      this.send(batch.map((w) => w.part))
        .then((answers) => {
          if (answers.length !== batch.length) throw new Error(`the worker answered ${answers.length} of ${batch.length} registrations`);
          batch.forEach((w, i) => w.answer(answers[i]!));
        })
        .catch((err: unknown) => batch.forEach((w) => w.fail(err)))
        .finally(() => {
          // The shard is idle: what waits need not wait for the window.
          if (--this.inFlight === 0 && this.queue.length > 0) this.flush();
        });
    }
  }
}
