// Live debugging in the page, without the DOM: the start form's checks (the
// limits of `coral debug attach`), a session's calls as they stream (entries
// paired with their returns), their percentiles and a log2 latency histogram.

/** The limits of `coral debug attach` (and of the colony behind it). */
export const debugLimits = {
  minDurationMs: 1000,
  maxDurationMs: 600_000,
  maxArgs: 6,
  maxSampleRate: 1_000_000,
  maxEvents: 1_000_000,
  minSlowMs: 1,
  /** The colony's cap on slow_threshold_ms (the CLI leaves it to the colony). */
  maxSlowMs: 3_600_000,
  maxFunctionLength: 1024,
} as const;

/** The start form as typed: text, checked by checkStartForm. */
export interface StartForm {
  service: string;
  functionName: string;
  duration: string;
  captureArgs: string;
  captureReturn: boolean;
  slow: string;
  sampleRate: string;
  maxEvents: string;
}

/** The CLI's defaults: 1m, timings only, every call, 10,000 events, slow above 100ms. */
export const defaultStartForm: StartForm = {
  service: "",
  functionName: "",
  duration: "1m",
  captureArgs: "0",
  captureReturn: false,
  slow: "100ms",
  sampleRate: "1",
  maxEvents: "10000",
};

/** The fields of AttachUprobeRequest the form fills. */
export interface AttachInit {
  serviceName: string;
  functionName: string;
  durationMs: number;
  captureArgs: number;
  captureReturn: boolean;
  sampleRate: number;
  maxEvents: number;
  slowThresholdMs: number;
}

export type StartFormErrors = Partial<Record<keyof StartForm, string>>;
export type StartCheck = { request: AttachInit } | { errors: StartFormErrors };

const unitMs = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000, y: 365 * 86_400_000 } as const;

/**
 * A duration as the CLI reads it ("90s", "5m", "1h30m", "250ms"): the same
 * grammar as @coral/common's parseDuration (the dashboard imports only
 * @coral/proto; tests/dashboard/debug-logic.test.ts keeps the two in step).
 */
export function parseDurationText(text: string): { ms: number } | { error: string } {
  const value = text.trim();
  if (value === "") return { error: "empty duration" };
  if (value.startsWith("-")) return { error: `negative duration "${text}" is not allowed` };
  if (!/^(?:\d+(?:\.\d+)?[a-zA-Z]*)+$/.test(value)) return { error: `"${text}" is not a duration` };
  const part = /(\d+(?:\.\d+)?)([a-zA-Z]*)/y;
  let total = 0;
  while (part.lastIndex < value.length) {
    const [, amount, unit] = part.exec(value) as unknown as [string, string, string];
    if (unit === "") return { error: `"${text}" has no unit (${Object.keys(unitMs).join(", ")})` };
    if (!(unit in unitMs)) return { error: `unknown unit "${unit}" in "${text}" (use ${Object.keys(unitMs).join(", ")})` };
    total += Number(amount) * unitMs[unit as keyof typeof unitMs];
  }
  if (!Number.isSafeInteger(Math.round(total))) return { error: `duration "${text}" is too large` };
  return { ms: Math.round(total) };
}

function intIn(text: string, min: number, max: number): number | string {
  const value = text.trim();
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) return `must be an integer from ${min} to ${max.toLocaleString("en-US")}`;
  return n;
}

/** The form as an AttachUprobe request, or what is wrong with each field (the words of the CLI). */
export function checkStartForm(form: StartForm): StartCheck {
  const errors: StartFormErrors = {};
  const service = form.service.trim();
  const fn = form.functionName.trim();
  if (!service) errors.service = "choose a component";
  if (!fn) errors.functionName = "name a function, e.g. validate_card or main.ValidateCard";
  else if (fn.length > debugLimits.maxFunctionLength || /[\s\0]/.test(fn)) errors.functionName = "must be one symbol name without spaces";

  let durationMs = 0;
  const duration = parseDurationText(form.duration);
  if ("error" in duration) errors.duration = `${duration.error}; use e.g. 30s, 5m`;
  else if (duration.ms < debugLimits.minDurationMs || duration.ms > debugLimits.maxDurationMs) errors.duration = "must be from 1s to 10m (the agent's hard limit)";
  else durationMs = duration.ms;

  let slowThresholdMs = 0;
  const slow = parseDurationText(form.slow);
  if ("error" in slow || slow.ms < debugLimits.minSlowMs) errors.slow = "must be a duration like 100ms or 1s";
  else if (slow.ms > debugLimits.maxSlowMs) errors.slow = "must be at most 1h";
  else slowThresholdMs = slow.ms;

  const captureArgs = intIn(form.captureArgs, 0, debugLimits.maxArgs);
  if (typeof captureArgs === "string") errors.captureArgs = captureArgs;
  const sampleRate = intIn(form.sampleRate, 1, debugLimits.maxSampleRate);
  if (typeof sampleRate === "string") errors.sampleRate = sampleRate;
  const maxEvents = intIn(form.maxEvents, 1, debugLimits.maxEvents);
  if (typeof maxEvents === "string") errors.maxEvents = maxEvents;

  if (Object.keys(errors).length > 0) return { errors };
  return {
    request: {
      serviceName: service,
      functionName: fn,
      durationMs,
      captureArgs: captureArgs as number,
      captureReturn: form.captureReturn,
      sampleRate: sampleRate as number,
      maxEvents: maxEvents as number,
      slowThresholdMs,
    },
  };
}

