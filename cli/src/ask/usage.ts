// Cost tracking for `coral ask`: every Messages API request's token usage is
// appended to $CORAL_HOME/ask-usage.jsonl; `coral ask cost` adds it up for
// today and this month (local time) and prices it with the table below.
//
// The prices are ESTIMATES: USD per million tokens as Anthropic's pricing
// pages listed them in November 2026 (standard tier, 5-minute cache writes,
// no batch discount, no long-prompt tiers). Your Anthropic bill is what
// counts; update the table when prices change.
import { appendFile, mkdir, readFile } from "node:fs/promises";
import { dirname } from "node:path";
import type { RequestUsage } from "./types.ts";

export interface ModelPrice {
  /** USD per million tokens. */
  input: number;
  output: number;
  cacheWrite: number;
  cacheRead: number;
}

const price = (input: number, output: number, cacheWrite: number, cacheRead: number): ModelPrice => ({ input, output, cacheWrite, cacheRead });

/** Per model id (aliases and dated ids both resolve, see priceFor). */
export const MODEL_PRICES: Readonly<Record<string, ModelPrice>> = {
  "claude-fable-5-1": price(10, 50, 12.5, 1),
  "claude-opus-5-5": price(4, 20, 5, 0.2),
  "claude-opus-5": price(5, 25, 6.25, 0.5),
  "claude-sonnet-5-5": price(2, 10, 2.5, 0.1), // cache reads cut from $0.20 on 2026-10-07
  "claude-sonnet-5": price(2, 10, 2.5, 0.2),
  // Prompts up to 100k tokens; longer prompts cost 5× (not modelled).
  "claude-haiku-5-5": price(0.1, 0.5, 0.125, 0.01),
  "claude-opus-4-8": price(5, 25, 6.25, 0.5),
  "claude-opus-4-7": price(5, 25, 6.25, 0.5),
  "claude-opus-4-6": price(5, 25, 6.25, 0.5),
  "claude-opus-4-5": price(5, 25, 6.25, 0.5),
  "claude-opus-4-1": price(15, 75, 18.75, 1.5),
  "claude-opus-4": price(15, 75, 18.75, 1.5),
  "claude-sonnet-4-6": price(3, 15, 3.75, 0.3),
  "claude-sonnet-4-5": price(3, 15, 3.75, 0.3),
  "claude-sonnet-4": price(3, 15, 3.75, 0.3),
  "claude-haiku-4-5": price(1, 5, 1.25, 0.1),
  "claude-3-5-haiku": price(0.8, 4, 1, 0.08),
};

/** When a model is not in the table: its family's current price, marked as a guess. */
const familyFallback: Array<[RegExp, string]> = [
  [/fable/i, "claude-fable-5-1"],
  [/opus/i, "claude-opus-5-5"],
  [/haiku/i, "claude-haiku-5-5"],
  [/sonnet/i, "claude-sonnet-5-5"],
];

export interface PriceLookup {
  price: ModelPrice;
  /** The table entry used. */
  entry: string;
  /** False when the model is not in the table and a family (or Sonnet) price stands in. */
  known: boolean;
}

export function priceFor(model: string): PriceLookup {
  const id = model.replace(/^anthropic:/, "").replace(/-(?:\d{8}|latest)$/, "");
  const exact = MODEL_PRICES[id];
  if (exact) return { price: exact, entry: id, known: true };
  const family = familyFallback.find(([re]) => re.test(id))?.[1] ?? "claude-sonnet-5-5";
  return { price: MODEL_PRICES[family]!, entry: family, known: false };
}

export interface UsageRecord extends RequestUsage {
  /** ISO time of the request's end. */
  ts: string;
}

export function estimateCost(u: Pick<RequestUsage, "model" | "input_tokens" | "output_tokens" | "cache_creation_input_tokens" | "cache_read_input_tokens">): number {
  const { price: p } = priceFor(u.model);
  return (u.input_tokens * p.input + u.output_tokens * p.output + u.cache_creation_input_tokens * p.cacheWrite + u.cache_read_input_tokens * p.cacheRead) / 1_000_000;
}

/** Appends one request's usage (one JSON line). */
export async function appendUsage(file: string, usage: RequestUsage, at: Date = new Date()): Promise<void> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  const record: UsageRecord = { ts: at.toISOString(), ...usage };
  await appendFile(file, JSON.stringify(record) + "\n", { mode: 0o600 });
}

const count = (v: unknown) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? v : 0);

/** Reads the log; lines that are not usage records are counted and skipped. */
export async function readUsage(file: string): Promise<{ records: UsageRecord[]; skipped: number }> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { records: [], skipped: 0 };
    throw err;
  }
  const records: UsageRecord[] = [];
  let skipped = 0;
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    try {
      const r = JSON.parse(line) as Partial<UsageRecord>;
      if (typeof r.ts !== "string" || Number.isNaN(Date.parse(r.ts)) || typeof r.model !== "string") throw new Error("not a record");
      records.push({
        ts: r.ts,
        model: r.model,
        input_tokens: count(r.input_tokens),
        output_tokens: count(r.output_tokens),
        cache_creation_input_tokens: count(r.cache_creation_input_tokens),
        cache_read_input_tokens: count(r.cache_read_input_tokens),
        stop_reason: r.stop_reason ?? null,
        ...(r.request_id ? { request_id: r.request_id } : {}),
        ...(r.partial ? { partial: true } : {}),
      });
    } catch {
      skipped++;
    }
  }
  return { records, skipped };
}

