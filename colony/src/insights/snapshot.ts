// Reads what the detectors need from the store, once per run.
import type { ColonyStore } from "../store/index.ts";
import { readBaselines } from "./baselines.ts";
import { all, date, jsonObject, num, str, ts, type Conn } from "@coral/common/duckdb";
import type { InsightsConfig, RecentStat, Snapshot, SnapshotEvent, VersionChange } from "./types.ts";

/** Event types the detectors look at (besides version changes). */
export const watchedEventTypes = ["restart", "process_exited", "crash", "health_changed"] as const;
/** Event types that announce a version: details.version (or to_version), optionally details.previous_version. */
export const versionEventTypes = ["deploy", "version_changed"] as const;

const quoted = (list: readonly string[]): string => list.map((t) => `'${t}'`).join(", ");

async function recentStats(conn: Conn, now: Date, windowMs: number): Promise<RecentStat[]> {
  const rows = await all(
    conn,
    `SELECT service_id, metric_name,
            sum(CASE WHEN count > 0 THEN count ELSE 1 END * mean) / sum(CASE WHEN count > 0 THEN count ELSE 1 END) AS m,
            max(mean) AS mx, count(*) AS n, min(timestamp) AS t0, max(timestamp) AS t1
     FROM metric_summaries
     WHERE interval = '1m' AND timestamp >= $1 AND timestamp < $2 AND isfinite(mean)
     GROUP BY service_id, metric_name
     ORDER BY service_id, metric_name`,
    [ts(new Date(now.getTime() - windowMs)), ts(now)],
  );
  return rows.map((r) => ({
    service: str(r.service_id),
    metric: str(r.metric_name),
    mean: num(r.m),
    max: num(r.mx),
    samples: num(r.n),
    from: date(r.t0),
    to: date(r.t1),
  }));
}

async function events(conn: Conn, since: Date, now: Date): Promise<SnapshotEvent[]> {
  const rows = await all(
    conn,
    `SELECT service_id, timestamp, event_type, CAST(details AS VARCHAR) AS details
     FROM events
     WHERE timestamp >= $1 AND timestamp <= $2 AND event_type IN (${quoted(watchedEventTypes)})
     ORDER BY timestamp, event_id`,
    [ts(since), ts(now)],
  );
  return rows.map((r) => ({ service: str(r.service_id), at: date(r.timestamp), type: str(r.event_type), details: jsonObject(r.details) }));
}

interface VersionMark {
  service: string;
  at: Date;
  version: string;
  from: string;
  source: string;
}

/**
 * Where versions come from: agents registering (the audit log's
 * agent.register rows carry the version an agent reports, its component's
 * version tag) and deploy / version_changed events. Reads the marks inside
 * [since, now] plus the last one of each service before `since`.
 */
async function versionMarks(conn: Conn, since: Date, now: Date): Promise<VersionMark[]> {
  const registrations = await all(
    conn,
    `WITH reg AS (
       SELECT "at", target, details->>'$.version' AS version
       FROM audit_log WHERE action = 'agent.register' AND "at" <= $2 AND coalesce(details->>'$.version', '') <> ''
     )
     SELECT "at", target, version FROM reg WHERE "at" >= $1
     UNION ALL
     SELECT max("at"), target, arg_max(version, "at") FROM reg WHERE "at" < $1 GROUP BY target`,
    [ts(since), ts(now)],
  );
  const deploys = await all(
    conn,
    `WITH ev AS (
       SELECT timestamp, service_id, event_type,
              coalesce(details->>'$.version', details->>'$.to_version', details->>'$.new_version') AS version,
              coalesce(details->>'$.previous_version', details->>'$.from_version', details->>'$.old_version', '') AS prev
       FROM events
       WHERE event_type IN (${quoted(versionEventTypes)}) AND timestamp <= $2
     )
     SELECT timestamp, service_id, event_type, version, prev FROM ev WHERE timestamp >= $1 AND coalesce(version, '') <> ''
     UNION ALL
     SELECT max(timestamp), service_id, arg_max(event_type, timestamp), arg_max(version, timestamp), arg_max(prev, timestamp)
     FROM ev WHERE timestamp < $1 AND coalesce(version, '') <> '' GROUP BY service_id`,
    [ts(since), ts(now)],
  );
  return [
    ...registrations.map((r) => ({ service: str(r.target), at: date(r.at), version: str(r.version), from: "", source: "registration" })),
    ...deploys.map((r) => ({ service: str(r.service_id), at: date(r.timestamp), version: str(r.version), from: str(r.prev), source: str(r.event_type) })),
  ];
}

/** Version changes per service from an unordered list of marks: a mark whose version differs from the one before. */
export function versionChangesFrom(marks: readonly VersionMark[], since: Date): VersionChange[] {
  const sorted = [...marks].sort((a, b) => a.at.getTime() - b.at.getTime() || a.source.localeCompare(b.source));
  const current = new Map<string, string>();
  const changes: VersionChange[] = [];
  for (const m of sorted) {
    const known = current.get(m.service);
    current.set(m.service, m.version);
    if (known === m.version) continue;
    const before = m.from || known || "";
    if (!before || before === m.version) continue;
    if (m.at >= since) changes.push({ service: m.service, at: m.at, from: before, to: m.version, source: m.source });
  }
  return changes;
}

export async function loadSnapshot(store: ColonyStore, now: Date, config: InsightsConfig): Promise<Snapshot> {
  const lookback = Math.max(config.versionLookbackMs, config.restartWindowMs, config.flapWindowMs);
  const since = new Date(now.getTime() - lookback);
  const versionSince = new Date(now.getTime() - config.versionLookbackMs);
  const [read, agents, edges] = await Promise.all([
    store.read(async (c) => ({
      baselines: await readBaselines(c),
      recent: await recentStats(c, now, config.recentWindowMs),
      events: await events(c, since, now),
      marks: await versionMarks(c, versionSince, now),
    })),
    store.listAgents(),
    store.connectionEdges(),
  ]);
  return {
    now,
    baselines: read.baselines,
    recent: read.recent,
    events: read.events,
    versionChanges: versionChangesFrom(read.marks, versionSince),
    agents: agents.map((a) => ({ agentId: a.agentId, service: a.serviceName, version: a.version, health: a.health })),
    edges,
  };
}