/** A debug session's states, in the order the colony moves through them. */
const stateRank: Readonly<Record<string, number>> = { requested: 0, attaching: 1, active: 2, detaching: 3, completed: 4, expired: 4, failed: 4 };

/** Whether a session has ended (completed, expired, failed). */
export function isSessionOver(state: string): boolean {
  return stateRank[state] === 4;
}

/**
 * Of two answers about one session (a stream message, a fetch, a detach),
 * the one to show: states only move forward, so an answer that arrived late
 * never takes an ended session back to running.
 */
export function laterSession<S extends { state: string }>(current: S | undefined, next: S): S {
  if (!current) return next;
  return (stateRank[next.state] ?? -1) >= (stateRank[current.state] ?? -1) ? next : current;
}

/** The state filters of the sessions list: the API's states and the words it also takes. */
export const sessionFilters = [
  { id: "", label: "all" },
  { id: "active", label: "active" },
  { id: "finished", label: "finished" },
  { id: "stopped", label: "stopped" },
  { id: "failed", label: "failed" },
] as const;

/** The filter named in the URL (?state=), or all. */
export function sessionFilter(id: string | null | undefined) {
  return sessionFilters.find((f) => f.id === id) ?? sessionFilters[0];
}

/** 4200 → "4.2µs", 22_000_000 → "22.0ms", 1.5e9 → "1.50s": the CLI's words. */
export function formatNs(ns: number | bigint): string {
  const n = Number(ns);
  if (!Number.isFinite(n)) return "–";
  if (n < 1_000_000) return `${(n / 1000).toFixed(1)}µs`;
  if (n < 1_000_000_000) return `${(n / 1e6).toFixed(1)}ms`;
  return `${(n / 1e9).toFixed(2)}s`;
}

/** The value at percentile `p` (nearest rank) of ascending `sorted`, 0 when empty; as the CLI computes it. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export interface LatencyStats {
  calls: number;
  avgNs: number;
  p50Ns: number;
  p95Ns: number;
  p99Ns: number;
  maxNs: number;
  slowCalls: number;
}

/** Count, mean, p50/p95/p99, max and calls slower than `slowThresholdMs` of call durations (ns). */
export function latencyStats(durationsNs: readonly number[], slowThresholdMs: number): LatencyStats {
  const sorted = [...durationsNs].sort((a, b) => a - b);
  const slowNs = slowThresholdMs * 1e6;
  let sum = 0;
  let slowCalls = 0;
  for (const d of sorted) {
    sum += d;
    if (d > slowNs) slowCalls++;
  }
  return {
    calls: sorted.length,
    avgNs: sorted.length ? sum / sorted.length : 0,
    p50Ns: percentile(sorted, 50),
    p95Ns: percentile(sorted, 95),
    p99Ns: percentile(sorted, 99),
    maxNs: sorted.length ? sorted[sorted.length - 1]! : 0,
    slowCalls,
  };
}

/** The log2 bucket of a duration: k such that 2^k ≤ ns < 2^(k+1) (0 for anything under 2 ns). */
export function log2Bucket(ns: number): number {
  if (!(ns >= 2)) return 0;
  let k = Math.floor(Math.log2(ns));
  if (2 ** k > ns) k--;
  else if (2 ** (k + 1) <= ns) k++;
  return k;
}

export interface LatencyHistogram {
  /** Each bucket's lower bound in ns (a power of two), ascending and contiguous. */
  lowerNs: number[];
  counts: number[];
  /** "1.0µs–2.0µs": what each bucket holds. */
  labels: string[];
}

