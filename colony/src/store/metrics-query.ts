// Reading metric summaries, and choosing a resolution for a time range.
import { all, date, num, str, ts, type Conn, type Params } from "./sql.ts";
import type { Interval, MetricQuery, MetricSeriesRow } from "./types.ts";

const hour = 3_600_000;
const day = 24 * hour;

/** The coarsest resolution worth reading for a range: ≤6h 1m, ≤2d 5m, ≤7d 15m, ≤90d 1h, else 1d. */
export function pickInterval(since: Date, until: Date): Interval {
  const span = until.getTime() - since.getTime();
  if (span <= 6 * hour) return "1m";
  if (span <= 2 * day) return "5m";
  if (span <= 7 * day) return "15m";
  if (span <= 90 * day) return "1h";
  return "1d";
}

/**
 * One series per service and metric name (sorted by service, then name),
 * points ascending; `since`/`until` inclusive. Without `service`, every
 * service in one scan (the correlation tool reads all of them at once).
 */
export async function queryMetrics(conn: Conn, q: MetricQuery): Promise<MetricSeriesRow[]> {
  const params: Params = [q.interval, ts(q.since), ts(q.until)];
  let where = "interval = $1 AND timestamp >= $2 AND timestamp <= $3";
  if (q.service !== undefined) {
    params.push(q.service);
    where += ` AND service_id = $${params.length}`;
  }
  if (q.metricName !== undefined) {
    params.push(q.metricName);
    where += ` AND metric_name = $${params.length}`;
  }
  const rows = await all(
    conn,
    `SELECT service_id, metric_name, timestamp, p50, p95, p99, mean, max, min, count
     FROM metric_summaries WHERE ${where}
     ORDER BY service_id, metric_name, timestamp`,
    params,
  );
  const series = new Map<string, MetricSeriesRow>();
  for (const r of rows) {
    const service = str(r.service_id);
    const name = str(r.metric_name);
    const key = `${service}\u0000${name}`;
    let s = series.get(key);
    if (!s) {
      s = { service, metricName: name, interval: q.interval, points: [] };
      series.set(key, s);
    }
    s.points.push({
      timestamp: date(r.timestamp),
      p50: num(r.p50),
      p95: num(r.p95),
      p99: num(r.p99),
      mean: num(r.mean),
      max: num(r.max),
      min: num(r.min),
      count: num(r.count),
    });
  }
  return [...series.values()];
}
