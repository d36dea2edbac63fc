// Process events (start, stop, crash, deploy, …), keyed by event_id.
import { randomUUID } from "node:crypto";
import { checkDate, checkLimit, date, jsonOrNull, newestPage, str, strOrNull, ts, Where, type Conn, type Row } from "./sql.ts";
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
export function recordEvent(conn: Conn, e: EventInput): StoredEvent {
  checkDate(e.timestamp, "event timestamp");
  if (typeof e.eventType !== "string" || e.eventType === "") throw new TypeError("an event needs an eventType");
  if (e.eventId !== undefined && (typeof e.eventId !== "string" || e.eventId === "")) {
    throw new TypeError("eventId must be a non-empty string when given");
  }
  const eventId = e.eventId ?? randomUUID();
  conn.run(`INSERT OR IGNORE INTO events (${columns}) VALUES (?, ?, ?, ?, ?)`, [
    eventId,
    ts(e.timestamp),
    e.eventType,
    e.processName ?? null,
    e.details == null ? null : JSON.stringify(e.details),
  ]);
  const row = conn.get(`SELECT ${columns} FROM events WHERE event_id = ?`, [eventId]);
  if (!row) throw new Error(`event ${eventId} was neither stored nor found`);
  return toEvent(row);
}

export function queryEvents(conn: Conn, q: EventQuery): QueryPage<StoredEvent> {
  const limit = checkLimit(q.limit);
  const where = new Where().eq("event_type", q.eventType).eq("process_name", q.processName).range("timestamp", q.since, q.until);
  const rows = conn.all(`SELECT ${columns} FROM events ${where} ORDER BY timestamp DESC, rowid DESC LIMIT ?`, [...where.params, limit + 1]);
  return newestPage(rows.map(toEvent), limit);
}
