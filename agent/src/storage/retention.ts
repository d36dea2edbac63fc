// Retention of raw rows. The agent keeps 1 h by default and at most 6 h: the
// colony keeps the long history (as summaries); the agent only answers detail
// queries about the recent past. The outbox is not raw data and is never
// trimmed here: its rows leave only when JetStream acknowledges them.
import { dateNs } from "./otlp.ts";
import { ts, type Conn, type Param } from "./sql.ts";
import type { RetentionResult } from "./types.ts";

export const DEFAULT_RETENTION_MS = 3_600_000;
export const MAX_RETENTION_MS = 6 * 3_600_000;
export const DEFAULT_CLEANUP_INTERVAL_MS = 300_000;

/** The retention to use, or a clear error for a value the agent refuses. */
export function checkRetention(retentionMs: number | undefined): number {
  if (retentionMs === undefined) return DEFAULT_RETENTION_MS;
  if (typeof retentionMs !== "number" || !Number.isFinite(retentionMs) || retentionMs <= 0) {
    throw new RangeError(`agent storage retention must be a positive number of milliseconds, got ${String(retentionMs)}`);
  }
  if (retentionMs > MAX_RETENTION_MS) {
    throw new RangeError(
      `agent storage retention of ${retentionMs} ms (${(retentionMs / 3_600_000).toFixed(2)} h) exceeds the maximum of 6 h ` +
        `(${MAX_RETENTION_MS} ms): the agent keeps only recent raw data; longer history belongs to the colony`,
    );
  }
  return retentionMs;
}

type Key = Exclude<keyof RetentionResult, "cutoff">;

/** Each raw table, its time column and how the cutoff is written there (ms, or ns for OTLP). */
const targets: readonly { key: Key; table: string; column: string; ns?: true }[] = [
  { key: "metrics", table: "metrics", column: "timestamp" },
  { key: "events", table: "events", column: "timestamp" },
  { key: "connections", table: "connections", column: "observed_at" },
  { key: "snapshots", table: "process_snapshots", column: "timestamp" },
  { key: "uprobeEvents", table: "uprobe_events", column: "timestamp" },
  { key: "profileWindows", table: "profile_windows", column: "window_start" },
  // A collector still running (ended_at NULL) is never trimmed.
  { key: "uprobeCollectors", table: "uprobe_collectors", column: "ended_at" },
  { key: "otlpSpans", table: "otlp_spans", column: "start_ns", ns: true },
  { key: "otlpLogs", table: "otlp_logs", column: "time_ns", ns: true },
];

/** Rows one DELETE removes at most: a chunk takes a few ms, so the event loop is never held for long. */
export const RETENTION_CHUNK = 5_000;

/**
 * Writer side: deletes raw rows with a time before now - retentionMs, in
 * chunks of RETENTION_CHUNK rows, each its own transaction; `between` runs
 * after each chunk (the store yields to the event loop there). Rows are only
 * ever older than the cutoff, so a run cut short leaves nothing inconsistent.
 */
export async function applyRetention(conn: () => Conn, retentionMs: number, now: Date, between: () => Promise<void>): Promise<RetentionResult> {
  const cutoff = new Date(now.getTime() - retentionMs);
  const result: RetentionResult = { cutoff, metrics: 0, events: 0, connections: 0, snapshots: 0, uprobeEvents: 0, profileWindows: 0, uprobeCollectors: 0, otlpSpans: 0, otlpLogs: 0 };
  for (const t of targets) {
    const cut: Param = t.ns ? dateNs(cutoff) : ts(cutoff);
    const sql = `DELETE FROM ${t.table} WHERE rowid IN (SELECT rowid FROM ${t.table} WHERE ${t.column} < ? LIMIT ${RETENTION_CHUNK})`;
    for (;;) {
      const deleted = conn().run(sql, [cut]);
      result[t.key] += deleted;
      if (deleted < RETENTION_CHUNK) break;
      await between();
    }
  }
  return result;
}
