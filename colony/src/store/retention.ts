// Retention: deleting rows older than the policy allows.
import { persistEdges } from "./connections.ts";
import { deleteUnusedStackFrames } from "./profiles.ts";
import { exec, transaction, ts, type Conn } from "./sql.ts";
import type { RetentionPolicy, RetentionResult } from "./types.ts";

const hour = 3_600_000;
const day = 24 * hour;

export const defaultRetention: Readonly<RetentionPolicy> = Object.freeze({
  metrics_1m: 24 * hour,
  metrics_5m: 7 * day,
  metrics_15m: 30 * day,
  metrics_1h: 90 * day,
  metrics_1d: 365 * day,
  events: 30 * day,
  insights: 90 * day,
  transitions: 90 * day,
  audit: 365 * day,
  connections: 7 * day,
  batches: 7 * day,
});

/** Defaults overlaid with the caller's values; every value must be a positive number of ms. */
export function resolveRetention(partial: Partial<RetentionPolicy> = {}): RetentionPolicy {
  const policy: RetentionPolicy = { ...defaultRetention };
  for (const [key, value] of Object.entries(partial) as [keyof RetentionPolicy, number | undefined][]) {
    if (value === undefined) continue;
    if (!(key in defaultRetention)) throw new Error(`retention: unknown key "${key}"`);
    if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
      throw new Error(`retention.${key} must be a positive number of milliseconds, got ${String(value)}`);
    }
    policy[key] = value;
  }
  return policy;
}

const targets: readonly { name: string; sql: string; keep: (p: RetentionPolicy) => number }[] = [
  { name: "metrics_1m", sql: "DELETE FROM metric_summaries WHERE interval = '1m' AND timestamp < $1", keep: (p) => p.metrics_1m },
  { name: "metrics_5m", sql: "DELETE FROM metric_summaries WHERE interval = '5m' AND timestamp < $1", keep: (p) => p.metrics_5m },
  { name: "metrics_15m", sql: "DELETE FROM metric_summaries WHERE interval = '15m' AND timestamp < $1", keep: (p) => p.metrics_15m },
  { name: "metrics_1h", sql: "DELETE FROM metric_summaries WHERE interval = '1h' AND timestamp < $1", keep: (p) => p.metrics_1h },
  { name: "metrics_1d", sql: "DELETE FROM metric_summaries WHERE interval = '1d' AND timestamp < $1", keep: (p) => p.metrics_1d },
  { name: "events", sql: "DELETE FROM events WHERE timestamp < $1", keep: (p) => p.events },
  { name: "insights", sql: "DELETE FROM insights WHERE created_at < $1", keep: (p) => p.insights },
  { name: "transitions", sql: `DELETE FROM actor_transitions WHERE "at" < $1`, keep: (p) => p.transitions },
  { name: "audit", sql: `DELETE FROM audit_log WHERE "at" < $1`, keep: (p) => p.audit },
  { name: "connections", sql: "DELETE FROM connection_observations WHERE observed_at < $1", keep: (p) => p.connections },
  // Edges nobody has seen for as long as the coarsest metrics are kept.
  { name: "edges", sql: "DELETE FROM service_connections WHERE last_observed < $1", keep: (p) => p.metrics_1d },
  // The always-on profiler's minutes are per-minute data like metrics_1m.
  { name: "profile_minutes", sql: "DELETE FROM profile_minutes WHERE minute < $1", keep: (p) => p.metrics_1m },
  { name: "profile_stacks", sql: "DELETE FROM profile_stacks WHERE minute < $1", keep: (p) => p.metrics_1m },
  { name: "batches", sql: "DELETE FROM ingested_batches WHERE ingested_at < $1", keep: (p) => p.batches },
];

/**
 * Writer side. Folds raw connection observations into service_connections
 * first (so topology survives), then deletes everything older than the policy,
 * in one transaction. Returns the rows deleted per target.
 */
export async function applyRetention(conn: Conn, policy: RetentionPolicy, now: Date): Promise<RetentionResult> {
  await persistEdges(conn);
  return transaction(conn, async () => {
    const deleted: RetentionResult = {};
    for (const t of targets) {
      deleted[t.name] = await exec(conn, t.sql, [ts(new Date(now.getTime() - t.keep(policy)))]);
    }
    deleted.profile_frames = await exec(conn, deleteUnusedStackFrames);
    return deleted;
  });
}
