// Process events (start, stop, crash, deploy, …), keyed by event_id.
import { randomUUID } from "node:crypto";
import { all, checkDate, checkLimit, date, jsonOrNull, newestPage, str, strOrNull, ts, Where, type Conn, type Row } from "./sql.ts";
import type { EventInput, EventQuery, QueryPage, StoredEvent } from "./types.ts";

const columns = "event_id, timestamp, event_type, process_name, details";

function toEvent(r: Row): StoredEvent {
  return {
    eventId: str(r.event_id),
    timestamp: date(r.timestamp),
    eventType: str(r.event_type),
    processName: strOrNull(r.process_name),
    details: jsonOrNull<Record<string, unknown>>(r.details),
  };
}

/** Writer side. Idempotent on eventId: a repeated id keeps (and returns) the first stored event. */
export async function recordEvent(conn: Conn, e: EventInput): Promise<StoredEvent> {
  checkDate(e.timestamp, "event timestamp");
  if (typeof e.eventType !== "string" || e.eventType === "") throw new TypeError("an event needs an eventType");
  if (e.eventId !== undefined && (typeof e.eventId !== "string" || e.eventId === "")) {
    throw new TypeError("eventId must be a non-empty string when given");
  }
  const eventId = e.eventId ?? randomUUID();
  const inserted = await all(
    conn,
    `INSERT INTO events (${columns}) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT DO NOTHING RETURNING ${columns}`,
    [eventId, ts(e.timestamp), e.eventType, e.processName ?? null, e.details == null ? null : JSON.stringify(e.details)],
  );
  const row = inserted[0] ?? (await all(conn, `SELECT ${columns} FROM events WHERE event_id = $1`, [eventId]))[0];
  if (!row) throw new Error(`event ${eventId} was neither stored nor found`);
  return toEvent(row);
}

export async function queryEvents(conn: Conn, q: EventQuery): Promise<QueryPage<StoredEvent>> {
  const limit = checkLimit(q.limit);
  const where = new Where()
    .eq("event_type", q.eventType)
    .eq("process_name", q.processName)
    .range("timestamp", q.since, q.until);
  const rows = await all(
    conn,
    `SELECT ${columns} FROM events ${where} ORDER BY timestamp DESC, rowid DESC LIMIT ${limit + 1}`,
    where.params,
  );
  return newestPage(rows.map(toEvent), limit);
}
