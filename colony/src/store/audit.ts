// The audit log: who did what to which target, append-only.
import { all, clampLimit, date, exec, str, ts, type Conn, type Row } from "./sql.ts";
import type { AuditRow } from "./types.ts";

function toAudit(r: Row): AuditRow {
  let details: Record<string, unknown> = {};
  if (typeof r.details === "string" && r.details !== "") {
    try {
      details = JSON.parse(r.details) as Record<string, unknown>;
    } catch {
      details = { raw: r.details };
    }
  }
  return { at: date(r.at), actor: str(r.actor), action: str(r.action), target: str(r.target), details };
}

export async function appendAudit(conn: Conn, row: AuditRow): Promise<void> {
  if (!row.actor || !row.action) throw new Error("appendAudit: actor and action are required");
  await exec(conn, `INSERT INTO audit_log ("at", actor, action, target, details) VALUES ($1, $2, $3, $4, $5::JSON)`, [
    ts(row.at),
    row.actor,
    row.action,
    row.target,
    JSON.stringify(row.details ?? {}),
  ]);
}

/** Newest first. */
export async function listAudit(conn: Conn, limit: number): Promise<AuditRow[]> {
  const rows = await all(conn, `SELECT * FROM audit_log ORDER BY "at" DESC, id DESC LIMIT ${clampLimit(limit)}`);
  return rows.map(toAudit);
}
