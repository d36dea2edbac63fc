// The control plane's tables (see migration "control plane"): feature_flags,
// rollback_history, sdk_reports, service_versions. Functions take a
// connection; callers go through ColonyStore.write/read.
import { create, fromJson, toJson, type JsonValue } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { FlagSchema, type Flag } from "@coral/proto/gen/coral/control/v1/flags_pb";
import { ComponentHealthSchema, GetHealthResponse_Status, type ComponentHealth, type GetHealthResponse, type GetInfoResponse } from "@coral/proto/gen/coral/sdk/v1/sdk_pb";
import { all, date, dateOrNull, exec, str, ts, tsOrNull, type Conn, type Row } from "../store/sql.ts";

function json<T>(value: unknown, fallback: T): T {
  if (typeof value !== "string" || value === "") return fallback;
  try {
    return JSON.parse(value) as T;
  } catch {
    return fallback;
  }
}

// ---- feature flags ----

function toFlag(r: Row): Flag {
  const rules = json<{ user_ids?: string[] }>(r.targeting_rules, {});
  return create(FlagSchema, {
    name: str(r.flag_name),
    service: str(r.service_id),
    enabled: Boolean(r.enabled),
    rolloutPercentage: Number(r.rollout_percentage),
    userIds: rules.user_ids ?? [],
    updatedAt: timestampFromDate(date(r.updated_at)),
    updatedBy: str(r.updated_by),
  });
}

export async function listFlags(conn: Conn, service?: string): Promise<Flag[]> {
  const rows = service
    ? await all(conn, "SELECT * FROM feature_flags WHERE service_id = $1 ORDER BY flag_name", [service])
    : await all(conn, "SELECT * FROM feature_flags ORDER BY service_id, flag_name");
  return rows.map(toFlag);
}

export async function getFlag(conn: Conn, service: string, name: string): Promise<Flag | null> {
  const rows = await all(conn, "SELECT * FROM feature_flags WHERE service_id = $1 AND flag_name = $2", [service, name]);
  return rows[0] ? toFlag(rows[0]) : null;
}

export async function saveFlag(conn: Conn, f: { name: string; service: string; enabled: boolean; rollout: number; userIds: string[]; at: Date; by: string }): Promise<void> {
  await exec(
    conn,
    `INSERT OR REPLACE INTO feature_flags (flag_name, service_id, enabled, rollout_percentage, targeting_rules, updated_at, updated_by)
     VALUES ($1, $2, $3, $4, $5::JSON, $6, $7)`,
    [f.name, f.service, f.enabled, f.rollout, JSON.stringify({ user_ids: f.userIds }), ts(f.at), f.by],
  );
}

// ---- SDK reports and versions ----

const healthWords: Record<GetHealthResponse_Status, string> = {
  [GetHealthResponse_Status.UNSPECIFIED]: "unknown",
  [GetHealthResponse_Status.HEALTHY]: "healthy",
  [GetHealthResponse_Status.DEGRADED]: "degraded",
  [GetHealthResponse_Status.UNHEALTHY]: "unhealthy",
};

export interface SdkReportRow {
  agentId: string;
  service: string;
  version: string;
  gitCommit: string;
  overallHealth: string;
  rollbackHandler: boolean;
  components: ComponentHealth[];
  updatedAt: Date;
}

export async function saveSdkReport(conn: Conn, agentId: string, service: string, info: GetInfoResponse, health: GetHealthResponse | undefined, at: Date): Promise<void> {
  await exec(
    conn,
    `INSERT OR REPLACE INTO sdk_reports (agent_id, service_id, version, git_commit, overall_health, info, components, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6::JSON, $7::JSON, $8)`,
    [
      agentId,
      service,
      info.serviceVersion,
      info.gitCommit,
      health ? healthWords[health.overallStatus] : "unknown",
      JSON.stringify({ rollback_handler: info.rollbackHandler, git_branch: info.gitBranch, sdk_version: info.sdkVersion, runtime: info.runtimeVersion }),
      JSON.stringify((health?.components ?? []).map((c) => toJson(ComponentHealthSchema, c))),
      ts(at),
    ],
  );
}

export async function dropSdkReport(conn: Conn, agentId: string): Promise<void> {
  await exec(conn, "DELETE FROM sdk_reports WHERE agent_id = $1", [agentId]);
}

