// Parsers for CLI flags: each returns the value or throws commander's
// InvalidArgumentError, which prints the flag's usage.
import { InvalidArgumentError, Option } from "commander";
import { durationToString } from "@coral/common/duration";

export function parsePortOption(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535) throw new InvalidArgumentError("must be a port from 1 to 65535");
  return n;
}

/** A usage mistake found inside a command's action: printed, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * A duration flag whose default `--help` shows as a duration ("1h"), not as
 * the milliseconds (or seconds, `unitMs` 1000) the command works in.
 */
export function durationFlag<T>(flags: string, description: string, parse: (value: string) => T, defaultValue: number, unitMs = 1): Option {
  return new Option(flags, description).argParser(parse).default(defaultValue, durationToString(defaultValue * unitMs));
}
