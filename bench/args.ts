// Option checks shared by the benchmarks' command lines.

/** A --name option that must be a positive whole number. */
export function positive(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive whole number (got ${value})`);
  return n;
}
