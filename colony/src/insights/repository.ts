// The insights table: findings become rows, deduplicated while they last.
//
// A row is identified across runs by its dedupe key (detector, service, key),
// kept in `details` with the evidence, the evidence lines, the
// recommendations, first/last sighting and the number of sightings.
// `expires_at` is the last sighting + ttl. While a row is not expired:
//   - status active:    a new sighting updates it (evidence, title, last_seen, expiry);
//   - status dismissed: a new sighting only extends its expiry, so the
//                       condition is not raised again while it lasts.
// Once expired, the next sighting starts a new row. Active rows past their
// expiry are marked expired on the next run (and read as expired before that).
import { listValue } from "@duckdb/node-api";
import { all, date, exec, jsonObject, num, str, transaction, ts, type Conn, type Row } from "@coral/common/duckdb";
import type { Finding, InsightPriority, InsightRecord, InsightStatus, InsightType } from "./types.ts";

export type InsightFilter = InsightStatus | "all";

export interface ListInsightsQuery {
  /** Default "active". */
  status?: InsightFilter;
  /** Default 50. */
  limit?: number;
  /** Only insights affecting this service. */
  service?: string;
}

export interface ApplyResult {
  created: number;
  updated: number;
  /** Sightings of dismissed insights (not raised again). */
  suppressed: number;
  /** Active insights that expired in this run. */
  expired: number;
  /** Ids of the rows each finding went to, in order. */
  ids: number[];
}

export function dedupeKey(f: { detector: string; service: string; key: string }): string {
  return `${f.detector}|${f.service}|${f.key}`;
}

const effectiveStatus = `CASE WHEN status = 'active' AND expires_at <= $1 THEN 'expired' ELSE status END`;
const columns = `id, created_at, insight_type, priority, title, summary, CAST(details AS VARCHAR) AS details,
  affected_services, ${effectiveStatus} AS eff_status, confidence, expires_at`;

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : [];
}

function toRecord(r: Row): InsightRecord {
  const d = jsonObject(r.details);
  const lastSeen = typeof d.last_seen === "string" ? new Date(d.last_seen) : date(r.created_at);
  return {
    id: num(r.id),
    detector: str(d.detector),
    service: str(d.service),
    key: str(d.key),
    type: str(r.insight_type) as InsightType,
    priority: str(r.priority) as InsightPriority,
    title: str(r.title),
    summary: str(r.summary),
    evidence: d.evidence !== null && typeof d.evidence === "object" ? (d.evidence as Record<string, unknown>) : {},
    evidenceLines: strings(d.evidence_lines),
    recommendations: strings(d.recommendations),
    affectedServices: strings(r.affected_services),
    confidence: num(r.confidence),
    status: str(r.eff_status) as InsightStatus,
    createdAt: date(r.created_at),
    lastSeen,
    expiresAt: date(r.expires_at),
    occurrences: num(d.occurrences) || 1,
    dismissedAt: typeof d.dismissed_at === "string" ? new Date(d.dismissed_at) : null,
    dismissedBy: str(d.dismissed_by),
  };
}

function findingDetails(f: Finding, now: Date, previous: Record<string, unknown> = {}): string {
  return JSON.stringify({
    ...previous,
    detector: f.detector,
    service: f.service,
    key: f.key,
    dedupe_key: dedupeKey(f),
    evidence: f.evidence,
    evidence_lines: f.evidenceLines,
    recommendations: f.recommendations,
    first_seen: typeof previous.first_seen === "string" ? previous.first_seen : now.toISOString(),
    last_seen: now.toISOString(),
    occurrences: num(previous.occurrences) + 1,
  });
}

