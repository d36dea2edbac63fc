// Reporting kept traces to the colony, on a fake clock: the first id goes
// out at once, later ones batched at most every 200 ms and 1000 a call, one
// call at a time; a failed call and a full queue drop ids, counted, and
// report() never throws or waits.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { KeepReporter } from "./keep-reports.ts";

const id = (i: number) => i.toString(16).padStart(32, "0");

describe("KeepReporter", () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  it("sends the first id at once, then batches at most every 200 ms and 1000 ids a call", async () => {
    const calls: { at: number; ids: string[] }[] = [];
    const start = Date.now();
    const r = new KeepReporter({
      send: async (ids) => {
        calls.push({ at: Date.now() - start, ids });
      },
    });
    r.report(id(1));
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toEqual([{ at: 0, ids: [id(1)] }]);
    for (let i = 2; i <= 1502; i++) r.report(id(i));
    r.report(id(2)); // already waiting: sent once
    await vi.advanceTimersByTimeAsync(199);
    expect(calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(calls[1]!.at).toBe(200);
    expect(calls[1]!.ids).toHaveLength(1000);
    await vi.advanceTimersByTimeAsync(200);
    expect(calls[2]!.at).toBe(400);
    expect(calls[2]!.ids).toHaveLength(501);
    expect(calls[2]!.ids.at(-1)).toBe(id(1502));
    expect(r.stats()).toEqual({ sent: 1502, calls: 3, failed: 0, dropped: 0, queued: 0 });
  });

  it("drops and counts a failed call's ids and ids past the queue's bound", async () => {
    const errors: unknown[] = [];
    let release: () => void = () => undefined;
    const r = new KeepReporter({
      maxQueued: 3,
      send: (ids) =>
        ids[0] === id(1)
          ? Promise.reject(new Error("colony unreachable"))
          : ids[0] === id(2)
            ? new Promise<void>((resolve) => {
                release = resolve;
              })
            : Promise.resolve(),
      onError: (err) => errors.push(err),
    });
    r.report(id(1));
    await vi.advanceTimersByTimeAsync(0);
    expect(r.stats()).toMatchObject({ calls: 1, failed: 1, sent: 0 });
    expect(String(errors[0])).toMatch(/colony unreachable/);
    r.report(id(2));
    await vi.advanceTimersByTimeAsync(200); // this call hangs: ids wait, up to the bound
    for (let i = 3; i <= 7; i++) r.report(id(i));
    expect(r.stats()).toMatchObject({ calls: 2, queued: 3, dropped: 2 });
    release();
    await vi.advanceTimersByTimeAsync(200);
    expect(r.stats()).toEqual({ sent: 4, calls: 3, failed: 1, dropped: 2, queued: 0 });
    r.stop();
    r.report(id(8));
    expect(r.stats().dropped).toBe(3);
  });
});
