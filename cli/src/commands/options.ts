// Parsers for CLI flags: each returns the value or throws commander's
// InvalidArgumentError, which prints the flag's usage.
import { InvalidArgumentError } from "commander";

export function parsePortOption(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535) throw new InvalidArgumentError("must be a port from 1 to 65535");
  return n;
}

/** A usage mistake found inside a command's action: printed, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}
