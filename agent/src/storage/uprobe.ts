// Live debugging: the uprobe collectors' requests (so a restarted agent can
// resume them) and their events, appended in batches as the sessions print
// them (one transaction per batch), read back oldest first by seq (the
// pagination cursor).
import { bool, checkDate, date, isTrue, jsonOrNull, marks, num, str, strOrNull, ts, type Conn, type Params, type Row } from "./sql.ts";
import type { CollectorKind, StoredUprobeEvent, UprobeCollectorEnd, UprobeCollectorRecord, UprobeEventQuery, UprobeEventRow, UprobeHistory } from "./types.ts";

const columns = "collector_id, seq, timestamp, event_type, pid, tid, duration_ns, args, return_value, goroutine, value";

export function recordUprobeEvents(conn: Conn, collectorId: string, rows: readonly UprobeEventRow[]): number {
  if (!collectorId) throw new TypeError("recordUprobeEvents: a collector id is required");
  for (const r of rows) checkDate(r.timestamp, "uprobe event timestamp");
  const insert = conn.stmt(`INSERT OR IGNORE INTO uprobe_events (${columns}) VALUES (${marks(11)})`);
  conn.tx(() => {
    for (const r of rows)
      insert.run(
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
  });
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
export function queryUprobeEvents(conn: Conn, q: UprobeEventQuery): { rows: StoredUprobeEvent[]; hasMore: boolean } {
  const params: Params = [q.collectorId, q.afterSeq ?? 0];
  const conds = ["collector_id = ?", "seq > ?"];
  if (q.since) {
    params.push(ts(checkDate(q.since, "since")));
    conds.push("timestamp >= ?");
  }
  if (q.until) {
    params.push(ts(checkDate(q.until, "until")));
    conds.push("timestamp < ?");
  }
  const limit = Math.max(1, Math.min(q.limit, 10_000));
  const rows = conn.all(`SELECT ${columns} FROM uprobe_events WHERE ${conds.join(" AND ")} ORDER BY seq LIMIT ?`, [...params, limit + 1]);
  return { rows: rows.slice(0, limit).map(toEvent), hasMore: rows.length > limit };
}

const collectorColumns =
  "collector_id, label, function_name, duration_ms, capture_args, capture_return, sample_rate, max_events, started_at, expires_at, binary_path, is_go, pid, ended_at, stop_reason, stop_detail, slow_threshold_ms, kind, expression, condition, snapshot_count";

/** Stores a collector's request (again, when it is resumed on a new pid). */
export function saveUprobeCollector(conn: Conn, c: UprobeCollectorRecord): void {
  if (!c.collectorId) throw new TypeError("saveUprobeCollector: a collector id is required");
  checkDate(c.startedAt, "collector startedAt");
  checkDate(c.expiresAt, "collector expiresAt");
  conn.run(
    `INSERT OR REPLACE INTO uprobe_collectors (${collectorColumns}) VALUES (${marks(21)})`,
    [
      c.collectorId,
      c.label,
      c.functionName,
      c.durationMs,
      c.captureArgs,
      bool(c.captureReturn),
      c.sampleRate,
      c.maxEvents,
      ts(c.startedAt),
      ts(c.expiresAt),
      c.binary,
      bool(c.isGo),
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
export function endUprobeCollector(conn: Conn, collectorId: string, end: UprobeCollectorEnd): void {
  conn.run("UPDATE uprobe_collectors SET ended_at = ?, stop_reason = ?, stop_detail = ? WHERE collector_id = ? AND ended_at IS NULL", [
    ts(checkDate(end.at, "collector end")),
    end.stopReason,
    end.detail,
    collectorId,
  ]);
}

function toCollector(r: Row): UprobeCollectorRecord {
  return {
    collectorId: str(r.collector_id),
    label: str(r.label),
    functionName: str(r.function_name),
    durationMs: num(r.duration_ms),
    captureArgs: num(r.capture_args),
    captureReturn: isTrue(r.capture_return),
    sampleRate: num(r.sample_rate),
    maxEvents: num(r.max_events),
    // Collectors stored before the column existed used the default.
    slowThresholdMs: r.slow_threshold_ms === null || r.slow_threshold_ms === undefined ? 100 : num(r.slow_threshold_ms),
    startedAt: date(r.started_at),
    expiresAt: date(r.expires_at),
    binary: str(r.binary_path),
    isGo: isTrue(r.is_go),
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
export function listUprobeCollectors(conn: Conn, endedSince: Date): UprobeCollectorRecord[] {
  const rows = conn.all(`SELECT ${collectorColumns} FROM uprobe_collectors WHERE ended_at IS NULL OR ended_at >= ? ORDER BY started_at, collector_id`, [
    ts(checkDate(endedSince, "endedSince")),
  ]);
  return rows.map(toCollector);
}

/** What a collector stored before: its last seq, how many events, and the call durations (for its summary). */
export function uprobeHistory(conn: Conn, collectorId: string): UprobeHistory {
  const totals = conn.get(
    "SELECT coalesce(max(seq), 0) AS last_seq, count(*) AS n, count(*) FILTER (WHERE event_type <> 'return') AS entries FROM uprobe_events WHERE collector_id = ?",
    [collectorId],
  );
  const durations = conn.all("SELECT duration_ns FROM uprobe_events WHERE collector_id = ? AND event_type = 'return' AND duration_ns IS NOT NULL ORDER BY seq", [collectorId]);
  return {
    lastSeq: num(totals?.last_seq ?? 0),
    count: num(totals?.n ?? 0),
    entries: num(totals?.entries ?? 0),
    durationsNs: durations.map((r) => num(r.duration_ns)),
  };
}