export interface UsageTotals {
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  estimated_cost_usd: number;
}

export interface UsageSummary {
  /** Local date, YYYY-MM-DD. */
  today: UsageTotals & { date: string };
  /** Local month, YYYY-MM. */
  month: UsageTotals & { month: string };
  /** This month, per model. */
  by_model: Array<UsageTotals & { model: string; priced_as: string; price_known: boolean }>;
  /** Models priced by a stand-in (not in the table). */
  unpriced_models: string[];
}

const pad = (n: number) => String(n).padStart(2, "0");
export const localDate = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
const localMonth = (d: Date) => `${d.getFullYear()}-${pad(d.getMonth() + 1)}`;

function emptyTotals(): UsageTotals {
  return { requests: 0, input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, estimated_cost_usd: 0 };
}

function add(t: UsageTotals, r: UsageRecord): void {
  t.requests++;
  t.input_tokens += r.input_tokens;
  t.output_tokens += r.output_tokens;
  t.cache_creation_input_tokens += r.cache_creation_input_tokens;
  t.cache_read_input_tokens += r.cache_read_input_tokens;
  t.estimated_cost_usd += estimateCost(r);
}

export function summarizeUsage(records: readonly UsageRecord[], now: Date = new Date()): UsageSummary {
  const date = localDate(now);
  const month = localMonth(now);
  const today = { date, ...emptyTotals() };
  const monthTotals = { month, ...emptyTotals() };
  const models = new Map<string, UsageTotals>();
  for (const r of records) {
    const at = new Date(r.ts);
    if (localMonth(at) !== month) continue;
    add(monthTotals, r);
    if (localDate(at) === date) add(today, r);
    let m = models.get(r.model);
    if (!m) models.set(r.model, (m = emptyTotals()));
    add(m, r);
  }
  const by_model = [...models].map(([model, t]) => {
    const p = priceFor(model);
    return { model, priced_as: p.entry, price_known: p.known, ...t };
  });
  by_model.sort((a, b) => b.estimated_cost_usd - a.estimated_cost_usd);
  return { today, month: monthTotals, by_model, unpriced_models: by_model.filter((m) => !m.price_known).map((m) => m.model) };
}

export function formatUsd(usd: number): string {
  if (usd > 0 && usd < 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(2)}`;
}

export interface CostReportOptions {
  model: string;
  dailyWarnUsd: number;
  usageFile?: string;
  skipped?: number;
}

/** `coral ask cost`, as the seed shows it. */
export function formatCostReport(s: UsageSummary, o: CostReportOptions): string {
  const n = (v: number) => v.toLocaleString("en-US");
  const lines = ["CORAL ASK - USAGE & COSTS", "━".repeat(46), "Provider: Anthropic", `Model: ${o.model}`, ""];
  const block = (title: string, t: UsageTotals) => {
    lines.push(`${title}:`, `  Requests: ${n(t.requests)}`, `  Input tokens: ${n(t.input_tokens)}`, `  Output tokens: ${n(t.output_tokens)}`);
    if (t.cache_creation_input_tokens || t.cache_read_input_tokens)
      lines.push(`  Cache tokens: ${n(t.cache_creation_input_tokens)} written, ${n(t.cache_read_input_tokens)} read`);
    lines.push(`  Estimated cost: ${formatUsd(t.estimated_cost_usd)} USD`, "");
  };
  block(`Today (${s.today.date})`, s.today);
  block(`This month (${s.month.month})`, s.month);
  if (s.by_model.length > 1) {
    lines.push("By model (this month):");
    for (const m of s.by_model) lines.push(`  ${m.model}: ${n(m.requests)} requests, ${formatUsd(m.estimated_cost_usd)}`);
    lines.push("");
  }
  if (o.dailyWarnUsd > 0) {
    const exceeded = s.today.estimated_cost_usd > o.dailyWarnUsd;
    lines.push(`Warning threshold: ${formatUsd(o.dailyWarnUsd)}/day (${exceeded ? "EXCEEDED today" : "not exceeded today"})`);
  } else lines.push("Warning threshold: off (set one with coral ask config --daily-warn 10)");
  for (const model of s.unpriced_models) lines.push(`Note: no price on file for ${model}; estimated with ${priceFor(model).entry}'s price.`);
  if (o.skipped) lines.push(`Note: ${o.skipped} unreadable line(s) in ${o.usageFile ?? "the usage log"} were skipped.`);
  lines.push("Costs are estimates from coral's price table (USD per million tokens); your Anthropic bill is authoritative.");
  return lines.join("\n");
}

/** The warning `coral ask` prints when today's estimated cost has passed the daily warning; undefined when it has not. */
export function dailyWarning(s: UsageSummary, dailyWarnUsd: number): string | undefined {
  if (!(dailyWarnUsd > 0) || s.today.estimated_cost_usd <= dailyWarnUsd) return undefined;
  return `warning: today's estimated coral ask cost is ${formatUsd(s.today.estimated_cost_usd)}, past your daily warning of ${formatUsd(dailyWarnUsd)} (details: coral ask cost; change it: coral ask config --daily-warn <USD>)`;
}
