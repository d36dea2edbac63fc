import { describe, expect, it } from "vitest";
import { LookupCache } from "./lookup-cache.ts";

describe("LookupCache", () => {
  it("serves an entry for its ttl, never past the registration's expiry", () => {
    const cache = new LookupCache<{ expiresAtMs: number; v: string }>(1000);
    cache.set("a", { expiresAtMs: 10_000, v: "x" }, 0);
    expect(cache.get("a", 999)?.v).toBe("x");
    expect(cache.get("a", 1000)).toBeUndefined();
    cache.set("b", { expiresAtMs: 500, v: "y" }, 0);
    expect(cache.get("b", 499)?.v).toBe("y");
    expect(cache.get("b", 500)).toBeUndefined();
  });

  it("does nothing with a zero ttl and evicts the oldest when full", () => {
    const off = new LookupCache<{ expiresAtMs: number }>(0);
    off.set("a", { expiresAtMs: 10 }, 0);
    expect(off.get("a", 1)).toBeUndefined();
    const small = new LookupCache<{ expiresAtMs: number }>(1000, 10);
    for (let i = 0; i < 11; i++) small.set(`k${i}`, { expiresAtMs: 10_000 }, 0);
    expect(small.get("k0", 1)).toBeUndefined();
    expect(small.get("k10", 1)).toBeDefined();
  });

  it("drops a fill read before a later delete, so a long ttl never serves a replaced registration", () => {
    const cache = new LookupCache<{ expiresAtMs: number; v: string }>(300_000);
    const readAt = cache.generation;
    cache.delete("a"); // a registration landed while the lookup was reading
    cache.set("a", { expiresAtMs: 10_000, v: "old" }, 0, readAt);
    expect(cache.get("a", 1)).toBeUndefined();
    cache.set("a", { expiresAtMs: 10_000, v: "new" }, 0, cache.generation);
    expect(cache.get("a", 1)?.v).toBe("new");
  });

  it("caches a registration's answer unless a newer one is cached, and drops lookups in flight", () => {
    const cache = new LookupCache<{ expiresAtMs: number; signedAt: number }>(300_000);
    const newer = (incoming: { signedAt: number }) => (cached: { signedAt: number }) => cached.signedAt > incoming.signedAt;
    const readAt = cache.generation;
    cache.put("a", { expiresAtMs: 10_000, signedAt: 2 }, newer({ signedAt: 2 }), 0);
    cache.put("a", { expiresAtMs: 10_000, signedAt: 1 }, newer({ signedAt: 1 }), 0); // an older answer arriving late
    expect(cache.get("a", 1)?.signedAt).toBe(2);
    cache.set("a", { expiresAtMs: 10_000, signedAt: 0 }, 1, readAt); // a lookup that read before both
    expect(cache.get("a", 1)?.signedAt).toBe(2);
  });
});
