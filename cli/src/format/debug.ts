// Live-debugging output: event lines as they stream, the end-of-session
// summary, the sessions table and the functions list.
import { timestampDate, timestampMs } from "@bufbuild/protobuf/wkt";
import type { FunctionEntry, UprobeEvent } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import type { DebugSession } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { debugSessionOutcome } from "@coral/proto";
import { clip, colors, columns, formatDuration, formatNumber, type FormatOptions } from "./text.ts";

const two = (n: number, w = 2) => String(n).padStart(w, "0");

/** "12:34:56.123" local time (UTC with utc). */
export function clockTime(ms: number, utc = false): string {
  const d = new Date(ms);
  return utc
    ? `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}.${two(d.getUTCMilliseconds(), 3)}`
    : `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${two(d.getMilliseconds(), 3)}`;
}

/** 0.0042 ms → "4.2µs", 22 ms → "22.0ms", 1500 ms → "1.50s". */
export function formatNs(ns: number): string {
  if (ns < 1_000_000) return `${(ns / 1000).toFixed(1)}µs`;
  if (ns < 1_000_000_000) return `${(ns / 1e6).toFixed(1)}ms`;
  return `${(ns / 1e9).toFixed(2)}s`;
}

/**
 * A call failed: in a Node session (runtime "node") when it threw or its
 * promise rejected (the agent records "!Name: message" in place of its
 * value; returned values never start with "!"), a negative return value
 * being a value like any other; elsewhere when it returned a negative
 * integer (the C convention: -1 or -errno), only known with --capture-return.
 */
export function isErrorReturn(e: UprobeEvent, runtime = ""): boolean {
  if (e.type !== "return") return false;
  return runtime === "node" ? e.returnValue.startsWith("!") : /^-\d+$/.test(e.returnValue);
}

export function formatEventLine(e: UprobeEvent, session: Pick<DebugSession, "slowThresholdMs" | "runtime">, options: FormatOptions): string[] {
  if (e.type === "log") return [formatLogLine(e, options)];
  if (e.type === "snapshot") return formatSnapshot(e, options);
  const c = colors(options.color);
  const at = `[${clockTime(e.timestamp ? timestampMs(e.timestamp) : 0, options.utc)}]`;
  const who = `pid=${e.pid} tid=${e.tid}${e.goroutine ? ` g=0x${BigInt(e.goroutine).toString(16)}` : ""}`;
  const args = e.args.length ? ` args=(${e.args.join(", ")})` : "";
  if (e.type === "entry") return [`${c.dim(at)} ${c.cyan("ENTRY ")}  ${who}${args}`];
  const ns = Number(e.durationNs);
  const slow = ns > session.slowThresholdMs * 1e6;
  const threw = session.runtime === "node" && isErrorReturn(e, session.runtime);
  const ret = e.returnValue && !threw ? ` ret=${e.returnValue}` : "";
  const lines = [`${c.dim(at)} ${c.green("RETURN")}  ${who} duration=${formatNs(ns)}${ret}${slow ? c.yellow(" ⚠️  SLOW") : ""}`];
  if (threw) lines.push(c.red(`  └─ error: threw ${e.returnValue.slice(1)}`));
  else if (isErrorReturn(e, session.runtime)) lines.push(c.red(`  └─ error: returned ${e.returnValue}`));
  return lines;
}

const eventTime = (e: UprobeEvent, utc?: boolean) => clockTime(e.timestamp ? timestampMs(e.timestamp) : 0, utc);

/** A logpoint's value: "12:34:56.123  4242  {id: 1}" ("!Error: …" values, the expression threw, in red). */
export function formatLogLine(e: UprobeEvent, options: FormatOptions): string {
  const c = colors(options.color);
  return `${c.dim(eventTime(e, options.utc))}  ${e.pid}  ${e.value.startsWith("!") ? c.red(e.value) : e.value}`;
}

/** A snapshot's names and values ({} when the value is not JSON: shown as it is). */
export function snapshotValues(e: Pick<UprobeEvent, "value">): Record<string, string> {
  try {
    const v = JSON.parse(e.value) as unknown;
    if (v && typeof v === "object" && !Array.isArray(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, String(x)]));
  } catch {
    // not JSON
  }
  return { value: e.value };
}

/** A snapshot: a heading line, then one indented "name = value" line per name, the names aligned. */
export function formatSnapshot(e: UprobeEvent, options: FormatOptions & { index?: number }): string[] {
  const c = colors(options.color);
  const values = Object.entries(snapshotValues(e));
  const width = Math.max(0, ...values.map(([k]) => k.length));
  return [
    `${c.dim(eventTime(e, options.utc))}  ${e.pid}  ${c.bold(`snapshot${options.index ? ` ${options.index}` : ""}`)}${values.length ? "" : " (no names in scope)"}`,
    ...values.map(([k, v]) => `    ${k.padEnd(width)} = ${v === "<uninitialized>" ? c.dim(v) : v}`),
  ];
}

