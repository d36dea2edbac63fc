import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { useTempCoralHome } from "@coral/colony/testing";
import { appendUsage, dailyWarning, estimateCost, formatCostReport, priceFor, readUsage, summarizeUsage } from "./usage.ts";

let home: string;
let restore: () => Promise<void>;
beforeEach(async () => {
  ({ home, restore } = await useTempCoralHome());
});
afterEach(async () => {
  await restore();
});

const usage = (model: string, input: number, output: number, cacheWrite = 0, cacheRead = 0) => ({
  model,
  input_tokens: input,
  output_tokens: output,
  cache_creation_input_tokens: cacheWrite,
  cache_read_input_tokens: cacheRead,
  stop_reason: "end_turn",
});

describe("ask usage and cost", () => {
  it("prices known models, dated ids and unknown models by family", () => {
    expect(priceFor("claude-sonnet-5-5")).toMatchObject({ entry: "claude-sonnet-5-5", known: true, price: { input: 2, output: 10 } });
    expect(priceFor("claude-haiku-4-5-20251001")).toMatchObject({ entry: "claude-haiku-4-5", known: true });
    expect(priceFor("claude-opus-9")).toMatchObject({ entry: "claude-opus-5-5", known: false });
    expect(priceFor("mystery")).toMatchObject({ entry: "claude-sonnet-5-5", known: false });
    // 1M input + 1M output + 1M cache writes + 1M cache reads of Sonnet 4.6: 3 + 15 + 3.75 + 0.30.
    expect(estimateCost(usage("claude-sonnet-4-6", 1e6, 1e6, 1e6, 1e6))).toBeCloseTo(22.05, 10);
  });

  it("adds up today and this month (local time), per model, skipping unreadable lines", async () => {
    const file = join(home, "ask-usage.jsonl");
    const now = new Date(2026, 10, 23, 15, 0, 0);
    await appendUsage(file, usage("claude-sonnet-5-5", 45_203, 12_891), new Date(2026, 10, 23, 9, 0, 0));
    await appendUsage(file, usage("claude-sonnet-5-5", 1000, 100, 0, 5000), new Date(2026, 10, 23, 14, 0, 0));
    await appendUsage(file, usage("claude-opus-5-5", 10_000, 2000), new Date(2026, 10, 2, 12, 0, 0));
    await appendUsage(file, usage("claude-sonnet-5-5", 99_999, 99_999), new Date(2026, 9, 31, 23, 0, 0)); // last month
    await appendFile(file, "not json\n{\"ts\":\"yesterday\"}\n");
    const { records, skipped } = await readUsage(file);
    expect(records).toHaveLength(4);
    expect(skipped).toBe(2);
    const s = summarizeUsage(records, now);
    expect(s.today).toMatchObject({ date: "2026-11-23", requests: 2, input_tokens: 46_203, output_tokens: 12_991, cache_read_input_tokens: 5000 });
    expect(s.today.estimated_cost_usd).toBeCloseTo((46_203 * 2 + 12_991 * 10 + 5000 * 0.1) / 1e6, 10);
    expect(s.month).toMatchObject({ month: "2026-11", requests: 3, input_tokens: 56_203 });
    expect(s.by_model.map((m) => [m.model, m.requests])).toEqual([
      ["claude-sonnet-5-5", 2],
      ["claude-opus-5-5", 1],
    ]);
    const report = formatCostReport(s, { model: "claude-sonnet-5-5", dailyWarnUsd: 10, skipped, usageFile: file });
    expect(report).toContain("CORAL ASK - USAGE & COSTS");
    expect(report).toContain("Today (2026-11-23):\n  Requests: 2\n  Input tokens: 46,203\n  Output tokens: 12,991\n  Cache tokens: 0 written, 5,000 read\n  Estimated cost: $0.22 USD");
    expect(report).toContain("Warning threshold: $10.00/day (not exceeded today)");
    expect(report).toContain("2 unreadable line(s)");
    expect(dailyWarning(s, 10)).toBeUndefined();
    expect(dailyWarning(s, 0)).toBeUndefined();
    expect(dailyWarning(s, 0.1)).toMatch(/today's estimated coral ask cost is \$0\.22, past your daily warning of \$0\.10/);
  });

  it("reads a missing log as no usage", async () => {
    expect(await readUsage(join(home, "nothing.jsonl"))).toEqual({ records: [], skipped: 0 });
  });
});
