// Parsers for CLI flags: each returns the value or throws commander's
// InvalidArgumentError, which prints the flag's usage.
import { InvalidArgumentError, Option } from "commander";
import { durationToString, parseDuration } from "@coral/common/duration";

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

/** An integer flag from `min` to `max`. */
export function intOption(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

/** A duration flag from 1 s to `maxMs`, in ms; `range` and `examples` are the words of its errors. */
export function durationRangeOption(maxMs: number, range: string, examples: string) {
  return (value: string): number => {
    const parsed = parseDuration(value);
    if ("error" in parsed) throw new InvalidArgumentError(`${parsed.error}; use e.g. ${examples}`);
    if (parsed.ms < 1000 || parsed.ms > maxMs) throw new InvalidArgumentError(range);
    return parsed.ms;
  };
}
