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
