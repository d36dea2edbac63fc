import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { PollTimeoutError, backoffMs, pollUntil, sleep } from "./async.ts";

describe("backoffMs", () => {
  it.each([
    // attempt, random, delay: d = min(30 s, 500 ms · 2^attempt), spread over [0.8·d, 1.2·d]
    [0, 0, 400],
    [0, 0.5, 500],
    [0, 1, 600],
    [1, 0.5, 1_000],
    [3, 0, 3_200],
    [5, 1, 19_200],
    [6, 0.5, 30_000],
    [6, 1, 36_000],
    [100, 0, 24_000],
  ])("spread: attempt %i with random %d waits %i ms", (attempt, random, expected) => {
    expect(backoffMs(attempt, 500, 30_000, { random: () => random })).toBe(expected);
  });

  it.each([
    // attempt, random, delay: d = min(60 s, 1 s · 2^attempt), in [d/2, d]
    [0, 0, 500],
    [0, 1, 1_000],
    [1, 0.5, 1_500],
    [2, 1, 4_000],
    [5, 1, 32_000],
    [6, 0, 30_000],
    [6, 1, 60_000],
    [49, 1, 60_000],
  ])("equal: attempt %i with random %d waits %i ms", (attempt, random, expected) => {
    expect(backoffMs(attempt, 1_000, 60_000, { jitter: "equal", random: () => random })).toBe(expected);
  });

  it("without jitter doubles exactly up to the cap, and never asks for a random number", () => {
    const random = vi.fn(() => 0.5);
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffMs(a, 500, 10_000, { jitter: "none", random }))).toEqual([500, 1_000, 2_000, 4_000, 8_000, 10_000]);
    expect(random).not.toHaveBeenCalled();
  });

  it("keeps a fixed pace when the cap is the initial delay", () => {
    expect([0, 1, 7].map((a) => backoffMs(a, 2_000, 2_000, { jitter: "none" }))).toEqual([2_000, 2_000, 2_000]);
  });

  it("counts a negative attempt as 0 and stops doubling after 2^30 (no Infinity without a cap)", () => {
    expect(backoffMs(-3, 1_000, 60_000, { jitter: "none" })).toBe(1_000);
    expect(backoffMs(5_000, 1, Infinity, { jitter: "none" })).toBe(2 ** 30);
  });

  it("defaults to ±20 % from Math.random", () => {
    const spy = vi.spyOn(Math, "random").mockReturnValue(0.25);
    try {
      expect(backoffMs(2, 100, 1_000)).toBe(360); // 400 · (0.8 + 0.25 · 0.4)
      expect(backoffMs(2, 100, 1_000, { jitter: "equal" })).toBe(250); // 200 + 0.25 · 200
      expect(spy).toHaveBeenCalledTimes(2);
    } finally {
      spy.mockRestore();
    }
  });
});

describe("sleep", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  const settled = (p: Promise<void>) => {
    const state = { done: false };
    void p.then(() => (state.done = true));
    return state;
  };

  it("resolves after the delay, not before", async () => {
    const s = settled(sleep(100));
    await vi.advanceTimersByTimeAsync(99);
    expect(s.done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.done).toBe(true);
  });

  it("resolves early (without throwing) on abort, and at once when already aborted", async () => {
    const stop = new AbortController();
    const s = settled(sleep(60_000, stop.signal));
    await vi.advanceTimersByTimeAsync(10);
    stop.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(s.done).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
    await expect(sleep(60_000, stop.signal)).resolves.toBeUndefined();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("removes its abort listener when it ends on time", async () => {
    const stop = new AbortController();
    const remove = vi.spyOn(stop.signal, "removeEventListener");
    const p = sleep(5, stop.signal);
    await vi.advanceTimersByTimeAsync(5);
    await p;
    expect(remove).toHaveBeenCalledWith("abort", expect.any(Function));
  });

  it("caps a delay beyond setTimeout's range instead of firing at once", async () => {
    const s = settled(sleep(10 * 2 ** 31));
    await vi.advanceTimersByTimeAsync(1_000);
    expect(s.done).toBe(false);
    await vi.advanceTimersByTimeAsync(2 ** 31);
    expect(s.done).toBe(true);
  });
});

describe("sleep's timer", () => {
  it("keeps the process alive unless asked to unref", async () => {
    const spy = vi.spyOn(globalThis, "setTimeout");
    try {
      await sleep(1);
      await sleep(1, undefined, { unref: true });
      const [held, unrefd] = spy.mock.results.map((r) => r.value as NodeJS.Timeout);
      expect(held?.hasRef()).toBe(true);
      expect(unrefd?.hasRef()).toBe(false);
    } finally {
      spy.mockRestore();
    }
  });
});

describe("pollUntil", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("returns the first value that is not undefined, checking every interval", async () => {
    const at: number[] = [];
    const t0 = Date.now();
    const p = pollUntil(
      () => {
        at.push(Date.now() - t0);
        return at.length === 3 ? 0 : undefined; // 0 and false are values
      },
      { timeoutMs: 1_000, intervalMs: 30, what: "the third look" },
    );
    await vi.advanceTimersByTimeAsync(100);
    await expect(p).resolves.toBe(0);
    expect(at).toEqual([0, 30, 60]);
  });

  it("retries a throwing check and names its last error when the deadline passes; the last look is at the deadline", async () => {
    const at: number[] = [];
    const t0 = Date.now();
    const p = pollUntil(
      () => {
        at.push(Date.now() - t0);
        throw new Error(`refused ${at.length}`);
      },
      { timeoutMs: 250, intervalMs: 100, what: "the server" },
    );
    const failed = p.catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(300);
    const err = await failed;
    expect(err).toBeInstanceOf(PollTimeoutError);
    expect(err).toMatchObject({
      what: "the server",
      timeoutMs: 250,
      message: "timed out after 250 ms waiting for the server (last error: refused 4)",
    });
    expect((err as PollTimeoutError).lastError).toEqual(new Error("refused 4"));
    expect(at).toEqual([0, 100, 200, 250]);
  });

  it("times out without a last error when the check only said 'not yet'", async () => {
    const p = pollUntil(() => undefined, { timeoutMs: 100, what: "nothing" }).catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(100);
    expect(await p).toMatchObject({ name: "PollTimeoutError", message: "timed out after 100 ms waiting for nothing", lastError: undefined });
  });

  it("with onError 'throw' rethrows the check's error at once", async () => {
    const check = vi.fn(() => {
      throw new Error("the colony exited with code 1");
    });
    await expect(pollUntil(check, { timeoutMs: 10_000, what: "the colony", onError: "throw" })).rejects.toThrow("the colony exited with code 1");
    expect(check).toHaveBeenCalledTimes(1);
  });

  it("stops waiting when the signal aborts", async () => {
    const stop = new AbortController();
    const check = vi.fn(() => undefined);
    const p = pollUntil(check, { timeoutMs: 60_000, intervalMs: 1_000, what: "never", signal: stop.signal }).catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(1_500);
    stop.abort(new Error("stopping"));
    await vi.advanceTimersByTimeAsync(0);
    expect(await p).toEqual(new Error("stopping"));
    expect(check).toHaveBeenCalledTimes(2);
  });
});
