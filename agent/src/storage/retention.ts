// Retention of raw rows. The agent keeps 1 h by default and at most 6 h: the
// colony keeps the long history (as summaries); the agent only answers detail
// queries about the recent past. The outbox is not raw data and is never
// trimmed here: its rows leave only when JetStream acknowledges them.
import { exec, transaction, ts, type Conn } from "./sql.ts";
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

const targets = [
  { key: "metrics", sql: "DELETE FROM metrics WHERE timestamp < $1" },
  { key: "events", sql: "DELETE FROM events WHERE timestamp < $1" },
  { key: "connections", sql: "DELETE FROM connections WHERE observed_at < $1" },
  { key: "snapshots", sql: "DELETE FROM process_snapshots WHERE timestamp < $1" },
  { key: "uprobeEvents", sql: "DELETE FROM uprobe_events WHERE timestamp < $1" },
  { key: "profileWindows", sql: "DELETE FROM profile_windows WHERE window_start < $1" },
  // A collector still running (ended_at NULL) is never trimmed.
  { key: "uprobeCollectors", sql: "DELETE FROM uprobe_collectors WHERE ended_at < $1" },
  { key: "otlpSpans", sql: "DELETE FROM otlp_spans WHERE start_time < $1" },
  { key: "otlpLogs", sql: "DELETE FROM otlp_logs WHERE timestamp < $1" },
] as const;

/** Writer side: deletes raw rows with a timestamp before now - retentionMs, in one transaction. */
export async function applyRetention(conn: Conn, retentionMs: number, now: Date): Promise<RetentionResult> {
  const cutoff = new Date(now.getTime() - retentionMs);
  const cut = ts(cutoff);
  return transaction(conn, async () => {
    const result: RetentionResult = { cutoff, metrics: 0, events: 0, connections: 0, snapshots: 0, uprobeEvents: 0, profileWindows: 0, uprobeCollectors: 0, otlpSpans: 0, otlpLogs: 0 };
    for (const t of targets) result[t.key] = await exec(conn, t.sql, [cut]);
    return result;
  });
}
