import { describe, expect, it } from "vitest";
import { FlagCache, rolloutBucket } from "./flags.ts";

const flag = (over: Partial<{ name: string; enabled: boolean; rolloutPercentage: number; userIds: string[] }> = {}) => ({
  name: "new-checkout",
  enabled: true,
  rolloutPercentage: 100,
  userIds: [],
  ...over,
});

describe("FlagCache", () => {
  it("uses the app's defaults until the colony sends the flag", () => {
    const cache = new FlagCache({ "dark-mode": { defaultEnabled: true } });
    expect(cache.isEnabled("dark-mode")).toBe(true);
    expect(cache.isEnabled("unknown")).toBe(false);
    cache.replace([flag({ name: "dark-mode", enabled: false })], 1);
    expect(cache.isEnabled("dark-mode")).toBe(false);
  });

  it.each([
    { rule: "enabled, 100 %", f: flag(), user: undefined, on: true },
    { rule: "disabled", f: flag({ enabled: false }), user: "bob", on: false },
    { rule: "listed user on a disabled flag", f: flag({ enabled: false, userIds: ["alice"] }), user: "alice", on: true },
    { rule: "0 % rollout, listed user", f: flag({ rolloutPercentage: 0, userIds: ["alice"] }), user: "alice", on: true },
    { rule: "0 % rollout, other user", f: flag({ rolloutPercentage: 0, userIds: ["alice"] }), user: "bob", on: false },
    { rule: "partial rollout without a user id", f: flag({ rolloutPercentage: 50 }), user: undefined, on: false },
  ])("$rule → $on", ({ f, user, on }) => {
    const cache = new FlagCache();
    cache.replace([f], 1);
    expect(cache.isEnabled(f.name, user === undefined ? undefined : { userId: user })).toBe(on);
  });

  it("puts a user in a rollout by a stable hash of flag and user id, close to the percentage", () => {
    const cache = new FlagCache();
    cache.replace([flag({ rolloutPercentage: 25 })], 1);
    const users = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
    const on = users.filter((u) => cache.isEnabled("new-checkout", { userId: u }));
    expect(on.length / users.length).toBeGreaterThan(0.22);
    expect(on.length / users.length).toBeLessThan(0.28);
    // The same users again (deterministic), and the bucket decides.
    expect(users.filter((u) => cache.isEnabled("new-checkout", { userId: u }))).toEqual(on);
    expect(on.every((u) => rolloutBucket("new-checkout", u) < 25)).toBe(true);
    // Another flag buckets users differently.
    expect(users.filter((u) => rolloutBucket("other-flag", u) < 25)).not.toEqual(on);
  });

  it("ignores a set older than the one it holds and reports changed flags", () => {
    const cache = new FlagCache();
    const changes: string[][] = [];
    cache.onChange((names) => changes.push(names));
    cache.replace([flag()], 10);
    expect(cache.replace([flag({ enabled: false })], 5)).toBe(false);
    expect(cache.isEnabled("new-checkout")).toBe(true);
    cache.replace([flag()], 11);
    cache.replace([flag({ userIds: ["a"] })], 12);
    expect(changes).toEqual([["new-checkout"], ["new-checkout"]]);
  });
});
