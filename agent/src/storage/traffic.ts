// Traffic samples the app's Coral SDK handed over: one row per request and
// response (headers as JSON, bodies as base64 of at most the SDK's limit),
// kept within a byte budget and an age (pruneTraffic), queried with filters
// at the agent so only what the caller asked for leaves it.
import { withAppender } from "@coral/common/duckdb";
import { all, checkDate, checkLimit, date, exec, num, str, ts, newestPage, type Conn, type Row } from "./sql.ts";
import type { QueryPage, StoredTrafficSample, TrafficPrune, TrafficQuery, TrafficSampleInput, TrafficStats, TrafficSummary } from "./types.ts";

const summaryColumns = "id, method, path, route, status, start_time, duration_ms, reason";
const allColumns = `${summaryColumns}, received_at, request_headers, response_headers, request_body, request_body_truncated, request_body_size, response_body, response_body_truncated, response_body_size, size_bytes`;

/** What a sample weighs in the buffer: its text and bodies. */
export function sampleBytes(s: TrafficSampleInput): number {
  let n = 64 + s.id.length + s.method.length + s.path.length + s.route.length + s.reason.length;
  for (const h of [...s.requestHeaders, ...s.responseHeaders]) n += h.name.length + h.value.length + 8;
  return n + s.requestBody.byteLength + s.responseBody.byteLength;
}

/** Throws a TypeError naming what is wrong; nothing is written then. */
export function checkTrafficSample(s: TrafficSampleInput): void {
  if (!/^[A-Za-z0-9_.:-]{1,200}$/.test(s.id)) throw new TypeError(`traffic sample id must be 1-200 letters, digits, _.:-, got ${JSON.stringify(s.id.slice(0, 40))}`);
  if (!/^[A-Z]{1,16}$/.test(s.method)) throw new TypeError(`traffic sample method must be an HTTP method, got ${JSON.stringify(s.method.slice(0, 20))}`);
  if (!Number.isInteger(s.status) || s.status < 100 || s.status > 599) throw new TypeError(`traffic sample status must be 100-599, got ${s.status}`);
  if (!Number.isFinite(s.durationMs) || s.durationMs < 0) throw new TypeError(`traffic sample duration must be a non-negative number, got ${s.durationMs}`);
  checkDate(s.startTime, "traffic sample start time");
}

function toSummary(r: Row): TrafficSummary {
  return {
    id: str(r.id),
    method: str(r.method),
    path: str(r.path),
    route: str(r.route),
    status: num(r.status),
    startTime: date(r.start_time),
    durationMs: num(r.duration_ms),
    reason: str(r.reason),
  };
}

function headers(v: unknown): { name: string; value: string }[] {
  try {
    const parsed: unknown = JSON.parse(str(v) || "[]");
    return Array.isArray(parsed) ? parsed.map((h: { name?: unknown; value?: unknown }) => ({ name: String(h.name ?? ""), value: String(h.value ?? "") })) : [];
  } catch {
    return [];
  }
}

/**
 * Appends the samples not stored yet (ids already there, or twice in `list`,
 * are skipped): one appender per call, far cheaper than an INSERT a row.
 */
export async function recordTrafficSamples(conn: Conn, list: readonly TrafficSampleInput[], receivedAt: Date): Promise<number> {
  for (const s of list) checkTrafficSample(s);
  if (list.length === 0) return 0;
  const ids = [...new Set(list.map((s) => s.id))];
  const known = new Set<string>();
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    const rows = await all(conn, `SELECT id FROM traffic_samples WHERE id IN (${chunk.map((_, k) => `$${k + 1}`).join(", ")})`, chunk);
    for (const r of rows) known.add(str(r.id));
  }
  const fresh = list.filter((s) => !known.has(s.id) && (known.add(s.id), true));
  if (fresh.length === 0) return 0;
  const at = ts(receivedAt);
  return withAppender(conn, "traffic_samples", (a) => {
    // Column order of the table (migration 7).
    for (const s of fresh) {
      a.appendVarchar(s.id);
      a.appendVarchar(s.method);
      a.appendVarchar(s.path);
      a.appendVarchar(s.route);
      a.appendInteger(s.status);
      a.appendTimestamp(ts(s.startTime));
      a.appendDouble(s.durationMs);
      a.appendVarchar(s.reason);
      a.appendTimestamp(at);
      a.appendVarchar(JSON.stringify(s.requestHeaders));
      a.appendVarchar(JSON.stringify(s.responseHeaders));
      a.appendVarchar(Buffer.from(s.requestBody).toString("base64"));
      a.appendBoolean(s.requestBodyTruncated);
      a.appendBigInt(BigInt(s.requestBodySize));
      a.appendVarchar(Buffer.from(s.responseBody).toString("base64"));
      a.appendBoolean(s.responseBodyTruncated);
      a.appendBigInt(BigInt(s.responseBodySize));
      a.appendBigInt(BigInt(sampleBytes(s)));
      a.endRow();
    }
    return fresh.length;
  });
}

