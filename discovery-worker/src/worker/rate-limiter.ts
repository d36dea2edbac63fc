// One object per client address: a token bucket refilled continuously.
// In memory only; an evicted object starts with a full bucket, which errs on
// the side of letting a legitimate colony through.
import { DurableObject } from "cloudflare:workers";

export interface RateDecision {
  allowed: boolean;
  retryAfterSeconds: number;
}

export class RateLimiter extends DurableObject<DiscoveryEnv> {
  private tokens = -1;
  private updatedAtMs = 0;

  take(perMinute: number): RateDecision {
    const now = Date.now();
    const capacity = perMinute;
    if (this.tokens < 0) this.tokens = capacity;
    this.tokens = Math.min(capacity, this.tokens + ((now - this.updatedAtMs) / 60_000) * perMinute);
    this.updatedAtMs = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return { allowed: true, retryAfterSeconds: 0 };
    }
    return { allowed: false, retryAfterSeconds: Math.ceil(((1 - this.tokens) * 60) / perMinute) };
  }
}
