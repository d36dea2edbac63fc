import { describe, expect, it } from "vitest";
import { AnswerCache, type Answer } from "./answer-cache.ts";

function answer(body: string, expiresAtMs = 10_000, status = 200): Answer {
  return { status, headers: ["content-type", "application/json"], body: Buffer.from(body), expiresAtMs };
}

function cacheAt(clock: { now: number }, options: Partial<ConstructorParameters<typeof AnswerCache>[0]> = {}) {
  return new AnswerCache<string>({ maxEntries: 100, now: () => clock.now, ...options });
}

describe("AnswerCache", () => {
  it("serves a kept answer until the registration it shows expires", () => {
    const clock = { now: 0 };
    const cache = cacheAt(clock);
    expect(cache.fill(cache.begin("m"), "k", answer("a", 1_000), "request")).toBe(true);
    clock.now = 999;
    expect(cache.get("k")?.body.toString()).toBe("a");
    clock.now = 1_000;
    expect(cache.get("k")).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(cache.stats).toMatchObject({ hits: 1, misses: 1, fills: 1 });
  });

  it("keeps neither errors nor answers that have already expired", () => {
    const clock = { now: 5_000 };
    const cache = cacheAt(clock);
    expect(cache.fill(cache.begin("m"), "404", answer("{}", 10_000, 404), "request")).toBe(false);
    expect(cache.fill(cache.begin("m"), "old", answer("{}", 5_000), "request")).toBe(false);
    expect(cache.size).toBe(0);
  });

  it("drops a mesh's answers on registration, and the answer of a lookup that overlapped one", () => {
    const clock = { now: 0 };
    const cache = cacheAt(clock);
    cache.fill(cache.begin("m"), "k1", answer("old"), "request");
    cache.fill(cache.begin("other"), "k2", answer("other"), "request");
    const overlapping = cache.begin("m"); // read before the registration below
    cache.invalidate("m");
    expect(cache.get("k1")).toBeUndefined();
    expect(cache.get("k2")?.body.toString()).toBe("other");
    expect(cache.fill(overlapping, "k1", answer("old"), "request")).toBe(false);
    expect(cache.get("k1")).toBeUndefined();
    expect(cache.stats.staleFillsDropped).toBe(1);
    // A lookup that starts after the registration is kept.
    expect(cache.fill(cache.begin("m"), "k1", answer("new"), "request")).toBe(true);
    expect(cache.get("k1")?.body.toString()).toBe("new");
  });

  it("still drops an answer on registration when two lookups filled it one after the other", () => {
    const cache = cacheAt({ now: 0 });
    const first = cache.begin("m");
    const second = cache.begin("m");
    expect(cache.fill(first, "k", answer("a"), "request")).toBe(true);
    expect(cache.fill(second, "k", answer("a"), "request")).toBe(true);
    cache.invalidate("m");
    expect(cache.get("k")).toBeUndefined();
  });

  it("hands back the requests of the answers a registration dropped, newest first, for a refresh", () => {
    const cache = cacheAt({ now: 0 });
    cache.fill(cache.begin("m"), "colony", answer("c"), "lookup colony");
    cache.fill(cache.begin("m"), "agent-1", answer("a1"), "lookup agent-1");
    cache.fill(cache.begin("m"), "agent-2", answer("a2"), "lookup agent-2");
    expect(cache.invalidate("m", 2).map(({ key, request, answer }) => ({ key, request, body: answer.body.toString() }))).toEqual([
      { key: "agent-2", request: "lookup agent-2", body: "a2" },
      { key: "agent-1", request: "lookup agent-1", body: "a1" },
    ]);
    expect(cache.has("colony")).toBe(false);
    expect(cache.invalidate("m", 2)).toEqual([]);
  });

  it("lets a registration put back the answers it dropped only when no other registration of the mesh came in meanwhile", () => {
    const clock = { now: 0 };
    const cache = cacheAt(clock);
    cache.fill(cache.begin("m"), "colony", answer("old", 1_000), "lookup colony");
    const refresh = cache.registering("m");
    expect(cache.has("colony")).toBe(false);
    expect(refresh.dropped.map((d) => d.key)).toEqual(["colony"]);
    // A lookup that raced the registration is not kept, however it ends.
    const racing = cache.begin("m");
    expect(cache.registered(refresh)).toBe(true);
    expect(cache.registered(refresh)).toBe(false); // once
    expect(cache.restore("m", refresh.dropped[0]!, answer("new", 2_000))).toBe(true);
    expect(cache.fill(racing, "colony", answer("old", 1_000), "lookup colony")).toBe(false);
    clock.now = 1_500;
    expect(cache.get("colony")?.body.toString()).toBe("new");
    expect(cache.stats.restored).toBe(1);

    // Two registrations of the mesh overlap: neither may put back what it dropped.
    const first = cache.registering("m");
    const second = cache.registering("m");
    expect(first.dropped).toHaveLength(1);
    expect(second.dropped).toHaveLength(0);
    expect(cache.registered(second)).toBe(false);
    expect(cache.registered(first)).toBe(false);
    // Nor one during which an unreadable registration (any mesh) came in.
    cache.fill(cache.begin("m"), "colony", answer("c", 9_000), "lookup colony");
    const third = cache.registering("m");
    cache.invalidateAll();
    expect(cache.registered(third)).toBe(false);
    // The mesh's state goes once nothing is kept or on its way.
    expect(cache.invalidate("m")).toEqual([]);
  });

  it("keeps a body in a buffer of its own, not the pool slab it was cut from", () => {
    const cache = cacheAt({ now: 0 });
    const slice = Buffer.from("a small answer"); // from Buffer's shared 8 KiB pool
    expect(slice.buffer.byteLength).toBeGreaterThan(slice.byteLength);
    cache.fill(cache.begin("m"), "k", { ...answer(""), body: slice }, "request");
    const kept = cache.get("k")!.body;
    expect(kept.toString()).toBe("a small answer");
    expect(kept.buffer.byteLength).toBe(kept.byteLength);
  });

  it("holds as many answers as entries by default, whatever their number", () => {
    const cache = new AnswerCache<string>({ maxEntries: 200_000, now: () => 0 });
    const body = "x".repeat(600);
    for (let i = 0; i < 200_000; i++) cache.fill(cache.begin(`m${i}`), `key-${i}`, answer(body), "r");
    expect(cache.size).toBe(200_000);
    expect(cache.stats.evictions).toBe(0);
  });

  it("lets misses share a lookup on its way until it settles or the mesh registers", async () => {
    const cache = cacheAt({ now: 0 });
    const first = cache.begin("m");
    const answered = Promise.resolve(answer("a"));
    cache.share(first, "k", answered);
    expect(cache.pending("m", "k")).toBe(answered);
    expect(cache.pending("m", "other")).toBeUndefined();
    cache.fill(first, "k", await answered, "request");
    expect(cache.pending("m", "k")).toBeUndefined(); // settled: the kept answer serves now

    const second = cache.begin("m");
    cache.share(second, "k2", Promise.resolve(answer("b")));
    cache.invalidate("m");
    expect(cache.pending("m", "k2")).toBeUndefined(); // read before the registration: not shared after it
    cache.share(second, "k2", Promise.resolve(answer("b")));
    expect(cache.pending("m", "k2")).toBeUndefined(); // nor shared again
    expect(cache.stats.shared).toBe(1);
  });

  it("drops everything when a registration's mesh is unknown", () => {
    const cache = cacheAt({ now: 0 });
    cache.fill(cache.begin("a"), "ka", answer("a"), "request");
    const inFlight = cache.begin("b");
    cache.invalidateAll();
    expect(cache.get("ka")).toBeUndefined();
    expect(cache.fill(inFlight, "kb", answer("b"), "request")).toBe(false);
  });

  it("settles a ticket once, and forgets meshes with nothing kept or in flight", () => {
    const cache = cacheAt({ now: 0 });
    const ticket = cache.begin("m");
    cache.abandon(ticket);
    expect(cache.fill(ticket, "k", answer("a"), "request")).toBe(false);
    cache.invalidate("m"); // no state left: nothing to do
    expect(cache.fill(cache.begin("m"), "k", answer("a"), "request")).toBe(true);
  });

  it("evicts the least recently used answer when full, by entries and by bytes", () => {
    const cache = cacheAt({ now: 0 }, { maxEntries: 3 });
    for (const k of ["a", "b", "c"]) cache.fill(cache.begin(k), k, answer(k), "request");
    cache.get("a"); // now b is the least recently used
    cache.fill(cache.begin("d"), "d", answer("d"), "request");
    expect(cache.get("b")).toBeUndefined();
    expect(["a", "c", "d"].map((k) => cache.get(k)?.body.toString())).toEqual(["a", "c", "d"]);
    expect(cache.stats.evictions).toBe(1);

    const small = cacheAt({ now: 0 }, { maxEntries: 100, maxBytes: 16 * 2_000 });
    const big = "x".repeat(1_500);
    for (let i = 0; i < 40; i++) small.fill(small.begin(`m${i}`), `k${i}`, answer(big), "request");
    expect(small.size).toBeLessThan(40);
    expect(small.get("k39")?.body.byteLength).toBe(1_500);
    expect(small.get("k0")).toBeUndefined();
  });

  it("keeps at most maxEntriesPerMesh spellings per mesh", () => {
    const cache = cacheAt({ now: 0 }, { maxEntriesPerMesh: 2 });
    expect(cache.fill(cache.begin("m"), "k1", answer("1"), "request")).toBe(true);
    expect(cache.fill(cache.begin("m"), "k2", answer("2"), "request")).toBe(true);
    expect(cache.fill(cache.begin("m"), "k3", answer("3"), "request")).toBe(false);
    expect(cache.fill(cache.begin("m"), "k1", answer("1b"), "request")).toBe(true); // replacing one is fine
    expect(cache.get("k1")?.body.toString()).toBe("1b");
    expect(cache.fill(cache.begin("n"), "k4", answer("4"), "request")).toBe(true);
  });
});
