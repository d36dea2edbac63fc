// Small SQL helpers for the insights tables (the store's own helpers are
// internal to its folder). Connections come from ColonyStore.read/write.
import { DuckDBTimestampValue, type DuckDBConnection, type DuckDBValue } from "@duckdb/node-api";

export type Conn = DuckDBConnection;
export type Row = Record<string, unknown>;

export function ts(date: Date): DuckDBTimestampValue {
  const ms = date.getTime();
  if (!Number.isFinite(ms)) throw new TypeError("invalid Date");
  return new DuckDBTimestampValue(BigInt(Math.round(ms)) * 1000n);
}

export async function all(conn: Conn, sql: string, params: DuckDBValue[] = []): Promise<Row[]> {
  const reader = await conn.runAndReadAll(sql, params);
  return reader.getRowObjectsJS() as Row[];
}

export async function exec(conn: Conn, sql: string, params: DuckDBValue[] = []): Promise<number> {
  return (await conn.run(sql, params)).rowsChanged;
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

export function date(v: unknown): Date {
  if (v instanceof Date) return v;
  throw new TypeError(`expected a timestamp, got ${typeof v}`);
}

/** A JSON object column (read as text); {} when absent or not an object. */
export function jsonObject(v: unknown): Record<string, unknown> {
  if (typeof v !== "string" || v === "") return {};
  try {
    const parsed: unknown = JSON.parse(v);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** BEGIN … COMMIT on the writer connection; rolls back and rethrows on error. */
export async function transaction<T>(conn: Conn, fn: () => Promise<T>): Promise<T> {
  await conn.run("BEGIN TRANSACTION");
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    await conn.run("ROLLBACK").catch(() => undefined);
    throw err;
  }
  try {
    await conn.run("COMMIT");
  } catch (err) {
    await conn.run("ROLLBACK").catch(() => undefined);
    throw err;
  }
  return result;
}
