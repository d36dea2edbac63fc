import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { waitUntil } from "./wait.ts";

describe("waitUntil", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("looks every 200 ms and returns the first value", async () => {
    let looks = 0;
    const p = waitUntil("the colony to start", 60_000, () => (++looks === 4 ? { pid: 42 } : undefined));
    await vi.advanceTimersByTimeAsync(600);
    await expect(p).resolves.toEqual({ pid: 42 });
    expect(looks).toBe(4);
  });

  it("says how many seconds it waited, and for what", async () => {
    const p = waitUntil("colony pid 7 to stop", 30_000, () => undefined).catch((err: unknown) => err);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(await p).toEqual(new Error("timed out after 30s waiting for colony pid 7 to stop"));
  });

  it("ends at once when the probe throws (the process it waits for exited)", async () => {
    const probe = vi.fn(() => {
      throw new Error("the colony exited with code 1; see colony.log");
    });
    await expect(waitUntil("the colony to start", 60_000, probe)).rejects.toThrow("the colony exited with code 1; see colony.log");
    expect(probe).toHaveBeenCalledTimes(1);
  });
});
