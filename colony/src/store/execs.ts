// Records of `coral exec`: one row per command, written when it starts (so a
// colony that dies mid-command still shows who ran what) and completed when
// it ends.
import { all, date, dateOrNull, exec, num, str, ts, type Conn, type Row } from "./sql.ts";

export type ExecOutcome = "running" | "exited" | "timed_out" | "truncated" | "refused" | "failed";

export interface ExecRecordRow {
  execId: string;
  kind: "exec" | "shell";
  /** A shell's asciicast v2 file. */
  recording: string | null;
  startedAt: Date;
  endedAt: Date | null;
  actor: string;
  serviceName: string;
  agentId: string | null;
  argv: string[];
  host: boolean;
  outcome: ExecOutcome;
  exitCode: number | null;
  signal: string | null;
  durationMs: number | null;
  outputBytes: number | null;
  error: string | null;
}

export type ExecEnd = Pick<ExecRecordRow, "outcome" | "exitCode" | "signal" | "durationMs" | "outputBytes" | "error"> & { endedAt: Date; agentId?: string | null };

function toRecord(r: Row): ExecRecordRow {
  const nullableNum = (v: unknown) => (v === null || v === undefined ? null : num(v));
  const nullableStr = (v: unknown) => (v === null || v === undefined ? null : str(v));
  return {
    execId: str(r.exec_id),
    kind: str(r.kind) === "shell" ? "shell" : "exec",
    recording: nullableStr(r.recording),
    startedAt: date(r.started_at),
    endedAt: dateOrNull(r.ended_at),
    actor: str(r.actor),
    serviceName: str(r.service_name),
    agentId: nullableStr(r.agent_id),
    argv: JSON.parse(str(r.argv)) as string[],
    host: r.host === true,
    outcome: str(r.outcome) as ExecOutcome,
    exitCode: nullableNum(r.exit_code),
    signal: nullableStr(r.signal),
    durationMs: nullableNum(r.duration_ms),
    outputBytes: nullableNum(r.output_bytes),
    error: nullableStr(r.error),
  };
}

export async function insertExec(
  conn: Conn,
  row: Pick<ExecRecordRow, "execId" | "startedAt" | "actor" | "serviceName" | "agentId" | "argv" | "host" | "outcome" | "error"> & Partial<Pick<ExecRecordRow, "kind" | "recording">>,
): Promise<void> {
  await exec(
    conn,
    `INSERT INTO exec_sessions (exec_id, kind, recording, started_at, actor, service_name, agent_id, argv, host, outcome, error)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8::JSON, $9, $10, $11)`,
    [row.execId, row.kind ?? "exec", row.recording ?? null, ts(row.startedAt), row.actor, row.serviceName, row.agentId, JSON.stringify(row.argv), row.host, row.outcome, row.error],
  );
}

export async function getExec(conn: Conn, execId: string): Promise<ExecRecordRow | null> {
  const rows = await all(conn, `${selectExecs} WHERE exec_id = $1`, [execId]);
  return rows[0] ? toRecord(rows[0]) : null;
}

export async function finishExec(conn: Conn, execId: string, end: ExecEnd): Promise<void> {
  await exec(
    conn,
    `UPDATE exec_sessions SET ended_at = $2, outcome = $3, exit_code = $4, signal = $5, duration_ms = $6, output_bytes = $7, error = $8,
       agent_id = coalesce($9, agent_id)
     WHERE exec_id = $1`,
    [execId, ts(end.endedAt), end.outcome, end.exitCode, end.signal, end.durationMs, end.outputBytes, end.error, end.agentId ?? null],
  );
}

const selectExecs = `SELECT exec_id, kind, recording, started_at, ended_at, actor, service_name, agent_id, CAST(argv AS VARCHAR) AS argv, host, outcome,
  exit_code, signal, duration_ms, output_bytes, error FROM exec_sessions`;

export async function listExecs(conn: Conn, limit: number, serviceName?: string): Promise<ExecRecordRow[]> {
  const rows = await all(
    conn,
    `${selectExecs} ${serviceName ? "WHERE service_name = $2" : ""} ORDER BY started_at DESC, exec_id LIMIT $1`,
    serviceName ? [limit, serviceName] : [limit],
  );
  return rows.map(toRecord);
}
