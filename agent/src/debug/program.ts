// Fills the bpftrace templates in bpf/ for one function of a service's
// process set (the listener and its descendants).
// Only integers and fixed fragments are interpolated: the function is
// attached by the address found in the process's own ELF symbol table.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { closeMatches, validPid, type FunctionInfo, type FunctionList } from "./elf.ts";

export const BPF_DIR = fileURLToPath(new URL("../../../bpf/", import.meta.url));

export const LIMITS = {
  defaultDurationMs: 60_000,
  maxDurationMs: 600_000,
  defaultMaxEvents: 10_000,
  maxMaxEvents: 1_000_000,
  maxArgs: 6,
  maxSampleRate: 1_000_000,
  defaultMaxSessions: 10,
} as const;

export type DebugErrorCode =
  | "function_not_found"
  | "invalid_option"
  | "limit_reached"
  | "bpftrace_missing"
  | "no_permission"
  | "process_not_found"
  | "unsupported"
  | "bpftrace_failed"
  | "not_found";

export class DebugError extends Error {
  constructor(
    readonly code: DebugErrorCode,
    message: string,
    readonly suggestions: string[] = [],
  ) {
    super(message);
    this.name = "DebugError";
  }
}

/** The most pids a program is seeded with (bpftrace's default map size is 4096). */
export const MAX_SEED_PIDS = 2048;

/** Above pid_max (at most 2^22), so kill(-token, 0) reaches no process group. */
export function newDrainToken(): number {
  return 0x40_0000 + 1 + Math.floor(Math.random() * 0x3f00_0000);
}

export interface ProgramOptions {
  /** The listener: its /proc/<pid>/exe is where the probes attach. */
  pid: number;
  /** Every pid of the service's process set (default [pid]); children forked later are followed. */
  pids?: readonly number[];
  /** See newDrainToken(); a fresh one when absent. */
  drainToken?: number;
  /** Exact ELF symbol name; must be in `functions`. */
  symbol: string;
  /** listFunctions() of the same process. */
  functions: FunctionList;
  /** Capture this many integer arguments (0..6). true = 6. */
  captureArgs?: number | boolean;
  captureReturn?: boolean;
  /** Emit every Nth call (1 = all). */
  sampleRate?: number;
  maxEvents?: number;
  durationMs?: number;
}

export interface GeneratedProgram {
  source: string;
  template: "uprobe-latency" | "uprobe-entry-go";
  function: FunctionInfo;
  isGo: boolean;
  argCount: number;
  captureReturn: boolean;
  sampleRate: number;
  maxEvents: number;
  durationMs: number;
  /** The process set the program was seeded with, listener first. */
  pids: number[];
  drainToken: number;
}

const templateCache = new Map<string, string>();
function template(name: string): string {
  let t = templateCache.get(name);
  if (t === undefined) {
    t = readFileSync(`${BPF_DIR}${name}.bt.tmpl`, "utf8");
    templateCache.set(name, t);
  }
  return t;
}

const SYSV_ARGS = ["arg0", "arg1", "arg2", "arg3", "arg4", "arg5"];
const GO_ARGS = ['reg("ax")', 'reg("bx")', 'reg("cx")', 'reg("di")', 'reg("si")', 'reg("r8")'];

/** Validates the options and returns the filled-in bpftrace program. */
export function generateProgram(opts: ProgramOptions): GeneratedProgram {
  const pid = validPid(opts.pid);
  const matches = opts.functions.functions.filter((f) => f.name === opts.symbol);
  const fn = matches[0];
  if (!fn) {
    const names = opts.functions.functions.map((f) => f.name);
    const close = closeMatches(opts.symbol, names);
    throw new DebugError(
      "function_not_found",
      `function ${JSON.stringify(opts.symbol)} not found in ${opts.functions.binary}` +
        (close.length ? ` (close matches: ${close.join(", ")})` : ""),
      close,
    );
  }
  if (matches.length > 1 && new Set(matches.map((m) => m.address)).size > 1) {
    throw new DebugError("unsupported", `symbol ${opts.symbol} is ambiguous (${matches.length} addresses)`);
  }
  const argCount = opts.captureArgs === true ? LIMITS.maxArgs : opts.captureArgs === false ? 0 : (opts.captureArgs ?? 0);
  intIn("captureArgs", argCount, 0, LIMITS.maxArgs);
  const sampleRate = opts.sampleRate ?? 1;
  intIn("sampleRate", sampleRate, 1, LIMITS.maxSampleRate);
  const maxEvents = opts.maxEvents ?? LIMITS.defaultMaxEvents;
  intIn("maxEvents", maxEvents, 1, LIMITS.maxMaxEvents);
  const durationMs = opts.durationMs ?? LIMITS.defaultDurationMs;
  intIn("durationMs", durationMs, 1, LIMITS.maxDurationMs);
  const captureReturn = opts.captureReturn ?? false;
  const isGo = opts.functions.isGo;
  if (isGo && captureReturn) {
    throw new DebugError(
      "unsupported",
      "return capture on Go functions needs uprobes on RET instructions (uretprobes crash Go); not available with this bpftrace",
    );
  }
  if (opts.functions.machine !== 62) {
    throw new DebugError("unsupported", `only x86-64 targets are supported (ELF machine ${opts.functions.machine})`);
  }

  const pids = [...new Set([pid, ...(opts.pids ?? []).map(validPid)])].slice(0, MAX_SEED_PIDS);
  const drainToken = opts.drainToken ?? newDrainToken();
  intIn("drainToken", drainToken, 0x40_0001, 0x7fff_ffff);
  const argExprs = (isGo ? GO_ARGS : SYSV_ARGS).slice(0, argCount);
  const values: Record<string, string> = {
    PID: String(pid),
    SEED: pids.map((p) => `  @pids[${p}] = 1;`).join("\n"),
    DRAIN_KEY: String(0x1_0000_0000 - drainToken),
    ADDR: `0x${fn.address.toString(16)}`,
    SAMPLE: String(sampleRate),
    MAX_EVENTS: String(maxEvents),
    // The kernel-side hard stop comes a second after the agent's own deadline,
    // which drains first (an expired session keeps the returns of its last calls).
    DURATION_S: String(Math.ceil(durationMs / 1000) + 1),
    ARGS_FMT: argCount ? `,\\"args\\":[${argExprs.map(() => "%ld").join(",")}]` : "",
    ARGS_VALS: argExprs.map((a) => `, ${a}`).join(""),
    RET_FMT: captureReturn ? `,\\"ret\\":%ld` : "",
    RET_VAL: captureReturn ? ", retval" : "",
  };
  const name = isGo ? "uprobe-entry-go" : "uprobe-latency";
  const source = template(name).replace(/\{\{([A-Z_]+)\}\}/g, (_m, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`template ${name}: unknown placeholder ${key}`);
    return v;
  });
  return { source, template: name, function: fn, isGo, argCount, captureReturn, sampleRate, maxEvents, durationMs, pids, drainToken };
}

function intIn(name: string, v: number, min: number, max: number): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new DebugError(
      v > max ? "limit_reached" : "invalid_option",
      `${name} must be an integer in [${min}, ${max}], got ${String(v)}`,
    );
  }
}