/** Matching samples, newest first (the newest `limit`). */
export async function queryTraffic(conn: Conn, q: TrafficQuery): Promise<QueryPage<TrafficSummary>> {
  const limit = checkLimit(q.limit);
  const conds: string[] = [];
  const params: (string | number | ReturnType<typeof ts>)[] = [];
  const add = (cond: (p: string) => string, value: string | number | ReturnType<typeof ts>) => {
    params.push(value);
    conds.push(cond(`$${params.length}`));
  };
  if (q.pathPrefix) add((p) => `starts_with(path, ${p})`, q.pathPrefix);
  if (q.method) add((p) => `method = ${p}`, q.method);
  if (q.status) {
    if (q.status.kind === "exact") add((p) => `status = ${p}`, q.status.value);
    else {
      add((p) => `status >= ${p}`, q.status.value * 100);
      add((p) => `status < ${p}`, q.status.value * 100 + 100);
    }
  }
  if (q.since) add((p) => `start_time >= ${p}`, ts(q.since));
  const where = conds.length ? `WHERE ${conds.join(" AND ")}` : "";
  const rows = await all(conn, `SELECT ${summaryColumns} FROM traffic_samples ${where} ORDER BY start_time DESC, id DESC LIMIT ${limit + 1}`, params);
  const page = newestPage(rows.map(toSummary), limit);
  // Newest first for the caller.
  return { rows: page.rows.reverse(), truncated: page.truncated };
}

export async function getTrafficSample(conn: Conn, id: string): Promise<StoredTrafficSample | null> {
  const rows = await all(conn, `SELECT ${allColumns} FROM traffic_samples WHERE id = $1`, [id]);
  const r = rows[0];
  if (!r) return null;
  return {
    ...toSummary(r),
    receivedAt: date(r.received_at),
    requestHeaders: headers(r.request_headers),
    responseHeaders: headers(r.response_headers),
    requestBody: Buffer.from(str(r.request_body), "base64"),
    requestBodyTruncated: Boolean(r.request_body_truncated),
    requestBodySize: num(r.request_body_size),
    responseBody: Buffer.from(str(r.response_body), "base64"),
    responseBodyTruncated: Boolean(r.response_body_truncated),
    responseBodySize: num(r.response_body_size),
    sizeBytes: num(r.size_bytes),
  };
}

export async function trafficStats(conn: Conn): Promise<TrafficStats> {
  const rows = await all(conn, "SELECT count(*) AS n, coalesce(sum(size_bytes), 0) AS b FROM traffic_samples");
  return { samples: num(rows[0]?.n), bytes: num(rows[0]?.b) };
}

/** Drops samples that started before now - maxAgeMs, then the oldest beyond maxBytes. */
export async function pruneTraffic(conn: Conn, bounds: { maxBytes: number; maxAgeMs: number }, now: Date): Promise<TrafficPrune> {
  const byAge = await exec(conn, "DELETE FROM traffic_samples WHERE start_time < $1", [ts(new Date(now.getTime() - bounds.maxAgeMs))]);
  const byBytes = await exec(
    conn,
    `DELETE FROM traffic_samples WHERE id IN (
       SELECT id FROM (SELECT id, sum(size_bytes) OVER (ORDER BY start_time DESC, id DESC ROWS UNBOUNDED PRECEDING) AS total FROM traffic_samples)
       WHERE total > $1)`,
    [bounds.maxBytes],
  );
  return { byAge, byBytes };
}
