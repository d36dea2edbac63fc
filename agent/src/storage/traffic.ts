// Traffic samples the app's Coral SDK handed over: one row per request and
// response (headers as JSON, bodies as BLOBs of at most the SDK's limit),
// kept within a byte budget and an age (pruneTraffic), queried with filters
// at the agent so only what the caller asked for leaves it.
import { blob, bool, checkDate, checkLimit, date, isTrue, marks, num, str, ts, newestPage, Where, type Conn, type Row } from "./sql.ts";
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

/** Stores the samples not stored yet (ids already there, or twice in `list`, are skipped), in one transaction. */
export function recordTrafficSamples(conn: Conn, list: readonly TrafficSampleInput[], receivedAt: Date): number {
  for (const s of list) checkTrafficSample(s);
  if (list.length === 0) return 0;
  const at = ts(receivedAt);
  const insert = conn.stmt(`INSERT OR IGNORE INTO traffic_samples (${allColumns}) VALUES (${marks(18)})`);
  return conn.tx(() => {
    let n = 0;
    for (const s of list) {
      n += insert.run(
        s.id,
        s.method,
        s.path,
        s.route,
        s.status,
        ts(s.startTime),
        s.durationMs,
        s.reason,
        at,
        JSON.stringify(s.requestHeaders),
        JSON.stringify(s.responseHeaders),
        blob(s.requestBody),
        bool(s.requestBodyTruncated),
        s.requestBodySize,
        blob(s.responseBody),
        bool(s.responseBodyTruncated),
        s.responseBodySize,
        sampleBytes(s),
      ).changes;
    }
    return n;
  });
}

/** Matching samples, newest first (the newest `limit`). */
export function queryTraffic(conn: Conn, q: TrafficQuery): QueryPage<TrafficSummary> {
  const limit = checkLimit(q.limit);
  const where = new Where();
  if (q.pathPrefix) where.add("substr(path, 1, length(?)) = ?", q.pathPrefix, q.pathPrefix);
  if (q.method) where.eq("method", q.method);
  if (q.status) {
    if (q.status.kind === "exact") where.eq("status", q.status.value);
    else where.add("status >= ? AND status < ?", q.status.value * 100, q.status.value * 100 + 100);
  }
  where.range("start_time", q.since, undefined);
  const rows = conn.all(`SELECT ${summaryColumns} FROM traffic_samples ${where} ORDER BY start_time DESC, id DESC LIMIT ?`, [...where.params, limit + 1]);
  const page = newestPage(rows.map(toSummary), limit);
  // Newest first for the caller.
  return { rows: page.rows.reverse(), truncated: page.truncated };
}

export function getTrafficSample(conn: Conn, id: string): StoredTrafficSample | null {
  const r = conn.get(`SELECT ${allColumns} FROM traffic_samples WHERE id = ?`, [id]);
  if (!r) return null;
  return {
    ...toSummary(r),
    receivedAt: date(r.received_at),
    requestHeaders: headers(r.request_headers),
    responseHeaders: headers(r.response_headers),
    requestBody: r.request_body as Buffer,
    requestBodyTruncated: isTrue(r.request_body_truncated),
    requestBodySize: num(r.request_body_size),
    responseBody: r.response_body as Buffer,
    responseBodyTruncated: isTrue(r.response_body_truncated),
    responseBodySize: num(r.response_body_size),
    sizeBytes: num(r.size_bytes),
  };
}

export function trafficStats(conn: Conn): TrafficStats {
  const row = conn.get("SELECT count(*) AS n, coalesce(sum(size_bytes), 0) AS b FROM traffic_samples");
  return { samples: num(row?.n), bytes: num(row?.b) };
}

/** Drops samples that started before now - maxAgeMs, then the oldest beyond maxBytes. */
export function pruneTraffic(conn: Conn, bounds: { maxBytes: number; maxAgeMs: number }, now: Date): TrafficPrune {
  checkDate(now, "now");
  return conn.tx(() => {
    const byAge = conn.run("DELETE FROM traffic_samples WHERE start_time < ?", [ts(new Date(now.getTime() - bounds.maxAgeMs))]);
    const byBytes = conn.run(
      `DELETE FROM traffic_samples WHERE id IN (
         SELECT id FROM (SELECT id, sum(size_bytes) OVER (ORDER BY start_time DESC, id DESC ROWS UNBOUNDED PRECEDING) AS total FROM traffic_samples)
         WHERE total > ?)`,
      [bounds.maxBytes],
    );
    return { byAge, byBytes };
  });
}
