/**
 * The samples waiting for the agent: bounded by count and bytes; when full,
 * the oldest go first (and are counted), so an app whose agent is gone keeps
 * serving with bounded memory.
 */
export interface QueueBounds {
  maxSamples: number;
  maxBytes: number;
}

export const defaultQueueBounds: QueueBounds = { maxSamples: 1000, maxBytes: 8 * 1024 * 1024 };

export class BoundedQueue<T> {
  #items: { item: T; bytes: number }[] = [];
  #head = 0;
  #bytes = 0;
  #dropped = 0;

  constructor(readonly bounds: QueueBounds = defaultQueueBounds) {
    for (const [k, v] of Object.entries(bounds))
      if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`queue ${k}: must be a positive integer, got ${String(v)}`);
  }

  get length(): number {
    return this.#items.length - this.#head;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** Dropped since the last takeDropped(). */
  get dropped(): number {
    return this.#dropped;
  }

  push(item: T, bytes: number): void {
    this.#items.push({ item, bytes });
    this.#bytes += bytes;
    while (this.length > this.bounds.maxSamples || (this.#bytes > this.bounds.maxBytes && this.length > 0)) {
      this.#bytes -= this.#items[this.#head]!.bytes;
      this.#head++;
      this.#dropped++;
    }
    this.#compact();
  }

  /** Up to `max` items, oldest first, removed from the queue. */
  take(max: number): T[] {
    const end = Math.min(this.#items.length, this.#head + Math.max(0, max));
    const out = this.#items.slice(this.#head, end);
    for (const e of out) this.#bytes -= e.bytes;
    this.#head = end;
    this.#compact();
    return out.map((e) => e.item);
  }

  takeDropped(): number {
    const n = this.#dropped;
    this.#dropped = 0;
    return n;
  }

  #compact(): void {
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
  }
}
