// Durations as people write them in config and flags: "90s", "5m", "1h",
// "7d", "1y", or combinations like "1h30m". Returns an error instead of
// throwing so the caller decides how to report it (config key, CLI flag).

const unitMs = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
} as const;

export type DurationUnit = keyof typeof unitMs;

export const durationUnits: readonly DurationUnit[] = Object.keys(unitMs) as DurationUnit[];

export type ParsedDuration = { ms: number } | { error: string };

const part = /(\d+(?:\.\d+)?)([a-zA-Z]*)/y;

/**
 * Parses a duration. Accepts integers or decimals followed by a unit
 * (ms, s, m, h, d, w, y; a year is 365 days), several parts in a row
 * ("1h30m"). Rejects empty text, negative values, missing or unknown units.
 * Zero ("0s") parses; callers that need a positive duration check `ms > 0`.
 */
export function parseDuration(text: string): ParsedDuration {
  const value = text.trim();
  if (value === "") return { error: "empty duration" };
  if (value.startsWith("-")) return { error: `negative duration "${text}" is not allowed` };
  if (!/^(?:\d+(?:\.\d+)?[a-zA-Z]*)+$/.test(value)) return { error: `"${text}" is not a duration` };
  let total = 0;
  let pos = 0;
  while (pos < value.length) {
    part.lastIndex = pos;
    const m = part.exec(value);
    const [, amount, unit] = m as unknown as [string, string, string];
    if (unit === "") return { error: `"${text}" has no unit (${durationUnits.join(", ")})` };
    if (!(unit in unitMs)) return { error: `unknown unit "${unit}" in "${text}" (use ${durationUnits.join(", ")})` };
    total += Number(amount) * unitMs[unit as DurationUnit];
    pos = part.lastIndex;
  }
  if (!Number.isSafeInteger(Math.round(total))) return { error: `duration "${text}" is too large` };
  return { ms: Math.round(total) };
}

/** The shortest exact spelling of a duration: 86400000 → "1d", 5400000 → "90m". */
export function durationToString(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`durationToString: ${ms} is not a non-negative duration`);
  if (ms === 0) return "0s";
  for (const unit of ["y", "w", "d", "h", "m", "s"] as const) if (ms % unitMs[unit] === 0) return `${ms / unitMs[unit]}${unit}`;
  return `${ms}ms`;
}
