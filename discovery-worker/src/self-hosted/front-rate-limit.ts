// The registration rate limit of self-hosted discovery, per client address.
// It lives in the front rather than in a shard's RateLimiter object: one
// client registering meshes that hash to different shards must still share
// one budget. Same token bucket and message as the worker's RateLimiter.
export interface RateDecision {
  allowed: boolean;
  retryAfterSeconds: number;
}

interface Bucket {
  tokens: number;
  updatedAtMs: number;
}

export class FrontRateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly perMinute: number,
    private readonly maxClients = 100_000,
  ) {}

  take(client: string, now = Date.now()): RateDecision {
    if (this.perMinute === 0) return { allowed: true, retryAfterSeconds: 0 };
    const bucket = this.refilled(client, now);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { allowed: true, retryAfterSeconds: 0 };
    }
    return { allowed: false, retryAfterSeconds: Math.ceil(((1 - bucket.tokens) * 60) / this.perMinute) };
  }

  /** Gives a token back: the worker refused the request as invalid, as it does before counting it. */
  refund(client: string): void {
    const bucket = this.buckets.get(client);
    if (bucket) bucket.tokens = Math.min(this.perMinute, bucket.tokens + 1);
  }

  message(client: string, decision: RateDecision): string {
    return `too many registrations from ${client}: the limit is ${this.perMinute} per minute; retry in ${decision.retryAfterSeconds}s`;
  }

  private refilled(client: string, now: number): Bucket {
    let bucket = this.buckets.get(client);
    if (!bucket) {
      if (this.buckets.size >= this.maxClients) this.forgetFullBuckets(now);
      bucket = { tokens: this.perMinute, updatedAtMs: now };
      this.buckets.set(client, bucket);
    }
    bucket.tokens = Math.min(this.perMinute, bucket.tokens + ((now - bucket.updatedAtMs) / 60_000) * this.perMinute);
    bucket.updatedAtMs = now;
    return bucket;
  }

  /** A full bucket is the same as no bucket, so dropping those loses nothing. */
  private forgetFullBuckets(now: number): void {
    for (const [client, bucket] of this.buckets)
      if (bucket.tokens + ((now - bucket.updatedAtMs) / 60_000) * this.perMinute >= this.perMinute) this.buckets.delete(client);
    // Still full of active clients: drop the oldest rather than grow without bound.
    for (const client of this.buckets.keys()) {
      if (this.buckets.size < this.maxClients) break;
      this.buckets.delete(client);
    }
  }
}
