// How the dashboard writes numbers, times and states: the same words and
// units as `coral status`.

export function formatBytes(bytes: number | bigint): string {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n <= 0) return "0 B";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value >= 100 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

export function formatPercent(value: number): string {
  if (!Number.isFinite(value)) return "–";
  return `${value >= 10 ? value.toFixed(0) : value.toFixed(1)}%`;
}

/** 0s, 42s, 5m 3s, 2h 5m, 3d 4h. */
export function formatDuration(seconds: number | bigint): string {
  let s = Math.max(0, Math.floor(Number(seconds)));
  if (s < 60) return `${s}s`;
  const d = Math.floor(s / 86_400);
  s -= d * 86_400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  return `${m}m ${s}s`;
}

/** "12s ago", "5m ago", or the time for older moments. */
export function formatAgo(at: Date, now: Date = new Date()): string {
  const seconds = Math.round((now.getTime() - at.getTime()) / 1000);
  if (seconds < 0) return "just now";
  if (seconds < 3600 * 24) return `${formatDuration(seconds)} ago`;
  return formatTime(at);
}

/** 2026-12-05 07:40:12 (local time). */
export function formatTime(at: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${at.getFullYear()}-${p(at.getMonth() + 1)}-${p(at.getDate())} ${p(at.getHours())}:${p(at.getMinutes())}:${p(at.getSeconds())}`;
}

export type Tone = "good" | "warn" | "bad" | "idle";

/** The colour class of an agent state or a health word. */
export function toneOf(word: string): Tone {
  switch (word) {
    case "online":
    case "healthy":
    case "connected":
    case "registered":
      return "good";
    case "degraded":
    case "registering":
    case "unknown":
      return "warn";
    case "offline":
    case "unhealthy":
    case "expired":
    case "failed":
      return "bad";
    default:
      return "idle";
  }
}

/** A metric value in its unit, from the metric's name (cpu_percent, memory_bytes, …). */
export function formatMetric(name: string, value: number): string {
  if (!Number.isFinite(value)) return "–";
  if (name.endsWith("_bytes")) return formatBytes(value);
  if (name.endsWith("_percent")) return formatPercent(value);
  if (name.endsWith("_seconds")) return value < 1 ? `${(value * 1000).toFixed(1)} ms` : `${value.toFixed(2)} s`;
  return Math.abs(value) >= 1000 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(2);
}

/** The time range presets of the component view, like the CLI's --since. */
export const rangePresets = [
  { id: "5m", label: "5 min", seconds: 300, raw: true },
  { id: "15m", label: "15 min", seconds: 900, raw: true },
  { id: "1h", label: "1 hour", seconds: 3600, raw: false },
  { id: "6h", label: "6 hours", seconds: 6 * 3600, raw: false },
  { id: "24h", label: "24 hours", seconds: 86_400, raw: false },
  { id: "7d", label: "7 days", seconds: 7 * 86_400, raw: false },
] as const;

export type RangeId = (typeof rangePresets)[number]["id"];

/** The preset named `id`, or the default (1 hour). */
export function rangePreset(id: string | null | undefined) {
  return rangePresets.find((p) => p.id === id) ?? rangePresets[2];
}

/** One event's details as short `key=value` text. */
export function eventDetails(detailsJson: string): string {
  if (!detailsJson) return "";
  try {
    const value = JSON.parse(detailsJson) as unknown;
    if (value && typeof value === "object" && !Array.isArray(value))
      return Object.entries(value as Record<string, unknown>)
        .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
        .join(" ");
    return JSON.stringify(value);
  } catch {
    return detailsJson;
  }
}
