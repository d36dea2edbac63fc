// Live debugging: the uprobe collectors' requests (so a restarted agent can
// resume them) and their events, appended in batches as the sessions print
// them, read back oldest first by seq (the pagination cursor).
import { all, checkDate, date, exec, jsonOrNull, num, str, strOrNull, ts, type Conn, type Params, type Row } from "./sql.ts";
import type { CollectorKind, StoredUprobeEvent, UprobeCollectorEnd, UprobeCollectorRecord, UprobeEventQuery, UprobeEventRow, UprobeHistory } from "./types.ts";

const columns = "collector_id, seq, timestamp, event_type, pid, tid, duration_ns, args, return_value, goroutine, value";
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
        r.value ?? null,
      );
      return `(${Array.from({ length: 11 }, (_, k) => `$${base + k + 1}`).join(", ")})`;
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
    value: strOrNull(r.value) ?? undefined,
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

const collectorColumns =
  "collector_id, label, function_name, duration_ms, capture_args, capture_return, sample_rate, max_events, started_at, expires_at, binary_path, is_go, pid, ended_at, stop_reason, stop_detail, slow_threshold_ms, kind, expression, condition, snapshot_count";

/** Stores a collector's request (again, when it is resumed on a new pid). */
export async function saveUprobeCollector(conn: Conn, c: UprobeCollectorRecord): Promise<void> {
  if (!c.collectorId) throw new TypeError("saveUprobeCollector: a collector id is required");
  checkDate(c.startedAt, "collector startedAt");
  checkDate(c.expiresAt, "collector expiresAt");
  await exec(
    conn,
    `INSERT OR REPLACE INTO uprobe_collectors (${collectorColumns}) VALUES (${Array.from({ length: 21 }, (_, k) => `$${k + 1}`).join(", ")})`,
    [
      c.collectorId,
      c.label,
      c.functionName,
      c.durationMs,
      c.captureArgs,
      c.captureReturn,
      c.sampleRate,
      c.maxEvents,
      ts(c.startedAt),
      ts(c.expiresAt),
      c.binary,
      c.isGo,
      c.pid,
      c.endedAt ? ts(c.endedAt) : null,
      c.stopReason,
      c.stopDetail,
      c.slowThresholdMs,
      c.kind ?? "function",
      c.expression ?? "",
      c.condition ?? "",
      c.snapshotCount ?? 0,
    ],
  );
}

/** Records how a collector ended; the first end wins. */
export async function endUprobeCollector(conn: Conn, collectorId: string, end: UprobeCollectorEnd): Promise<void> {
  await exec(conn, "UPDATE uprobe_collectors SET ended_at = $2, stop_reason = $3, stop_detail = $4 WHERE collector_id = $1 AND ended_at IS NULL", [
    collectorId,
    ts(checkDate(end.at, "collector end")),
    end.stopReason,
    end.detail,
  ]);
}

function toCollector(r: Row): UprobeCollectorRecord {
  return {
    collectorId: str(r.collector_id),
    label: str(r.label),
    functionName: str(r.function_name),
    durationMs: num(r.duration_ms),
    captureArgs: num(r.capture_args),
    captureReturn: r.capture_return === true,
    sampleRate: num(r.sample_rate),
    maxEvents: num(r.max_events),
    // Collectors stored before the column existed used the default.
    slowThresholdMs: r.slow_threshold_ms === null || r.slow_threshold_ms === undefined ? 100 : num(r.slow_threshold_ms),
    startedAt: date(r.started_at),
    expiresAt: date(r.expires_at),
    binary: str(r.binary_path),
    isGo: r.is_go === true,
    pid: num(r.pid),
    endedAt: r.ended_at === null || r.ended_at === undefined ? null : date(r.ended_at),
    stopReason: strOrNull(r.stop_reason),
    stopDetail: strOrNull(r.stop_detail),
    kind: (strOrNull(r.kind) ?? "function") as CollectorKind,
    expression: strOrNull(r.expression) ?? "",
    condition: strOrNull(r.condition) ?? "",
    snapshotCount: r.snapshot_count === null || r.snapshot_count === undefined ? 0 : num(r.snapshot_count),
  };
}

/** Collectors still running (ended_at NULL) or ended at or after `endedSince`, oldest first. */
export async function listUprobeCollectors(conn: Conn, endedSince: Date): Promise<UprobeCollectorRecord[]> {
  const rows = await all(conn, `SELECT ${collectorColumns} FROM uprobe_collectors WHERE ended_at IS NULL OR ended_at >= $1 ORDER BY started_at, collector_id`, [
    ts(checkDate(endedSince, "endedSince")),
  ]);
  return rows.map(toCollector);
}

/** What a collector stored before: its last seq, how many events, and the call durations (for its summary). */
export async function uprobeHistory(conn: Conn, collectorId: string): Promise<UprobeHistory> {
  const [totals] = await all(
    conn,
    "SELECT coalesce(max(seq), 0) AS last_seq, count(*) AS n, count(*) FILTER (WHERE event_type <> 'return') AS entries FROM uprobe_events WHERE collector_id = $1",
    [collectorId],
  );
  const durations = await all(conn, "SELECT duration_ns FROM uprobe_events WHERE collector_id = $1 AND event_type = 'return' AND duration_ns IS NOT NULL", [collectorId]);
  return {
    lastSeq: num(totals?.last_seq ?? 0),
    count: num(totals?.n ?? 0),
    entries: num(totals?.entries ?? 0),
    durationsNs: durations.map((r) => num(r.duration_ns)),
  };
}
