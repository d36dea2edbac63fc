import { describe, expect, it } from "vitest";
import { backoffDelay, defaultBackoff } from "./index.ts";
import { at, tempStores } from "./testing.ts";

const bytes = (...b: number[]): Uint8Array => new Uint8Array(b);
const subject = "coral.shop-dev.telemetry.agent-1";

describe("backoffDelay", () => {
  it.each([
    // attempts, random, delay: ceiling = min(60 s, 1 s * 2^(attempts-1)), delay in [ceiling/2, ceiling]
    [1, 0, 500],
    [1, 1, 1_000],
    [2, 0, 1_000],
    [2, 0.5, 1_500],
    [3, 1, 4_000],
    [6, 1, 32_000],
    [7, 0, 30_000],
    [7, 1, 60_000],
    [50, 1, 60_000],
    [0, 1, 1_000],
  ])("after %i failures with random %d waits %i ms", (attempts, random, expected) => {
    expect(backoffDelay(attempts, defaultBackoff, () => random)).toBe(expected);
  });

  it("honours a custom base and cap", () => {
    expect(backoffDelay(4, { baseMs: 10, capMs: 50 }, () => 1)).toBe(50);
  });
});

describe("outbox", () => {
  it("enqueues idempotently on batch id, keeping the first payload", async () => {
    await using t = await tempStores();
    const store = await t.open();
    expect(await store.enqueue({ batchId: "b1", subject, payload: bytes(1, 2, 3), at: at(0) })).toBe(true);
    expect(await store.enqueue({ batchId: "b1", subject: "other", payload: bytes(9), at: at(5) })).toBe(false);
    expect(await store.pendingCount()).toBe(1);
    expect(await store.peek(10)).toEqual([
      {
        seq: expect.any(Number),
        batchId: "b1",
        subject,
        payload: bytes(1, 2, 3),
        createdAt: at(0),
        attempts: 0,
        nextAttemptAt: at(0),
        lastError: null,
      },
    ]);
  });

  it("returns due rows in seq order and deletes a row on ack", async () => {
    await using t = await tempStores();
    const store = await t.open();
    await store.enqueue({ batchId: "b1", subject, payload: bytes(1), at: at(10) });
    await store.enqueue({ batchId: "b2", subject, payload: bytes(2), at: at(0) });
    await store.enqueue({ batchId: "b3", subject, payload: bytes(3), at: at(20) });
    const all = await store.peek(10);
    expect(all.map((r) => r.batchId)).toEqual(["b1", "b2", "b3"]);
    expect(all[0]!.seq < all[1]!.seq && all[1]!.seq < all[2]!.seq).toBe(true);

    expect((await store.due(at(15), 10)).map((r) => r.batchId)).toEqual(["b1", "b2"]);
    expect((await store.due(at(15), 1)).map((r) => r.batchId)).toEqual(["b1"]);
    expect((await store.due(at(30), 10)).map((r) => r.payload)).toEqual([bytes(1), bytes(2), bytes(3)]);

    expect(await store.ack("b2")).toBe(true);
    expect(await store.ack("b2")).toBe(false);
    expect((await store.due(at(30), 10)).map((r) => r.batchId)).toEqual(["b1", "b3"]);
    expect(await store.pendingCount()).toBe(2);
  });

  it("records failures and backs off exponentially with jitter (base 1 s, cap 60 s)", async () => {
    await using t = await tempStores();
    const store = await t.open();
    await store.enqueue({ batchId: "b1", subject, payload: bytes(1), at: at(0) });

    const first = await store.fail("b1", new Error("no responders"), at(0));
    expect(first?.attempts).toBe(1);
    const d1 = first!.nextAttemptAt.getTime() - at(0).getTime();
    expect(d1).toBeGreaterThanOrEqual(500);
    expect(d1).toBeLessThanOrEqual(1_000);
    expect(await store.due(at(0), 10)).toEqual([]);
    expect((await store.due(first!.nextAttemptAt, 10)).map((r) => r.batchId)).toEqual(["b1"]);

    const second = await store.fail("b1", "timeout", at(100));
    const d2 = second!.nextAttemptAt.getTime() - at(100).getTime();
    expect(second?.attempts).toBe(2);
    expect(d2).toBeGreaterThanOrEqual(1_000);
    expect(d2).toBeLessThanOrEqual(2_000);

    for (let i = 3; i <= 10; i++) await store.fail("b1", `timeout ${i}`, at(200));
    const [row] = await store.peek(1);
    expect(row).toMatchObject({ attempts: 10, lastError: "timeout 10" });
    const d10 = row!.nextAttemptAt.getTime() - at(200).getTime();
    expect(d10).toBeGreaterThanOrEqual(30_000);
    expect(d10).toBeLessThanOrEqual(60_000);

    expect(await store.fail("missing", "x", at(0))).toBeNull();
  });

  it("survives an agent restart: pending rows, attempts and order are kept and seq keeps increasing", async () => {
    await using t = await tempStores();
    const before = await t.open();
    for (let i = 1; i <= 3; i++) await before.enqueue({ batchId: `b${i}`, subject, payload: bytes(i, 0, 255), at: at(i) });
    await before.fail("b1", new Error("nats down"), at(10));
    await before.ack("b3");
    const pending = await before.peek(10);
    await before.close();

    const after = await t.open();
    expect(await after.pendingCount()).toBe(2);
    expect(await after.peek(10)).toEqual(pending);
    expect(pending[0]).toMatchObject({ batchId: "b1", attempts: 1, lastError: "nats down", payload: bytes(1, 0, 255) });

    await after.enqueue({ batchId: "b4", subject, payload: bytes(4), at: at(20) });
    const seqs = (await after.peek(10)).map((r) => r.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(seqs[2]).toBeGreaterThan(pending[1]!.seq);
  });

  it("refuses malformed input", async () => {
    await using t = await tempStores();
    const store = await t.open();
    await expect(store.enqueue({ batchId: "", subject, payload: bytes() })).rejects.toThrow(/batchId/);
    await expect(store.enqueue({ batchId: "b", subject: "", payload: bytes() })).rejects.toThrow(/subject/);
    await expect(
      store.enqueue({ batchId: "b", subject, payload: "text" as unknown as Uint8Array }),
    ).rejects.toThrow(/Uint8Array/);
    await expect(t.open("bad.sqlite", { backoff: { baseMs: 0 } })).rejects.toThrow(/backoff.baseMs/);
  });
});

describe("outbox bounds", () => {
  const kib = (n: number) => new Uint8Array(n * 1024);

  it("drops the oldest rows beyond the byte bound, keeping the newest that fit", async () => {
    await using t = await tempStores();
    const store = await t.open();
    for (let i = 1; i <= 5; i++) await store.enqueue({ batchId: `b${i}`, subject, payload: kib(10), at: at(i) });
    expect(await store.pendingBytes()).toBe(50 * 1024);
    const trimmed = await store.trimOutbox(at(10), { maxBytes: 25 * 1024 });
    expect(trimmed).toMatchObject({ rows: 3, bytes: 30 * 1024, bySize: 3, byAge: 0, oldest: at(1), batchIds: ["b1", "b2", "b3"] });
    expect((await store.peek(10)).map((r) => r.batchId)).toEqual(["b4", "b5"]);
    // Within bounds now: nothing more goes.
    expect((await store.trimOutbox(at(10), { maxBytes: 25 * 1024 })).rows).toBe(0);
  });

  it("drops rows older than the age bound", async () => {
    await using t = await tempStores();
    const store = await t.open();
    await store.enqueue({ batchId: "old", subject, payload: bytes(1), at: at(0) });
    await store.enqueue({ batchId: "new", subject, payload: bytes(2), at: at(3_600) });
    const trimmed = await store.trimOutbox(at(3_600 + 60), { maxAgeMs: 30 * 60_000 });
    expect(trimmed).toMatchObject({ rows: 1, bytes: 1, byAge: 1, bySize: 0, batchIds: ["old"] });
    expect((await store.peek(10)).map((r) => r.batchId)).toEqual(["new"]);
  });

  it("keeps everything by default (64 MiB, 24 h) and refuses nonsense bounds", async () => {
    await using t = await tempStores();
    const store = await t.open();
    await store.enqueue({ batchId: "b", subject, payload: kib(100), at: at(0) });
    expect((await store.trimOutbox(at(23 * 3_600))).rows).toBe(0);
    expect((await store.trimOutbox(at(25 * 3_600))).rows).toBe(1);
    await expect(store.trimOutbox(at(0), { maxBytes: 0 })).rejects.toThrow(/maxBytes/);
  });
});
