// Raw metric samples: appending (the agent samples every second, so one
// appender flush per call, no SQL parsing per row), detail queries and the
// per-interval summaries the agent publishes to the colony.
import { withAppender } from "@coral/common/duckdb";
import { all, checkDate, checkLimit, date, jsonOrNull, newestPage, num, str, ts, Where, type Conn } from "./sql.ts";
import type { MetricPoint, MetricQuery, MetricSummary, QueryPage, StoredMetricPoint } from "./types.ts";

function hasKeys(o: Record<string, string> | undefined): o is Record<string, string> {
  if (!o) return false;
  for (const _ in o) return true;
  return false;
}

/** Throws before anything is written if a point is malformed (bad Date or empty name). */
/** Throws a TypeError naming the first bad point. */
export function checkPoints(points: readonly MetricPoint[]): void {
  for (const [i, p] of points.entries()) {
    checkDate(p.timestamp, `metric point ${i} timestamp`);
    if (typeof p.name !== "string" || p.name === "") throw new TypeError(`metric point ${i} has no name`);
    if (typeof p.value !== "number") throw new TypeError(`metric point ${i} (${p.name}) value is not a number`);
  }
}


/** Writer side. Non-finite values (NaN, ±Infinity, e.g. empty Prometheus summaries) are skipped. */
export async function recordMetrics(conn: Conn, points: readonly MetricPoint[]): Promise<number> {
  checkPoints(points);
  if (points.length === 0) return 0;
  return withAppender(conn, "metrics", (a) => {
    let n = 0;
    for (const p of points) {
      if (!Number.isFinite(p.value)) continue;
      a.appendTimestamp(ts(p.timestamp));
      a.appendVarchar(p.name);
      a.appendDouble(p.value);
      if (hasKeys(p.labels)) a.appendVarchar(JSON.stringify(p.labels));
      else a.appendNull();
      a.endRow();
      n++;
    }
    return n;
  });
}

export async function queryMetrics(conn: Conn, q: MetricQuery): Promise<QueryPage<StoredMetricPoint>> {
  const limit = checkLimit(q.limit);
  const where = new Where().eq("metric_name", q.metricName).range("timestamp", q.since, q.until);
  const rows = await all(
    conn,
    `SELECT timestamp, metric_name, value, labels FROM metrics ${where}
     ORDER BY timestamp DESC, rowid DESC LIMIT ${limit + 1}`,
    where.params,
  );
  return newestPage(
    rows.map((r) => ({
      timestamp: date(r.timestamp),
      name: str(r.metric_name),
      value: num(r.value),
      labels: jsonOrNull<Record<string, string>>(r.labels) ?? {},
    })),
    limit,
  );
}

/** Exact (interpolated) quantiles over the raw points in [since, until), per metric name. */
export async function summarize(conn: Conn, since: Date, until: Date): Promise<MetricSummary[]> {
  checkDate(since, "since");
  checkDate(until, "until");
  if (until.getTime() <= since.getTime()) return [];
  const rows = await all(
    conn,
    `SELECT metric_name,
            quantile_cont(value, [0.5, 0.95, 0.99]) AS q,
            avg(value) AS mean, max(value) AS max, min(value) AS min, count(*) AS count
     FROM metrics
     WHERE timestamp >= $1 AND timestamp < $2
     GROUP BY metric_name
     ORDER BY metric_name`,
    [ts(since), ts(until)],
  );
  return rows.map((r) => {
    const q = r.q as number[];
    return {
      metricName: str(r.metric_name),
      p50: num(q[0]),
      p95: num(q[1]),
      p99: num(q[2]),
      mean: num(r.mean),
      max: num(r.max),
      min: num(r.min),
      count: num(r.count),
    };
  });
}