/** The end of a logpoint or snapshot: how many records, lost, how it ended. */
export function formatLineSummary(session: DebugSession, records: number, options: FormatOptions): string {
  const c = colors(options.color);
  const what = session.kind === "snapshot" ? "Snapshots" : "Values";
  const lines = [c.bold("Summary:"), `  ${what} recorded: ${formatNumber(records)}${session.kind === "snapshot" ? ` of ${session.snapshotCount}` : ""}`];
  const lost = Number(session.summary?.lostEvents ?? 0);
  if (lost > 0) lines.push(c.yellow(`  Lost (over the per-second cap or the buffer): ${formatNumber(lost)}`));
  if (!runningStates.includes(session.state)) lines.push(`  Ended: ${sessionOutcome(session)}${session.reason ? ` (${session.reason})` : ""}`);
  return lines.join("\n");
}

/** What a session traces, as the sessions table shows it: the function, or "logpoint file:line". */
export function sessionTarget(s: Pick<DebugSession, "kind" | "functionName">): string {
  return s.kind === "logpoint" || s.kind === "snapshot" ? `${s.kind} ${s.functionName}` : s.functionName;
}

export interface EventStats {
  entries: number;
  calls: number;
  errors: number;
  slow: number;
  avgNs: number;
  p95Ns: number;
  p99Ns: number;
}

/** The calls' figures; `runtime` (the session's) says what an error is (isErrorReturn). */
export function eventStats(events: readonly UprobeEvent[], slowThresholdMs: number, runtime = ""): EventStats {
  const d = events.filter((e) => e.type === "return").map((e) => Number(e.durationNs));
  d.sort((a, b) => a - b);
  const pct = (p: number) => (d.length ? d[Math.min(d.length - 1, Math.ceil((p / 100) * d.length) - 1)]! : 0);
  return {
    entries: events.filter((e) => e.type === "entry").length,
    calls: d.length,
    errors: events.filter((e) => isErrorReturn(e, runtime)).length,
    slow: d.filter((x) => x > slowThresholdMs * 1e6).length,
    avgNs: d.length ? d.reduce((a, b) => a + b, 0) / d.length : 0,
    p95Ns: pct(95),
    p99Ns: pct(99),
  };
}

const pct = (n: number, of: number) => (of ? ` (${((100 * n) / of).toFixed(1)}%)` : "");

const runningStates = ["requested", "attaching", "active"];

export function formatSummary(session: DebugSession, stats: EventStats, options: FormatOptions): string {
  const c = colors(options.color);
  const lines = [c.bold("Summary:")];
  lines.push(`  Total calls: ${formatNumber(stats.calls)}`);
  if (stats.entries > stats.calls) lines.push(`  Calls still running at the end: ${formatNumber(stats.entries - stats.calls)}`);
  lines.push(`  Avg duration: ${formatNs(stats.avgNs)}`);
  lines.push(`  P95 duration: ${formatNs(stats.p95Ns)}`);
  lines.push(`  P99 duration: ${formatNs(stats.p99Ns)}`);
  lines.push(
    session.runtime === "node"
      ? `  Errors (threw or rejected): ${formatNumber(stats.errors)}${pct(stats.errors, stats.calls)}`
      : session.captureReturn
        ? `  Errors: ${formatNumber(stats.errors)}${pct(stats.errors, stats.calls)}`
        : "  Errors: not known (add --capture-return; a negative return value counts as an error)",
  );
  lines.push(`  Slow calls (>${session.slowThresholdMs}ms): ${formatNumber(stats.slow)}${pct(stats.slow, stats.calls)}`);
  const s = session.summary;
  if (s && s.processCount > 0) lines.push(`  Processes probed: ${formatNumber(s.processCount)}`);
  if (s?.note) lines.push(c.yellow(`  Note: ${s.note}`));
  if (s && Number(s.lostEvents) > 0) lines.push(c.yellow(`  Lost events (bpftrace buffer full): ${formatNumber(s.lostEvents)}`));
  if (session.sampleRate > 1) lines.push(`  Sampling: every ${session.sampleRate}th call was recorded`);
  if (!runningStates.includes(session.state)) lines.push(`  Ended: ${sessionOutcome(session)}${session.reason ? ` (${session.reason})` : ""}`);
  return lines.join("\n");
}

/** The session's state in words ("finished (duration reached)", "stopped by user", …), as the colony says it (or, from an older colony, as it would). */
export function sessionOutcome(s: DebugSession): string {
  return s.outcome || debugSessionOutcome(s);
}

