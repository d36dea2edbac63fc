// Events of the live-debugging uprobe collectors: appended in batches as
// bpftrace prints them, read back oldest first by seq (the pagination cursor).
import { all, checkDate, date, exec, jsonOrNull, num, str, strOrNull, ts, type Conn, type Params, type Row } from "./sql.ts";
import type { StoredUprobeEvent, UprobeEventQuery, UprobeEventRow } from "./types.ts";

const columns = "collector_id, seq, timestamp, event_type, pid, tid, duration_ns, args, return_value, goroutine";
const maxRowsPerInsert = 500;

export async function recordUprobeEvents(conn: Conn, collectorId: string, rows: readonly UprobeEventRow[]): Promise<number> {
  if (!collectorId) throw new TypeError("recordUprobeEvents: a collector id is required");
  for (let i = 0; i < rows.length; i += maxRowsPerInsert) {
    const chunk = rows.slice(i, i + maxRowsPerInsert);
    const params: Params = [];
    const values = chunk.map((r) => {
      checkDate(r.timestamp, "uprobe event timestamp");
      const base = params.length;
      params.push(
        collectorId,
        r.seq,
        ts(r.timestamp),
        r.type,
        r.pid,
        r.tid,
        r.durationNs ?? null,
        r.args ? JSON.stringify(r.args) : null,
        r.returnValue ?? null,
        r.goroutine ?? null,
      );
      return `(${Array.from({ length: 10 }, (_, k) => `$${base + k + 1}`).join(", ")})`;
    });
    await exec(conn, `INSERT INTO uprobe_events (${columns}) VALUES ${values.join(", ")} ON CONFLICT DO NOTHING`, params);
  }
  return rows.length;
}

function toEvent(r: Row): StoredUprobeEvent {
  return {
    collectorId: str(r.collector_id),
    seq: num(r.seq),
    timestamp: date(r.timestamp),
    type: str(r.event_type) as StoredUprobeEvent["type"],
    pid: num(r.pid),
    tid: num(r.tid),
    durationNs: r.duration_ns === null || r.duration_ns === undefined ? undefined : num(r.duration_ns),
    args: jsonOrNull<string[]>(r.args) ?? undefined,
    returnValue: strOrNull(r.return_value) ?? undefined,
    goroutine: strOrNull(r.goroutine) ?? undefined,
  };
}

/** Oldest first; `hasMore` when more rows match after this page. */
export async function queryUprobeEvents(conn: Conn, q: UprobeEventQuery): Promise<{ rows: StoredUprobeEvent[]; hasMore: boolean }> {
  const params: Params = [q.collectorId, q.afterSeq ?? 0];
  const conds = ["collector_id = $1", "seq > $2"];
  if (q.since) {
    params.push(ts(checkDate(q.since, "since")));
    conds.push(`timestamp >= $${params.length}`);
  }
  if (q.until) {
    params.push(ts(checkDate(q.until, "until")));
    conds.push(`timestamp < $${params.length}`);
  }
  const limit = Math.max(1, Math.min(q.limit, 10_000));
  const rows = await all(conn, `SELECT ${columns} FROM uprobe_events WHERE ${conds.join(" AND ")} ORDER BY seq LIMIT ${limit + 1}`, params);
  return { rows: rows.slice(0, limit).map(toEvent), hasMore: rows.length > limit };
}
