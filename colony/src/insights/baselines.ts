// Baselines: per service and metric, what "usual" looks like over the last
// hour, day and week, from the agents' 1-minute summaries.
//
// For each window the points are the 1-minute summaries (their mean and
// count). The week reaches past the 1m rows' retention (24 h by default), so
// the part of it older than a series' oldest 1m row is taken from the 15m
// rollups, one point per rollup. Statistics, per series:
//
//   mean   = Σ(w·mean) / Σw                       w = count (1 when 0)
//   stddev = sqrt(Σ(w·(mean − mean̄)²) / Σw)        spread of the minute means
//   pXX    = quantile of the points' means        (unweighted)
//   sample_count = number of points
//
// Windows end at `now − excludeRecentMs` (the detectors' recent window), so
// the minutes being judged never raise the baseline they are judged against.
import type { ColonyStore } from "../store/index.ts";
import { all, date, exec, num, str, transaction, ts, type Conn } from "@coral/common/duckdb";
import { baselineWindowMs, baselineWindows, type Baseline, type BaselineWindow } from "./types.ts";

const weight = "CASE WHEN count > 0 THEN count ELSE 1 END";

function pointsSql(window: BaselineWindow): string {
  // $1 window start, $2 window end
  const fine = `SELECT service_id, metric_name, timestamp, mean, ${weight} AS w
    FROM metric_summaries
    WHERE interval = '1m' AND timestamp >= $1 AND timestamp < $2 AND isfinite(mean)`;
  if (window !== "7d") return fine;
  return `WITH fine AS (${fine}),
    oldest AS (SELECT service_id, metric_name, min(timestamp) AS t0 FROM fine GROUP BY service_id, metric_name)
    SELECT * FROM fine
    UNION ALL
    SELECT s.service_id, s.metric_name, s.timestamp, s.mean, CASE WHEN s.count > 0 THEN s.count ELSE 1 END AS w
    FROM metric_summaries s
    LEFT JOIN oldest o ON o.service_id = s.service_id AND o.metric_name = s.metric_name
    WHERE s.interval = '15m' AND s.timestamp >= $1 AND isfinite(s.mean)
      AND s.timestamp + INTERVAL 15 MINUTE <= coalesce(o.t0, $2)`;
}

function statsSql(window: BaselineWindow): string {
  // $1 start, $2 end
  return `
    WITH pts AS (${pointsSql(window)}),
    agg AS (
      SELECT service_id, metric_name, sum(w * mean) / sum(w) AS m, count(*) AS n,
             quantile_cont(mean, 0.5) AS p50, quantile_cont(mean, 0.95) AS p95, quantile_cont(mean, 0.99) AS p99
      FROM pts GROUP BY service_id, metric_name
    ),
    spread AS (
      SELECT p.service_id, p.metric_name, sqrt(greatest(sum(p.w * (p.mean - a.m) ^ 2) / sum(p.w), 0)) AS sd
      FROM pts p JOIN agg a ON a.service_id = p.service_id AND a.metric_name = p.metric_name
      GROUP BY p.service_id, p.metric_name
    )
    SELECT a.service_id, a.metric_name, a.m, s.sd, a.p50, a.p95, a.p99, a.n
    FROM agg a JOIN spread s ON s.service_id = a.service_id AND s.metric_name = a.metric_name
    ORDER BY a.service_id, a.metric_name`;
}

export interface BaselineOptions {
  /** The recent minutes left out of every window (default 5 min). */
  excludeRecentMs?: number;
}

/** Reader side: every service's and metric's baselines for the 1h, 1d and 7d windows ending at now − excludeRecentMs. */
export async function baselinesAt(conn: Conn, now: Date, options: BaselineOptions = {}): Promise<Baseline[]> {
  const end = new Date(now.getTime() - (options.excludeRecentMs ?? 5 * 60_000));
  const out: Baseline[] = [];
  for (const window of baselineWindows) {
    const start = new Date(end.getTime() - baselineWindowMs[window]);
    for (const r of await all(conn, statsSql(window), [ts(start), ts(end)])) {
      out.push({
        service: str(r.service_id),
        metric: str(r.metric_name),
        window,
        mean: num(r.m),
        stddev: num(r.sd),
        p50: num(r.p50),
        p95: num(r.p95),
        p99: num(r.p99),
        sampleCount: num(r.n),
        lastUpdated: now,
      });
    }
  }
  return out;
}