export function formatSessions(sessions: readonly DebugSession[], options: FormatOptions & { now?: number }): string {
  const c = colors(options.color);
  if (sessions.length === 0) return "No debug sessions. Start one with: coral debug attach <service> --function <name>";
  const now = options.now ?? Date.now();
  const ago = (ms: number) => `${formatDuration(Math.max(0, Math.round((now - ms) / 1000)))} ago`;
  const rows = sessions.map((s) => {
    const created = s.createdAt ? timestampMs(s.createdAt) : now;
    const expires = s.expiresAt ? timestampMs(s.expiresAt) : null;
    const running = runningStates.includes(s.state);
    const left = running && expires ? formatDuration(Math.max(0, Math.round((expires - now) / 1000))) : "-";
    // Logpoints and snapshots: their records.
    const calls = s.summary ? formatNumber(s.kind === "logpoint" || s.kind === "snapshot" ? s.summary.entries : s.summary.calls) : "-";
    const tone = s.state === "failed" ? c.red : s.state === "active" ? c.green : (x: string) => x;
    // Why an ended session ended (e.g. a collector its restarted agent could not resume).
    const why = running ? "-" : s.reason || "-";
    return [s.sessionId, s.serviceName, sessionTarget(s), tone(sessionOutcome(s)), ago(created), left, calls, s.requestedBy, why];
  });
  return columns(["SESSION", "SERVICE", "FUNCTION", "STATE", "STARTED", "EXPIRES IN", "CALLS", "BY", "WHY IT ENDED"].map((h) => c.bold(h)), rows).join("\n");
}

/** The terminal's width, or 100 when output is not a terminal. */
export function terminalWidth(stream: { columns?: number; isTTY?: boolean } = process.stdout): number {
  return stream.isTTY && stream.columns && stream.columns > 20 ? stream.columns : 100;
}

/**
 * The functions table, every line at most `width` characters: long names are
 * cut with an ellipsis (--json has them whole, --pattern narrows the list).
 */
export function formatFunctions(
  list: readonly FunctionEntry[],
  meta: { total: number; pid: number; isGo: boolean; service: string; runtime?: string },
  options: FormatOptions & { width?: number },
): string {
  const c = colors(options.color);
  if (list.length === 0) return `No functions of ${meta.service} (pid ${meta.pid}) match.`;
  if (meta.runtime === "node") {
    // JavaScript functions: where they are written, not addresses.
    const head = `${meta.service}: pid ${meta.pid} (Node), ${formatNumber(meta.total)} JavaScript function(s) match` + (meta.total > list.length ? `, showing ${list.length}` : "");
    const rows = list.map((f) => [f.name, `${f.file}:${f.line}`, f.isAsync ? "async" : ""]);
    const table = columns(["FUNCTION", "LOCATION", ""].map((h) => c.bold(h)), rows, 3).map((line) => line.trimEnd());
    return [head, "", ...table, "", "Attach with: coral debug attach <service> -f <name or file:line>"].join("\n");
  }
  const width = options.width ?? terminalWidth();
  const gap = 3;
  const addresses = list.map((f) => `0x${f.address.toString(16)}`);
  const sizes = list.map((f) => String(f.size));
  const fixed = Math.max(7, ...addresses.map((a) => a.length)) + Math.max(4, ...sizes.map((x) => x.length)) + 2 * gap;
  const withDemangled = list.some((f) => f.demangled && f.demangled !== f.name);
  // What is left for the names: shared between FUNCTION and DEMANGLED, a column that needs less leaving the rest to the other.
  const room = Math.max(withDemangled ? 2 * 12 + gap : 12, width - fixed);
  const longest = (texts: string[]) => Math.max(0, ...texts.map((t) => [...t].length));
  const nameNeed = Math.max(8, longest(list.map((f) => f.name)));
  let nameWidth = room;
  let demangledWidth = 0;
  if (withDemangled) {
    const demangledNeed = Math.max(9, longest(list.map((f) => f.demangled || "")));
    const half = Math.floor((room - gap) / 2);
    nameWidth = nameNeed <= half ? nameNeed : demangledNeed <= half ? room - gap - demangledNeed : half;
    demangledWidth = room - gap - nameWidth;
  }
  let clipped = false;
  const cut = (text: string, max: number) => {
    const out = clip(text, max);
    if (out !== text) clipped = true;
    return out;
  };
  const rows = list.map((f, i) => [
    cut(f.name, nameWidth),
    ...(withDemangled ? [cut(f.demangled || "", demangledWidth)] : []),
    addresses[i]!,
    sizes[i]!,
  ]);
  const head = [`${meta.service}: pid ${meta.pid}${meta.isGo ? " (Go)" : ""}, ${formatNumber(meta.total)} function(s) match` + (meta.total > list.length ? `, showing ${list.length}` : "")];
  const headers = ["FUNCTION", ...(withDemangled ? ["DEMANGLED"] : []), "ADDRESS", "SIZE"];
  const table = columns(headers.map((h) => c.bold(h)), rows, gap).map((line) => line.trimEnd());
  const hint = clipped ? ["", "(names cut to fit: --json prints them whole, --pattern narrows)"] : [];
  return [...head, "", ...table, ...hint].join("\n");
}

export function sessionStartedAt(s: DebugSession): Date | undefined {
  return s.startedAt ? timestampDate(s.startedAt) : undefined;
}