/** Writer side, one transaction: expire, then insert or refresh a row per finding. */
export async function applyFindings(conn: Conn, findings: readonly Finding[], now: Date, ttlMs: number): Promise<ApplyResult> {
  return transaction(conn, async () => {
    const result: ApplyResult = { created: 0, updated: 0, suppressed: 0, expired: 0, ids: [] };
    result.expired = await exec(conn, "UPDATE insights SET status = 'expired' WHERE status = 'active' AND expires_at <= $1", [ts(now)]);
    const live = await all(
      conn,
      `SELECT id, status, CAST(details AS VARCHAR) AS details FROM insights
       WHERE status IN ('active', 'dismissed') AND expires_at > $1 ORDER BY id`,
      [ts(now)],
    );
    const byKey = new Map<string, { id: number; status: string; details: Record<string, unknown> }>();
    for (const r of live) {
      const details = jsonObject(r.details);
      byKey.set(str(details.dedupe_key), { id: num(r.id), status: str(r.status), details });
    }
    const expires = ts(new Date(now.getTime() + ttlMs));
    for (const f of findings) {
      const key = dedupeKey(f);
      const existing = byKey.get(key);
      const details = findingDetails(f, now, existing?.details);
      if (existing?.status === "active") {
        await exec(
          conn,
          `UPDATE insights SET insight_type = $2, priority = $3, title = $4, summary = $5, details = $6::JSON,
             affected_services = $7::TEXT[], confidence = $8, expires_at = $9 WHERE id = $1`,
          [BigInt(existing.id), f.type, f.priority, f.title, f.summary, details, listValue(f.affectedServices), f.confidence, expires],
        );
        result.updated++;
        result.ids.push(existing.id);
      } else if (existing) {
        await exec(conn, "UPDATE insights SET details = $2::JSON, expires_at = $3 WHERE id = $1", [BigInt(existing.id), details, expires]);
        result.suppressed++;
        result.ids.push(existing.id);
      } else {
        const [row] = await all(
          conn,
          `INSERT INTO insights (created_at, insight_type, priority, title, summary, details, affected_services, status, confidence, expires_at)
           VALUES ($1, $2, $3, $4, $5, $6::JSON, $7::TEXT[], 'active', $8, $9) RETURNING id`,
          [ts(now), f.type, f.priority, f.title, f.summary, details, listValue(f.affectedServices), f.confidence, expires],
        );
        const id = num(row?.id);
        byKey.set(key, { id, status: "active", details: jsonObject(details) });
        result.created++;
        result.ids.push(id);
      }
    }
    return result;
  });
}

const maxLimit = 1000;

export async function listInsights(conn: Conn, q: ListInsightsQuery, now: Date): Promise<InsightRecord[]> {
  const status = q.status ?? "active";
  const params: Parameters<typeof all>[2] = [ts(now)];
  const where: string[] = [];
  if (status !== "all") {
    params.push(status);
    where.push(`${effectiveStatus} = $${params.length}`);
  }
  if (q.service) {
    params.push(q.service);
    where.push(`list_contains(affected_services, $${params.length})`);
  }
  const limit = Math.min(Math.max(1, Math.floor(q.limit ?? 50)), maxLimit);
  const rows = await all(
    conn,
    `SELECT ${columns} FROM insights ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
     ORDER BY CASE ${effectiveStatus} WHEN 'active' THEN 0 WHEN 'dismissed' THEN 1 ELSE 2 END,
              CASE priority WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, created_at DESC, id
     LIMIT ${limit}`,
    params,
  );
  return rows.map(toRecord);
}

export async function getInsight(conn: Conn, id: number, now: Date): Promise<InsightRecord | null> {
  const rows = await all(conn, `SELECT ${columns} FROM insights WHERE id = $2`, [ts(now), BigInt(id)]);
  return rows[0] ? toRecord(rows[0]) : null;
}

/** Marks one insight dismissed (idempotent). Null when no insight has that id. */
export async function dismissInsight(conn: Conn, id: number, now: Date, by: string): Promise<InsightRecord | null> {
  return transaction(conn, async () => {
    const rows = await all(conn, "SELECT status, CAST(details AS VARCHAR) AS details FROM insights WHERE id = $1", [BigInt(id)]);
    const row = rows[0];
    if (!row) return null;
    if (str(row.status) !== "dismissed") {
      const details = { ...jsonObject(row.details), dismissed_at: now.toISOString(), dismissed_by: by };
      await exec(conn, "UPDATE insights SET status = 'dismissed', details = $2::JSON WHERE id = $1", [BigInt(id), JSON.stringify(details)]);
    }
    return getInsight(conn, id, now);
  });
}

export async function countActiveInsights(conn: Conn, now: Date): Promise<number> {
  const [row] = await all(conn, "SELECT count(*) AS n FROM insights WHERE status = 'active' AND expires_at > $1", [ts(now)]);
  return num(row?.n);
}