const stagingDdl = `CREATE TEMP TABLE IF NOT EXISTS stage_baselines (
  service_id TEXT, metric_name TEXT, time_window TEXT, mean DOUBLE, stddev DOUBLE,
  p50 DOUBLE, p95 DOUBLE, p99 DOUBLE, sample_count BIGINT, last_updated TIMESTAMP
)`;

/**
 * Writer side, one transaction: upserts the baselines (appended to a staging
 * table, then merged, as ingestion does) and deletes those not refreshed at
 * `now` (their window holds no data any more).
 */
export async function writeBaselines(conn: Conn, rows: readonly Baseline[], now: Date): Promise<number> {
  await conn.run(stagingDdl);
  return transaction(conn, async () => {
    await exec(conn, "DELETE FROM stage_baselines");
    const a = await conn.createAppender("stage_baselines");
    try {
      for (const b of rows) {
        a.appendVarchar(b.service);
        a.appendVarchar(b.metric);
        a.appendVarchar(b.window);
        for (const v of [b.mean, b.stddev, b.p50, b.p95, b.p99]) a.appendDouble(v);
        a.appendBigInt(BigInt(b.sampleCount));
        a.appendTimestamp(ts(b.lastUpdated));
        a.endRow();
      }
      a.flushSync();
    } finally {
      try {
        a.closeSync();
      } catch {
        // the error that got us here matters more
      }
    }
    const written = await exec(
      conn,
      `INSERT INTO baselines (service_id, metric_name, time_window, mean, stddev, p50, p95, p99, sample_count, last_updated)
       SELECT * FROM stage_baselines
       ON CONFLICT (service_id, metric_name, time_window) DO UPDATE SET
         mean = excluded.mean, stddev = excluded.stddev, p50 = excluded.p50, p95 = excluded.p95,
         p99 = excluded.p99, sample_count = excluded.sample_count, last_updated = excluded.last_updated`,
    );
    await exec(conn, "DELETE FROM stage_baselines");
    await exec(conn, "DELETE FROM baselines WHERE last_updated < $1", [ts(now)]);
    return written;
  });
}

/**
 * Recomputes the baselines (on a reader: the aggregation does not hold up
 * ingestion) and stores them (on the writer). Returns the rows written.
 */
export async function computeBaselines(store: ColonyStore, now: Date, options: BaselineOptions = {}): Promise<number> {
  const rows = await store.read((c) => baselinesAt(c, now, options));
  return store.write((c) => writeBaselines(c, rows, now));
}

export async function readBaselines(conn: Conn, service?: string): Promise<Baseline[]> {
  const rows = await all(
    conn,
    `SELECT service_id, metric_name, time_window, mean, stddev, p50, p95, p99, sample_count, last_updated
     FROM baselines ${service === undefined ? "" : "WHERE service_id = $1"}
     ORDER BY service_id, metric_name, time_window`,
    service === undefined ? [] : [service],
  );
  return rows.map((r) => ({
    service: str(r.service_id),
    metric: str(r.metric_name),
    window: str(r.time_window) as BaselineWindow,
    mean: num(r.mean),
    stddev: num(r.stddev),
    p50: num(r.p50),
    p95: num(r.p95),
    p99: num(r.p99),
    sampleCount: num(r.sample_count),
    lastUpdated: date(r.last_updated),
  }));
}

/** The stored baselines (optionally of one service), sorted by service, metric, window. */
export function listBaselines(store: ColonyStore, service?: string): Promise<Baseline[]> {
  return store.read((c) => readBaselines(c, service));
}
