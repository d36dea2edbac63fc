// The CPU profile's limits, the request's parameters checked against them,
// and the bpftrace program (bpf/cpu-profile.bt.tmpl) filled in with integers
// only: the rate, the duration and the pids of the process set.
import { readFileSync } from "node:fs";
import { BPF_DIR } from "../debug/program.ts";

export const PROFILE_LIMITS = {
  minHz: 1,
  maxHz: 1000,
  defaultHz: 99,
  minDurationMs: 1,
  maxDurationMs: 300_000,
  defaultDurationMs: 30_000,
  /** The most pids the program is seeded with (bpftrace's maps hold 4096 keys by default; forks need room too). */
  maxSeedPids: 2048,
} as const;

export interface ProfileParameters {
  hz: number;
  durationMs: number;
}

/**
 * The request's rate and duration with defaults for 0, or what is wrong with
 * them (the field named as in the proto), for the caller to turn into its
 * own error.
 */
export function profileParameters(req: { hz?: number; durationMs?: number }): ProfileParameters | { error: string } {
  const hz = req.hz || PROFILE_LIMITS.defaultHz;
  const durationMs = req.durationMs || PROFILE_LIMITS.defaultDurationMs;
  if (!Number.isSafeInteger(hz) || hz < PROFILE_LIMITS.minHz || hz > PROFILE_LIMITS.maxHz)
    return { error: `hz: must be from ${PROFILE_LIMITS.minHz} to ${PROFILE_LIMITS.maxHz} samples per second (got ${hz})` };
  if (!Number.isSafeInteger(durationMs) || durationMs < PROFILE_LIMITS.minDurationMs)
    return { error: `duration_ms: must be a whole number of milliseconds, at least 1 (got ${durationMs})` };
  if (durationMs > PROFILE_LIMITS.maxDurationMs)
    return { error: `duration_ms: at most ${PROFILE_LIMITS.maxDurationMs / 60_000} minutes (got ${Math.round(durationMs / 1000)}s)` };
  return { hz, durationMs };
}

export interface ProfileProgram {
  source: string;
  hz: number;
  durationMs: number;
  /** The pids the program was seeded with, in the order given. */
  pids: number[];
}

const templates = new Map<string, string>();

/** The program for `pids` (at least one) at `hz` for `durationMs`; throws on anything but valid integers. */
export function profileProgram(opts: { pids: readonly number[]; hz: number; durationMs: number }): ProfileProgram {
  return fillTemplate("cpu-profile.bt.tmpl", opts, {});
}

export const CONTINUOUS_LIMITS = {
  defaultHz: 19,
  defaultWindowMs: 60_000,
  minWindowMs: 100,
  maxWindowMs: 600_000,
  /** A program's lifetime: the agent starts a new one after it, which bounds what bpftrace's stack maps hold. */
  defaultLifetimeMs: 3_600_000,
} as const;

/**
 * The always-on program (bpf/cpu-profile-continuous.bt.tmpl): the same
 * sampling, dumped and cleared every `windowMs`, for `lifetimeMs` (its
 * durationMs).
 */
export function continuousProfileProgram(opts: { pids: readonly number[]; hz: number; windowMs: number; lifetimeMs: number }): ProfileProgram & { windowMs: number } {
  const windowMs = opts.windowMs;
  if (!Number.isSafeInteger(windowMs) || windowMs < CONTINUOUS_LIMITS.minWindowMs || windowMs > CONTINUOUS_LIMITS.maxWindowMs)
    throw new RangeError(`window: must be from ${CONTINUOUS_LIMITS.minWindowMs} ms to ${CONTINUOUS_LIMITS.maxWindowMs / 60_000} minutes (got ${String(windowMs)})`);
  // The lifetime is bounded by how long any one program may run, not by the on-demand limit.
  const lifetimeMs = Math.max(windowMs, Math.min(opts.lifetimeMs, 24 * 3_600_000));
  if (!Number.isSafeInteger(lifetimeMs)) throw new RangeError(`invalid lifetime ${String(opts.lifetimeMs)}`);
  const program = fillTemplate("cpu-profile-continuous.bt.tmpl", { pids: opts.pids, hz: opts.hz, durationMs: PROFILE_LIMITS.defaultDurationMs }, { WINDOW_MS: String(windowMs), DURATION_MS: String(lifetimeMs) });
  return { ...program, durationMs: lifetimeMs, windowMs };
}

function fillTemplate(file: string, opts: { pids: readonly number[]; hz: number; durationMs: number }, extra: Record<string, string>): ProfileProgram {
  const params = profileParameters(opts);
  if ("error" in params) throw new RangeError(params.error);
  const pids = [...new Set(opts.pids)].slice(0, PROFILE_LIMITS.maxSeedPids);
  for (const p of pids) if (!Number.isSafeInteger(p) || p <= 0 || p > 0x40_0000) throw new RangeError(`invalid pid ${String(p)}`);
  if (pids.length === 0) throw new RangeError("no process to profile");
  let template = templates.get(file);
  if (template === undefined) templates.set(file, (template = readFileSync(`${BPF_DIR}${file}`, "utf8")));
  const values: Record<string, string> = {
    SEED: pids.map((p) => `  @pids[${p}] = 1;`).join("\n"),
    HZ: String(params.hz),
    DURATION_MS: String(params.durationMs),
    ...extra,
  };
  const source = template.replace(/\{\{([A-Z_]+)\}\}/g, (_m, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`${file}: unknown placeholder ${key}`);
    return v;
  });
  return { source, hz: params.hz, durationMs: params.durationMs, pids };
}
