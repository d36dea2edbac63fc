// The text `coral profile cpu` prints: what was sampled, the hottest
// functions by self time, and the agent's note when something limited it;
// for stored (always-on) profiles the window, and a baseline comparison.
import type { CpuProfile } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import type { ProfileCpuResponse, QueryCpuProfileResponse } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { colors, columns, plural, type Colors } from "../format/text.ts";
import { topFunctions } from "./analyze.ts";
import type { DiffRow } from "./diff.ts";

export interface ProfileFormatOptions {
  top: number;
  color: boolean;
  width?: number;
}

const percent = (n: number, total: number) => (total > 0 ? `${((100 * n) / total).toFixed(1)}%` : "–");
const samples = (n: number) => `${n.toLocaleString("en-US")} ${n === 1 ? "sample" : "samples"}`;

/** The table of hottest functions (or why there is none) and the note. */
function body(c: Colors, p: CpuProfile, options: ProfileFormatOptions, note: string): string[] {
  const total = Number(p.totalSamples);
  const lines: string[] = [];
  if (total === 0) {
    lines.push("", "No samples: the service's processes did not run on a CPU while it was profiled.");
  } else {
    const all = topFunctions(p);
    const top = all.slice(0, options.top);
    const width = options.width ?? 120;
    // The module column gets what is left of the terminal; long paths keep their end (the file name).
    const moduleWidth = Math.max(12, width - 62);
    const shorten = (m: string) => (m.length <= moduleWidth ? m : `…${m.slice(m.length - moduleWidth + 1)}`);
    const rows = top.map((f) => [percent(f.self, total), percent(f.total, total), f.self.toLocaleString("en-US"), f.function + (f.kernel ? c.dim(" [k]") : ""), c.dim(shorten(f.module))]);
    lines.push("", ...columns(["SELF", "TOTAL", "SAMPLES", "FUNCTION", "MODULE"], rows));
    if (all.length > top.length) lines.push(c.dim(`… ${all.length - top.length} more functions (--top ${Math.min(all.length, options.top * 2)}, or -o profile.svg for the whole picture)`));
  }
  if (note) lines.push("", `${c.yellow("Note:")} ${note}`);
  return lines;
}

export function formatProfile(res: ProfileCpuResponse, options: ProfileFormatOptions): string {
  const c = colors(options.color);
  const p = res.profile!;
  const seconds = (p.durationMs / 1000).toFixed(p.durationMs % 1000 ? 1 : 0);
  const head =
    c.bold(`CPU profile of ${res.serviceName}`) +
    c.dim(` (agent ${res.agentId}, ${p.method || "ebpf"}): ${samples(Number(p.totalSamples))} at ${p.hz} Hz over ${seconds}s, ${plural(p.pids.length, "process", "processes")}`);
  return [head, ...body(c, p, options, p.note)].join("\n");
}

/** A window as "12:00–13:00 UTC", with dates when it does not sit within today (UTC). */
export function formatWindow(from: Date, until: Date, now = new Date()): string {
  const iso = (d: Date) => d.toISOString();
  const clock = (d: Date) => iso(d).slice(11, 16);
  const day = (d: Date) => iso(d).slice(0, 10);
  const today = day(now);
  if (day(from) === today && day(until) === today) return `${clock(from)}–${clock(until)} UTC`;
  return `${day(from)} ${clock(from)}–${day(until) === day(from) ? "" : `${day(until)} `}${clock(until)} UTC`;
}

/** The colony's note without what the header already says (minutes and rate). */
const extraNote = (note: string) =>
  note
    .split("; ")
    .filter((part) => part && !/^\d+ minutes? of the always-on profiler at/.test(part))
    .join("; ");

/** The header of a stored profile: the always-on rate, samples, minutes with data and the window. */
export function storedHeader(c: Colors, service: string, p: CpuProfile, minutes: number, window: { from: Date; until: Date }): string {
  return c.bold(`CPU profile of ${service}`) + c.dim(` (always-on, ${p.hz} Hz): ${samples(Number(p.totalSamples))} over ${plural(minutes, "minute")} (${formatWindow(window.from, window.until)})`);
}

/** `coral profile cpu --since`: the stored minutes merged, as the on-demand table. */
export function formatStoredProfile(res: QueryCpuProfileResponse, window: { from: Date; until: Date }, options: ProfileFormatOptions): string {
  const c = colors(options.color);
  const p = res.profile!;
  return [storedHeader(c, res.serviceName, p, res.minutes, window), ...body(c, p, options, extraNote(p.note))].join("\n");
}

const points = (d: number) => `${d > 0 ? "+" : d < 0 ? "−" : "±"}${Math.abs(d).toFixed(1)}`;

/** `coral profile cpu --since … --compare …`: both headers, then the functions whose self share moved most. */
export function formatProfileDiff(
  res: QueryCpuProfileResponse,
  windows: { window: { from: Date; until: Date }; baseline: { from: Date; until: Date } },
  rows: DiffRow[],
  options: ProfileFormatOptions & { more: number },
): string {
  const c = colors(options.color);
  const after = res.profile!;
  const before = res.baseline!;
  const lines = [
    storedHeader(c, res.serviceName, after, res.minutes, windows.window),
    c.dim(`  compared with ${samples(Number(before.totalSamples))} over ${plural(res.baselineMinutes, "minute")} (${formatWindow(windows.baseline.from, windows.baseline.until)})`),
  ];
  if (rows.length === 0) lines.push("", "No function's share of self time changed.");
  else {
    const pct = (n: number) => `${n.toFixed(1)}%`;
    const table = rows.map((r) => {
      const delta = points(r.delta);
      return [pct(r.beforePercent), pct(r.afterPercent), r.delta > 0 ? c.red(delta) : r.delta < 0 ? c.blue(delta) : delta, r.function + (r.kernel ? c.dim(" [k]") : ""), c.dim(r.module)];
    });
    lines.push("", ...columns(["BEFORE", "AFTER", "DELTA", "FUNCTION", "MODULE"], table));
    if (options.more > 0) lines.push(c.dim(`… ${options.more} more functions changed (--top ${options.top * 2}); DELTA is in percentage points of self time`));
    else lines.push(c.dim("DELTA: percentage points of self time (hotter first)"));
  }
  for (const [label, note] of [["", extraNote(after.note)], ["baseline: ", extraNote(before.note)]] as const) if (note) lines.push("", `${c.yellow("Note:")} ${label}${note}`);
  return lines.join("\n");
}
