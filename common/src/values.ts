// Value checks and conversions that every Coral store shares, whatever the
// database (the colony's DuckDB, the agent's SQLite): no driver imported here.

/** Throws a TypeError unless value is a valid Date; returns it. */
export function checkDate(value: unknown, what: string): Date {
  if (!(value instanceof Date) || !Number.isFinite(value.getTime())) {
    throw new TypeError(`${what} must be a valid Date, got ${value instanceof Date ? "Invalid Date" : typeof value}`);
  }
  return value;
}

export function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  if (v === null || v === undefined) return 0;
  return Number(v);
}

export function str(v: unknown): string {
  return v === null || v === undefined ? "" : String(v);
}

export function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : String(v);
}

/** A JSON column's text as an object (null for SQL NULL). */
export function jsonOrNull<T>(v: unknown): T | null {
  if (v === null || v === undefined) return null;
  return JSON.parse(String(v)) as T;
}
