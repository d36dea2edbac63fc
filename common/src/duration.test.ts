import { describe, expect, it } from "vitest";
import { durationToString, parseDuration } from "./duration.ts";

describe("parseDuration", () => {
  it.each([
    ["90s", 90_000],
    ["5m", 300_000],
    ["1h", 3_600_000],
    ["7d", 604_800_000],
    ["1y", 31_536_000_000],
    ["250ms", 250],
    ["2w", 1_209_600_000],
    ["1h30m", 5_400_000],
    ["1.5h", 5_400_000],
    ["0s", 0],
    [" 30s ", 30_000],
  ])("%s → %d ms", (text, ms) => {
    expect(parseDuration(text)).toEqual({ ms });
  });

  it.each([
    ["", "empty duration"],
    ["   ", "empty duration"],
    ["-5m", 'negative duration "-5m" is not allowed'],
    ["5x", 'unknown unit "x" in "5x"'],
    ["10 min", '"10 min" is not a duration'],
    ["10min", 'unknown unit "min"'],
    ["30", '"30" has no unit'],
    ["abc", '"abc" is not a duration'],
    ["1h-5m", '"1h-5m" is not a duration'],
    ["99999999999999999y", "is too large"],
  ])("rejects %j", (text, message) => {
    const parsed = parseDuration(text);
    expect(parsed).toHaveProperty("error");
    expect((parsed as { error: string }).error).toContain(message);
  });
});

describe("durationToString", () => {
  it.each([
    [0, "0s"],
    [90_000, "90s"],
    [300_000, "5m"],
    [86_400_000, "1d"],
    [31_536_000_000, "1y"],
    [250, "250ms"],
  ])("%d → %s", (ms, text) => {
    expect(durationToString(ms)).toBe(text);
    expect(parseDuration(text)).toEqual({ ms });
  });
});
