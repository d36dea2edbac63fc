// Reading the event log.
import { all, clampLimit, date, str, ts, type Conn, type Params } from "./sql.ts";
import type { EventQuery, StoredEvent } from "./types.ts";

/** Newest first; `since` and `until` are inclusive; `service` is the service name. */
export async function queryEvents(conn: Conn, q: EventQuery): Promise<StoredEvent[]> {
  const params: Params = [];
  const where: string[] = [];
  const add = (clause: string, value: Params[number]): void => {
    params.push(value);
    where.push(clause.replace("?", `$${params.length}`));
  };
  if (q.service !== undefined) add("service_id = ?", q.service);
  if (q.eventType !== undefined) add("event_type = ?", q.eventType);
  if (q.since) add("timestamp >= ?", ts(q.since));
  if (q.until) add("timestamp <= ?", ts(q.until));
  const rows = await all(
    conn,
    `SELECT event_id, timestamp, service_id, event_type, CAST(details AS VARCHAR) AS details
     FROM events ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
     ORDER BY timestamp DESC, event_id DESC
     LIMIT ${clampLimit(q.limit)}`,
    params,
  );
  return rows.map((r) => ({
    eventId: str(r.event_id),
    timestamp: date(r.timestamp),
    service: str(r.service_id),
    eventType: str(r.event_type),
    detailsJson: r.details === null || r.details === undefined ? "{}" : str(r.details),
  }));
}
