// The debug_sessions table: one row per session, rewritten on every
// transition of its actor, so sessions can be listed (and audited) from SQL.
import { all, date, exec, jsonOrNull, str, ts, type Conn } from "@coral/common/duckdb";
import type { DebugSessionView } from "./view.ts";

export async function upsertSession(conn: Conn, v: DebugSessionView, now: Date): Promise<void> {
  const t = (ms: number | null) => (ms === null ? null : ts(new Date(ms)));
  await exec(
    conn,
    `INSERT OR REPLACE INTO debug_sessions
       (session_id, collector_id, service_name, function_name, agent_id, state, requested_by,
        created_at, started_at, expires_at, ended_at, reason, view, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::JSON, $14)`,
    [
      v.sessionId,
      v.collectorId,
      v.serviceName,
      v.functionName,
      v.agentId,
      v.state,
      v.requestedBy,
      ts(new Date(v.createdAtMs)),
      t(v.startedAtMs),
      t(v.expiresAtMs),
      t(v.endedAtMs),
      v.reason,
      JSON.stringify(v),
      ts(now),
    ],
  );
}

export interface SessionFilter {
  state?: string;
  serviceName?: string;
  limit: number;
}

/** Newest first. */
export async function listSessions(conn: Conn, f: SessionFilter): Promise<DebugSessionView[]> {
  const params = [];
  const conds = [];
  if (f.state) {
    params.push(f.state);
    conds.push(`state = $${params.length}`);
  }
  if (f.serviceName) {
    params.push(f.serviceName);
    conds.push(`service_name = $${params.length}`);
  }
  const where = conds.length ? `WHERE ${conds.join(" AND ")}` : "";
  const rows = await all(conn, `SELECT view FROM debug_sessions ${where} ORDER BY created_at DESC, session_id LIMIT ${Math.max(1, Math.min(f.limit, 1000))}`, params);
  return rows.flatMap((r) => {
    const v = jsonOrNull<DebugSessionView>(r.view);
    return v ? [v] : [];
  });
}

export async function getSession(conn: Conn, sessionId: string): Promise<DebugSessionView | null> {
  const rows = await all(conn, `SELECT view, updated_at FROM debug_sessions WHERE session_id = $1`, [sessionId]);
  const r = rows[0];
  if (!r) return null;
  void date(r.updated_at);
  return jsonOrNull<DebugSessionView>(str(r.view));
}