/** Adds durations (ns) to per-bucket counts (bucket → count). */
export function countLog2Buckets(durationsNs: Iterable<number>, counts: Map<number, number> = new Map()): Map<number, number> {
  for (const d of durationsNs) {
    const k = log2Bucket(d);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

/** The histogram of bucket counts: every bucket from the fastest to the slowest one seen, empty ones as 0. */
export function histogramOf(counts: ReadonlyMap<number, number>): LatencyHistogram {
  const keys = [...counts.keys()];
  if (keys.length === 0) return { lowerNs: [], counts: [], labels: [] };
  const lo = Math.min(...keys);
  const hi = Math.max(...keys);
  const out: LatencyHistogram = { lowerNs: [], counts: [], labels: [] };
  for (let k = lo; k <= hi; k++) {
    out.lowerNs.push(2 ** k);
    out.counts.push(counts.get(k) ?? 0);
    out.labels.push(`${formatNs(2 ** k)}–${formatNs(2 ** (k + 1))}`);
  }
  return out;
}

/** The log2 latency histogram of call durations (ns). */
export function log2Histogram(durationsNs: Iterable<number>): LatencyHistogram {
  return histogramOf(countLog2Buckets(durationsNs));
}

interface Ts {
  seconds: bigint;
  nanos: number;
}

/** What the page reads of an UprobeEvent. */
export interface UprobeEventLike {
  seq: bigint;
  timestamp?: Ts;
  type: string;
  pid: number;
  tid: number;
  durationNs: bigint;
  args: readonly string[];
  returnValue: string;
  goroutine: string;
  /** log: a logpoint's value; snapshot: a JSON object name → value (absent from older colonies). */
  value?: string;
}

/** One logpoint value or snapshot, as the session view lists them. */
export interface LineRecord {
  seq: bigint;
  atMs: number;
  pid: number;
  /** A logpoint's value ("!Error: …" when the expression threw). */
  value: string;
  /** A snapshot's names and values, in order. */
  values?: [string, string][];
}

/** A snapshot event's names and values ([["value", text]] when it is not a JSON object). */
export function snapshotEntries(value: string): [string, string][] {
  try {
    const v = JSON.parse(value) as unknown;
    if (v && typeof v === "object" && !Array.isArray(v)) return Object.entries(v).map(([k, x]) => [k, String(x)]);
  } catch {
    // not JSON
  }
  return [["value", value]];
}

/** One finished call: its entry (time, arguments) and its return (duration, value). */
export interface DebugCall {
  seq: bigint;
  /** When it started (the entry's time; the return's when the entry was not seen), ms. */
  atMs: number;
  pid: number;
  tid: number;
  durationNs: number;
  args: readonly string[];
  returnValue: string;
}

const msOf = (t: Ts | undefined) => (t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : 0);

/**
 * A session's calls as its events stream in: every duration (for the
 * percentiles and the histogram), the latest `keep` calls with their
 * arguments, and the last sequence number (to resume a broken stream with
 * after_seq). Events already seen are ignored, so a resumed stream that
 * repeats some counts nothing twice.
 */
export class CallLog {
  lastSeq = 0n;
  entries = 0;
  readonly durationsNs: number[] = [];
  readonly buckets = new Map<number, number>();
  /** Newest first. */
  recent: DebugCall[] = [];
  /** Logpoints and snapshots: how many records, and the latest `keep`, newest first. */
  records = 0;
  recentRecords: LineRecord[] = [];
  /** Entries waiting for their return, per thread (or goroutine): a stack, as calls nest. */
  private readonly open = new Map<string, UprobeEventLike[]>();

  constructor(readonly keep = 100) {}

  get calls(): number {
    return this.durationsNs.length;
  }

  add(events: readonly UprobeEventLike[]): void {
    const fresh: DebugCall[] = [];
    const lines: LineRecord[] = [];
    for (const e of events) {
      if (e.seq <= this.lastSeq) continue;
      this.lastSeq = e.seq;
      if (e.type === "log" || e.type === "snapshot") {
        this.records++;
        const value = e.value ?? "";
        lines.push({ seq: e.seq, atMs: msOf(e.timestamp), pid: e.pid, value, ...(e.type === "snapshot" ? { values: snapshotEntries(value) } : {}) });
        continue;
      }
      const key = `${e.pid}/${e.goroutine || e.tid}`;
      if (e.type === "entry") {
        this.entries++;
        const stack = this.open.get(key) ?? [];
        stack.push(e);
        // A thread whose returns are never seen must not grow without end.
        if (stack.length > 256) stack.shift();
        this.open.set(key, stack);
        continue;
      }
      if (e.type !== "return") continue;
      const entry = this.open.get(key)?.pop();
      const durationNs = Number(e.durationNs);
      this.durationsNs.push(durationNs);
      countLog2Buckets([durationNs], this.buckets);
      fresh.push({ seq: e.seq, atMs: msOf(entry?.timestamp ?? e.timestamp), pid: e.pid, tid: e.tid, durationNs, args: entry?.args ?? [], returnValue: e.returnValue });
    }
    if (fresh.length) this.recent = [...fresh.slice(-this.keep).reverse(), ...this.recent].slice(0, this.keep);
    if (lines.length) this.recentRecords = [...lines.slice(-this.keep).reverse(), ...this.recentRecords].slice(0, this.keep);
  }

  stats(slowThresholdMs: number): LatencyStats {
    return latencyStats(this.durationsNs, slowThresholdMs);
  }

  histogram(): LatencyHistogram {
    return histogramOf(this.buckets);
  }
}

/** "12:34:56.123" local time. */
export function formatClock(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}
