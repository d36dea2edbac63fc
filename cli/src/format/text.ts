// Building blocks for the CLI's human output: colors that can be switched
// off, aligned columns, durations, numbers and times.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import pc from "picocolors";
import { formatNumber } from "@coral/common/units";

export { formatNumber };

export type Colors = ReturnType<typeof pc.createColors>;

export interface FormatOptions {
  /** ANSI colors; callers pass false for NO_COLOR or when stdout is not a TTY. */
  color: boolean;
  /** Show times in UTC (default: the local time zone). */
  utc?: boolean;
}

export function colors(enabled: boolean): Colors {
  return pc.createColors(enabled);
}

// eslint-disable-next-line no-control-regex
const ansi = /\u001b\[[0-9;]*m/g;

/** Width as shown on a terminal (ANSI codes do not count). */
export function visibleWidth(text: string): number {
  return [...text.replace(ansi, "")].length;
}

export function padEnd(text: string, width: number): string {
  return text + " ".repeat(Math.max(0, width - visibleWidth(text)));
}

const slug = /^[a-z0-9-]*$/;

/**
 * Orders names as localeCompare does, without it for component names
 * (lowercase letters, digits, hyphens), whose code-unit order is the same:
 * the first localeCompare builds ICU's collator, 8-13 ms of a read command's
 * start-up (bench/BENCHMARKS.md, CLI start-up).
 */
export function compareNames(a: string, b: string): number {
  if (slug.test(a) && slug.test(b)) return a < b ? -1 : a > b ? 1 : 0;
  return a.localeCompare(b);
}

/** The heavy rule under a title. */
export function rule(width: number): string {
  return "━".repeat(Math.max(1, width));
}

/**
 * Aligned columns without borders, like `docker ps`: every column but the
 * last is padded to its widest cell plus `gap` spaces; no trailing spaces.
 * `head` is printed as given (callers bold it).
 */
export function columns(head: readonly string[], rows: readonly (readonly string[])[], gap = 3): string[] {
  const all = [head, ...rows];
  const widths = head.map((_, i) => Math.max(...all.map((row) => visibleWidth(row[i] ?? ""))));
  return all.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : padEnd(cell, (widths[i] ?? 0) + gap)))
      .join("")
      .trimEnd(),
  );
}

/** 45 → "45s", 90 → "1m 30s", 12240 → "3h 24m", 201600 → "2d 8h", 0 → "0s". Two units at most. */
export function formatDuration(seconds: number | bigint): string {
  const total = typeof seconds === "bigint" ? Number(seconds) : Math.floor(seconds);
  if (!Number.isFinite(total) || total < 0) return "-";
  if (total < 60) return `${total}s`;
  const units: Array<[string, number]> = [
    ["d", 86_400],
    ["h", 3_600],
    ["m", 60],
    ["s", 1],
  ];
  const first = units.findIndex(([, size]) => total >= size);
  const [bigUnit, bigSize] = units[first]!;
  const big = Math.floor(total / bigSize);
  const [smallUnit, smallSize] = units[first + 1]!;
  const small = Math.floor((total % bigSize) / smallSize);
  return small > 0 ? `${big}${bigUnit} ${small}${smallUnit}` : `${big}${bigUnit}`;
}


const two = (n: number) => String(n).padStart(2, "0");

/** "2026-01-05 14:05:03" in local time, or UTC with `utc`; "-" when absent. */
export function formatTime(ts: Timestamp | undefined, options: { utc?: boolean } = {}): string {
  if (!ts) return "-";
  const d = timestampDate(ts);
  if (options.utc)
    return `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())} ${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`;
}

/** The TIME column's title: "TIME" or "TIME (UTC)". */
export function timeHeader(options: { utc?: boolean }): string {
  return options.utc ? "TIME (UTC)" : "TIME";
}

export function plural(count: number | bigint, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 || count === 1n ? one : many}`;
}

/** Cuts text to `max` visible characters with an ellipsis. */
export function clip(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join("")}…`;
}

/** "127.0.0.1:3000", "[fd42::7]:3000", "port 3000", or the address alone. */
export function hostPort(address: string, port: number): string {
  if (!address) return port ? `port ${port}` : "";
  if (!port) return address;
  return address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`;
}
