// Remembers the nonces of colony calls while their signatures could still be
// accepted, so each signature works once. Only verified signatures are
// recorded (strangers cannot fill it), and memory is bounded: entries leave
// when their time window closes, and a full ledger refuses new calls rather
// than forget a nonce that could be replayed.
export type NonceVerdict = "fresh" | "replayed" | "full";

export class NonceLedger {
  /** nonce → when its signature stops being accepted (ms). */
  private readonly until = new Map<string, number>();
  private nextSweepMs = 0;

  constructor(
    private readonly windowMs: number,
    private readonly maxEntries = 100_000,
  ) {}

  /** Records `nonce` (signed at `timestampMs`) unless it was seen. */
  use(nonce: string, timestampMs: number, nowMs: number): NonceVerdict {
    if (this.until.has(nonce)) return "replayed";
    if (nowMs >= this.nextSweepMs || this.until.size >= this.maxEntries) this.sweep(nowMs);
    if (this.until.size >= this.maxEntries) return "full";
    this.until.set(nonce, timestampMs + this.windowMs);
    return "fresh";
  }

  get size(): number {
    return this.until.size;
  }

  private sweep(nowMs: number): void {
    for (const [nonce, until] of this.until) if (until < nowMs) this.until.delete(nonce);
    this.nextSweepMs = nowMs + 10_000;
  }
}
