// Rollups: 5m/15m/1h/1d summaries for completed windows.
//
// Each level is computed from the level below it (5m from 1m, 15m from 5m,
// 1h from 15m, 1d from 1h). With the aggregates below this gives exactly the
// same numbers as computing every level from the 1m rows (weights add up), and
// it keeps working after the 1m rows have expired (1m rows live 24h, a day
// window needs a full day of them).
//
//   count = sum(count)           max = max(max)          min = min(min)
//   mean  = Σ(mean·count) / Σcount                       (exact)
//   pXX   = Σ(pXX·count)  / Σcount                       (APPROXIMATION)
//
// Percentiles cannot be merged exactly from summaries; the count-weighted
// average of the finer windows' percentiles is a common, cheap estimate that is
// exact when the finer windows have the same distribution and is biased
// (usually low for p99) when one finer window holds the spikes. When all
// counts are 0 the plain average is used.
//
// Incremental and idempotent: every ingest and every rollup run takes a write
// generation (sequence write_gen) stored in metric_summaries.gen. A run
// recomputes a window when it is complete (end <= now) and either it completed
// since the last run (end > last_now) or one of its source rows is newer than
// the last run (gen > last_gen: late data, or a finer rollup just rewritten).
// A recomputed window replaces its row (deleted, then inserted in the same
// transaction: metric_summaries has no row key since schema 11), so
// re-running never duplicates.
import { all, exec, transaction, ts, type Conn } from "./sql.ts";
import type { Interval, RollupResult } from "./types.ts";

interface Level {
  target: Exclude<Interval, "1m">;
  source: Interval;
  width: string;
}

const levels: readonly Level[] = [
  { target: "5m", source: "1m", width: "5 minutes" },
  { target: "15m", source: "5m", width: "15 minutes" },
  { target: "1h", source: "15m", width: "1 hour" },
  { target: "1d", source: "1h", width: "1 day" },
];

const weighted = (col: string): string =>
  `CASE WHEN sum(s.count) > 0 THEN sum(s.${col} * s.count) / sum(s.count) ELSE avg(s.${col}) END`;

/** The windows of one level that need (re)computing, into the TEMP table rollup_level. */
function levelSql(l: Level): string {
  // $1 now, $2 last_gen, $3 last_now, $4 this run's gen
  return `
    CREATE OR REPLACE TEMP TABLE rollup_level AS
    SELECT s.w AS timestamp, s.service_id, s.metric_name, '${l.target}' AS interval,
           ${weighted("p50")} AS p50, ${weighted("p95")} AS p95, ${weighted("p99")} AS p99, ${weighted("mean")} AS mean,
           max(s.max) AS max, min(s.min) AS min, sum(s.count)::BIGINT AS count, any_value(s.agent_id) AS agent_id,
           NULL::JSON AS labels, $4::BIGINT AS gen
    FROM (
      SELECT time_bucket(INTERVAL '${l.width}', timestamp) AS w, service_id, metric_name,
             p50, p95, p99, mean, max, min, count, agent_id, gen
      FROM metric_summaries
      WHERE interval = '${l.source}' AND timestamp < $1
    ) s
    SEMI JOIN (
      SELECT DISTINCT time_bucket(INTERVAL '${l.width}', timestamp) AS w, service_id, metric_name
      FROM metric_summaries
      WHERE interval = '${l.source}'
        AND time_bucket(INTERVAL '${l.width}', timestamp) + INTERVAL '${l.width}' <= $1
        AND (gen > $2 OR time_bucket(INTERVAL '${l.width}', timestamp) + INTERVAL '${l.width}' > $3)
    ) d ON s.w = d.w AND s.service_id = d.service_id AND s.metric_name = d.metric_name
    GROUP BY s.w, s.service_id, s.metric_name`;
}

/** The rows rollup_level replaces. */
const deleteReplacedSql = (l: Level) => `DELETE FROM metric_summaries m USING rollup_level r
  WHERE m.interval = '${l.target}' AND m.timestamp = r.timestamp
    AND m.service_id = r.service_id AND m.metric_name = r.metric_name`;

const insertLevelSql = `INSERT INTO metric_summaries
  (timestamp, service_id, metric_name, interval, p50, p95, p99, mean, max, min, count, agent_id, labels, gen)
SELECT timestamp, service_id, metric_name, interval, p50, p95, p99, mean, max, min, count, agent_id, labels, gen
FROM rollup_level`;

/** Writer side. Returns the rows written (inserted or replaced) per level. */
export async function rollup(conn: Conn, now: Date): Promise<RollupResult> {
  return transaction(conn, async () => {
    const [state] = await all(conn, "SELECT last_now, last_gen FROM rollup_state WHERE id = 1");
    const lastGen = state ? BigInt(state.last_gen as bigint) : 0n;
    const lastNow = state ? (state.last_now as Date) : new Date(0);
    const [genRow] = await all(conn, "SELECT nextval('write_gen') AS gen");
    const gen = BigInt(genRow?.gen as bigint);
    const result: RollupResult = { "5m": 0, "15m": 0, "1h": 0, "1d": 0 };
    for (const l of levels) {
      await exec(conn, levelSql(l), [ts(now), lastGen, ts(lastNow), gen]);
      await exec(conn, deleteReplacedSql(l));
      result[l.target] = await exec(conn, insertLevelSql);
    }
    await exec(conn, "DROP TABLE IF EXISTS rollup_level");
    await exec(
      conn,
      `INSERT INTO rollup_state (id, last_now, last_gen) VALUES (1, $1, $2)
       ON CONFLICT (id) DO UPDATE SET last_now = greatest(rollup_state.last_now, excluded.last_now),
                                      last_gen = excluded.last_gen`,
      [ts(now), gen],
    );
    return result;
  });
}