export async function listSdkReports(conn: Conn): Promise<Map<string, SdkReportRow>> {
  const rows = await all(conn, "SELECT * FROM sdk_reports");
  return new Map(
    rows.map((r) => {
      const info = json<{ rollback_handler?: boolean }>(r.info, {});
      const components = json<JsonValue[]>(r.components, []).flatMap((c) => {
        try {
          return [fromJson(ComponentHealthSchema, c)];
        } catch {
          return [];
        }
      });
      return [
        str(r.agent_id),
        {
          agentId: str(r.agent_id),
          service: str(r.service_id),
          version: str(r.version),
          gitCommit: str(r.git_commit),
          overallHealth: str(r.overall_health),
          rollbackHandler: Boolean(info.rollback_handler),
          components,
          updatedAt: date(r.updated_at),
        },
      ];
    }),
  );
}

export async function recordVersion(conn: Conn, service: string, version: string, at: Date): Promise<void> {
  if (!version) return;
  await exec(
    conn,
    `INSERT INTO service_versions (service_id, version, first_seen, last_seen) VALUES ($1, $2, $3, $3)
     ON CONFLICT (service_id, version) DO UPDATE SET last_seen = excluded.last_seen`,
    [service, version, ts(at)],
  );
}

/** The version the service reported most recently before `current`, or null. */
export async function previousVersion(conn: Conn, service: string, current: string): Promise<string | null> {
  const rows = await all(conn, "SELECT version FROM service_versions WHERE service_id = $1 AND version <> $2 ORDER BY last_seen DESC LIMIT 1", [service, current]);
  return rows[0] ? str(rows[0].version) : null;
}

// ---- rollback history ----

export interface RollbackHistoryRow {
  rollbackId: string;
  service: string;
  fromVersion: string;
  toVersion: string;
  strategy: string;
  initiatedBy: string;
  state: string;
  success: boolean | null;
  startedAt: Date;
  completedAt: Date | null;
  error: string;
  steps: Array<{ at: string; description: string; outcome: string }>;
  plan: string[];
  undoPlan: string[];
  recordRevision: string;
}

/** The plan column: the commands, their undo and the revision record (rows from before undo hold just the commands). */
type StoredPlan = string[] | { commands?: string[]; undo?: string[]; record_revision?: string };

export async function saveRollback(conn: Conn, r: RollbackHistoryRow): Promise<void> {
  const duration = r.completedAt ? Math.round((r.completedAt.getTime() - r.startedAt.getTime()) / 1000) : null;
  await exec(
    conn,
    `INSERT OR REPLACE INTO rollback_history (rollback_id, service_id, from_version, to_version, strategy, initiated_by, state, success,
       started_at, completed_at, duration_seconds, error_message, steps, plan)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13::JSON, $14::JSON)`,
    [
      r.rollbackId,
      r.service,
      r.fromVersion,
      r.toVersion,
      r.strategy,
      r.initiatedBy,
      r.state,
      r.success,
      ts(r.startedAt),
      tsOrNull(r.completedAt),
      duration,
      r.error,
      JSON.stringify(r.steps),
      JSON.stringify({ commands: r.plan, undo: r.undoPlan, record_revision: r.recordRevision } satisfies StoredPlan),
    ],
  );
}

function toRollback(r: Row): RollbackHistoryRow {
  const stored = json<StoredPlan>(r.plan, []);
  const plan = Array.isArray(stored) ? { commands: stored } : stored;
  return {
    rollbackId: str(r.rollback_id),
    service: str(r.service_id),
    fromVersion: str(r.from_version),
    toVersion: str(r.to_version),
    strategy: str(r.strategy),
    initiatedBy: str(r.initiated_by),
    state: str(r.state),
    success: r.success === null || r.success === undefined ? null : Boolean(r.success),
    startedAt: date(r.started_at),
    completedAt: dateOrNull(r.completed_at),
    error: str(r.error_message),
    steps: json(r.steps, []),
    plan: plan.commands ?? [],
    undoPlan: plan.undo ?? [],
    recordRevision: plan.record_revision ?? "",
  };
}

export async function getRollback(conn: Conn, id: string): Promise<RollbackHistoryRow | null> {
  const rows = await all(conn, "SELECT * FROM rollback_history WHERE rollback_id = $1", [id]);
  return rows[0] ? toRollback(rows[0]) : null;
}

export async function listRollbacks(conn: Conn, service: string, limit: number): Promise<RollbackHistoryRow[]> {
  const rows = service
    ? await all(conn, `SELECT * FROM rollback_history WHERE service_id = $1 ORDER BY started_at DESC LIMIT ${limit}`, [service])
    : await all(conn, `SELECT * FROM rollback_history ORDER BY started_at DESC LIMIT ${limit}`);
  return rows.map(toRollback);
}
