// Bounds of one `coral exec`: the CLI, the colony and the agents check the same.
export const execLimits = {
  defaultTimeoutMs: 30_000,
  maxTimeoutMs: 600_000,
  defaultOutputBytes: 1024 * 1024,
  maxOutputBytes: 16 * 1024 * 1024,
  maxArgs: 256,
  maxArgChars: 8192,
  maxArgvChars: 65_536,
} as const;

export interface ExecBounds {
  timeoutMs: number;
  maxOutputBytes: number;
}

/** The request's command and bounds with defaults; throws a message for a person when one is out of range. */
export function checkExecRequest(req: { argv: readonly string[]; timeoutMs: number; maxOutputBytes: bigint | number }): ExecBounds {
  if (req.argv.length === 0 || req.argv[0] === "") throw new Error("argv: a command is required, e.g. coral exec api -- ps aux");
  if (req.argv.length > execLimits.maxArgs) throw new Error(`argv: at most ${execLimits.maxArgs} arguments, got ${req.argv.length}`);
  let total = 0;
  for (const [i, arg] of req.argv.entries()) {
    if (arg.includes("\0")) throw new Error(`argv[${i}]: contains a NUL character`);
    if (arg.length > execLimits.maxArgChars) throw new Error(`argv[${i}]: at most ${execLimits.maxArgChars} characters, got ${arg.length}`);
    total += arg.length;
  }
  if (total > execLimits.maxArgvChars) throw new Error(`argv: at most ${execLimits.maxArgvChars} characters in all, got ${total}`);
  if (req.timeoutMs > execLimits.maxTimeoutMs) throw new Error(`timeout_ms: at most ${execLimits.maxTimeoutMs} (10 min), got ${req.timeoutMs}`);
  const output = Number(req.maxOutputBytes);
  if (output > execLimits.maxOutputBytes) throw new Error(`max_output_bytes: at most ${execLimits.maxOutputBytes} (16 MiB), got ${output}`);
  return { timeoutMs: req.timeoutMs || execLimits.defaultTimeoutMs, maxOutputBytes: output || execLimits.defaultOutputBytes };
}

/** Bounds of one `coral shell`. */
export const shellLimits = {
  defaultIdleMs: 15 * 60_000,
  defaultMaxDurationMs: 60 * 60_000,
  maxDurationMs: 24 * 60 * 60_000,
  maxInputBytes: 64 * 1024,
  maxCols: 1000,
  maxRows: 1000,
  /** Recorded terminal stream per session at most; the session ends when it is full (what is not recorded is not run). */
  maxRecordingBytes: 64 * 1024 * 1024,
} as const;

export interface ShellBounds {
  cols: number;
  rows: number;
  idleMs: number;
  maxDurationMs: number;
}

/** The size of a terminal; 0 means the default 80×24. */
export function checkTerminalSize(cols: number, rows: number): { cols: number; rows: number } {
  if (cols > shellLimits.maxCols || rows > shellLimits.maxRows) throw new Error(`terminal size: at most ${shellLimits.maxCols}×${shellLimits.maxRows}, got ${cols}×${rows}`);
  return { cols: cols || 80, rows: rows || 24 };
}

export function checkShellRequest(req: { cols: number; rows: number; idleTimeoutMs: number; maxDurationMs: number }): ShellBounds {
  const size = checkTerminalSize(req.cols, req.rows);
  for (const [name, v] of [["idle_timeout_ms", req.idleTimeoutMs], ["max_duration_ms", req.maxDurationMs]] as const)
    if (v > shellLimits.maxDurationMs) throw new Error(`${name}: at most ${shellLimits.maxDurationMs} (24 h), got ${v}`);
  return { ...size, idleMs: req.idleTimeoutMs || shellLimits.defaultIdleMs, maxDurationMs: req.maxDurationMs || shellLimits.defaultMaxDurationMs };
}
