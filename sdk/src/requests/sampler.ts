/**
 * Which requests become traffic samples: an exact share, deterministic (in
 * millionths, so 0.1 samples exactly every tenth request), plus every 5xx
 * whatever the share.
 */
const scale = 1_000_000;

export function checkSampleRate(rate: number, what = "sampleRate"): number {
  if (typeof rate !== "number" || !Number.isFinite(rate) || rate < 0 || rate > 1)
    throw new RangeError(`${what}: must be a number from 0 to 1 (0.1 samples 10 % of requests), got ${String(rate)}`);
  return rate;
}

export class Sampler {
  #perMillion: number;
  #acc = 0;

  constructor(rate: number) {
    this.#perMillion = Math.round(checkSampleRate(rate) * scale);
  }

  get rate(): number {
    return this.#perMillion / scale;
  }

  set rate(rate: number) {
    this.#perMillion = Math.round(checkSampleRate(rate) * scale);
  }

  /** Whether the next request is in the share. */
  next(): boolean {
    if (this.#perMillion === 0) return false;
    this.#acc += this.#perMillion;
    if (this.#acc < scale) return false;
    this.#acc -= scale;
    return true;
  }
}

/** Kept whatever the share: server errors. */
export function alwaysKept(status: number): boolean {
  return status >= 500;
}
