/**
 * Latency buckets about 2 % wide (log scale), sparse: a series keeps only the
 * buckets its requests fell in, so memory per series is bounded (at most a
 * few hundred buckets between 1 µs and 1 h) whatever the request rate.
 */
const base = 1.02;
const logBase = Math.log(base);
const minMs = 0.001;
const maxMs = 3_600_000;

/** The bucket of a latency (ms); out-of-range values go to the first or last. */
export function bucketIndex(ms: number): number {
  const v = Number.isFinite(ms) ? Math.min(Math.max(ms, minMs), maxMs) : maxMs;
  return Math.ceil(Math.log(v) / logBase);
}

/** A bucket's representative latency: its geometric middle. */
export function bucketValue(index: number): number {
  return Math.exp((index - 0.5) * logBase);
}

export class LatencyHistogram {
  readonly #counts = new Map<number, number>();
  count = 0;
  sumMs = 0;

  add(ms: number): void {
    const i = bucketIndex(ms);
    this.#counts.set(i, (this.#counts.get(i) ?? 0) + 1);
    this.count++;
    this.sumMs += ms;
  }

  /** The buckets in latency order, as (representative ms, count). */
  buckets(): { ms: number; count: number }[] {
    return [...this.#counts].sort((a, b) => a[0] - b[0]).map(([i, count]) => ({ ms: bucketValue(i), count }));
  }
}
