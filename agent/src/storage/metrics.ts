// Raw metric samples: inserting (the agent samples every second, so one
// prepared statement run per point inside one transaction per call), detail
// queries and the per-interval summaries the agent publishes to the colony.
import { checkDate, checkLimit, date, jsonOrNull, newestPage, num, str, ts, Where, type Conn } from "./sql.ts";
import type { MetricPoint, MetricQuery, MetricSummary, QueryPage, StoredMetricPoint } from "./types.ts";

function hasKeys(o: Record<string, string> | undefined): o is Record<string, string> {
  if (!o) return false;
  for (const _ in o) return true;
  return false;
}

/** Throws a TypeError naming the first bad point (bad Date, empty name, not a number); nothing is written then. */
export function checkPoints(points: readonly MetricPoint[]): void {
  for (const [i, p] of points.entries()) {
    checkDate(p.timestamp, `metric point ${i} timestamp`);
    if (typeof p.name !== "string" || p.name === "") throw new TypeError(`metric point ${i} has no name`);
    if (typeof p.value !== "number") throw new TypeError(`metric point ${i} (${p.name}) value is not a number`);
  }
}

/** Writer side. Non-finite values (NaN, ±Infinity, e.g. empty Prometheus summaries) are skipped. */
export function recordMetrics(conn: Conn, points: readonly MetricPoint[]): number {
  checkPoints(points);
  if (points.length === 0) return 0;
  const insert = conn.stmt("INSERT INTO metrics (timestamp, metric_name, value, labels) VALUES (?, ?, ?, ?)");
  return conn.tx(() => {
    let n = 0;
    for (const p of points) {
      if (!Number.isFinite(p.value)) continue;
      insert.run(p.timestamp.getTime(), p.name, p.value, hasKeys(p.labels) ? JSON.stringify(p.labels) : null);
      n++;
    }
    return n;
  });
}

export function queryMetrics(conn: Conn, q: MetricQuery): QueryPage<StoredMetricPoint> {
  const limit = checkLimit(q.limit);
  const where = new Where().eq("metric_name", q.metricName).range("timestamp", q.since, q.until);
  const rows = conn.all(`SELECT timestamp, metric_name, value, labels FROM metrics ${where} ORDER BY timestamp DESC, rowid DESC LIMIT ?`, [
    ...where.params,
    limit + 1,
  ]);
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

/**
 * The value at quantile q of ascending values, interpolated between the two
 * nearest order statistics exactly as DuckDB's quantile_cont (which the store
 * used before): position h = (n - 1) q, x[⌊h⌋] + (h - ⌊h⌋)(x[⌈h⌉] - x[⌊h⌋]).
 */
export function quantileCont(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const h = (sorted.length - 1) * q;
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  const a = sorted[lo]!;
  return lo === hi ? a : a + (h - lo) * (sorted[hi]! - a);
}

function summaryOf(metricName: string, sorted: number[]): MetricSummary {
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    metricName,
    p50: quantileCont(sorted, 0.5),
    p95: quantileCont(sorted, 0.95),
    p99: quantileCont(sorted, 0.99),
    mean: sum / sorted.length,
    max: sorted[sorted.length - 1]!,
    min: sorted[0]!,
    count: sorted.length,
  };
}

/**
 * Exact (interpolated) quantiles over the raw points in [since, until), per
 * metric name. SQLite has no quantile aggregate: it hands back the window's
 * values sorted by name and value (through the time index), and the
 * statistics are computed here, one metric at a time, so only the largest
 * metric's values are held at once.
 */
export function summarize(conn: Conn, since: Date, until: Date): MetricSummary[] {
  checkDate(since, "since");
  checkDate(until, "until");
  if (until.getTime() <= since.getTime()) return [];
  const rows = conn
    .stmt("SELECT metric_name, value FROM metrics WHERE timestamp >= ? AND timestamp < ? ORDER BY metric_name, value")
    .raw(true)
    .iterate(ts(since), ts(until)) as IterableIterator<[string, number]>;
  const out: MetricSummary[] = [];
  let name: string | undefined;
  let values: number[] = [];
  for (const [metric, value] of rows) {
    if (metric !== name) {
      if (name !== undefined) out.push(summaryOf(name, values));
      name = metric;
      values = [];
    }
    values.push(value);
  }
  if (name !== undefined) out.push(summaryOf(name, values));
  return out;
}
