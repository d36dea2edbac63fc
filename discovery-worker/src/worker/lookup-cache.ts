// A short per-isolate cache of lookup answers, so a hot mesh is not a Durable
// Object round trip on every lookup. Entries live at most `ttlMs` (1 s by
// default) and never past the registration's own expiry, so an expired colony
// is still never returned; a re-registration elsewhere shows up within ttlMs.
// Misses are not cached: a new registration is visible at once.
// `generation` guards against a lookup that read the Durable Object before a
// registration and fills the cache after that registration's delete: such a
// fill is dropped. This makes a long ttl safe where one isolate sees every
// registration (self-hosted, see server.ts).
export class LookupCache<V extends { expiresAtMs: number }> {
  private readonly entries = new Map<string, { value: V; cachedUntilMs: number }>();
  private deletes = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries = 50_000,
  ) {}

  get(key: string, now = Date.now()): V | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.cachedUntilMs <= now || entry.value.expiresAtMs <= now) {
      this.entries.delete(key);
      return undefined;
    }
    return entry.value;
  }

  /** Pass to set(): a value read before a later delete() is not cached. */
  get generation(): number {
    return this.deletes;
  }

  set(key: string, value: V, now = Date.now(), readAtGeneration = this.deletes): void {
    if (this.ttlMs <= 0 || readAtGeneration !== this.deletes) return;
    if (this.entries.size >= this.maxEntries) {
      // Drop the oldest insertions; Map keeps insertion order.
      for (const k of this.entries.keys()) {
        this.entries.delete(k);
        if (this.entries.size < this.maxEntries * 0.9) break;
      }
    }
    this.entries.set(key, { value, cachedUntilMs: Math.min(now + this.ttlMs, value.expiresAtMs) });
  }

  /**
   * Caches a registration's own answer, unless the cached one is newer
   * (answers of two registrations can come back out of order). Like delete(),
   * it drops the fills of lookups still in flight.
   */
  put(key: string, value: V, isNewer: (cached: V) => boolean, now = Date.now()): void {
    const current = this.get(key, now);
    this.deletes++;
    if (current && isNewer(current)) return;
    this.entries.delete(key);
    this.set(key, value, now);
  }

  delete(key: string): void {
    this.deletes++;
    this.entries.delete(key);
  }
}
