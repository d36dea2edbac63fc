// Agent registrations (one row per agent) and the services they observe.
import { all, date, dateOrNull, exec, num, str, transaction, ts, tsOrNull, type Conn, type Row } from "./sql.ts";
import type { AgentRow } from "./types.ts";

const columns = `agent_id, service_name, port, address, version, hostname, tags, agent_url, registered_at,
  last_seen, health, pid, process_started_at, restart_count, cpu_percent, memory_bytes, process_count`;

function toAgent(r: Row): AgentRow {
  let tags: Record<string, string> = {};
  if (typeof r.tags === "string" && r.tags !== "") {
    try {
      tags = JSON.parse(r.tags) as Record<string, string>;
    } catch {
      tags = {};
    }
  }
  return {
    agentId: str(r.agent_id),
    serviceName: str(r.service_name),
    port: num(r.port),
    address: str(r.address),
    version: str(r.version),
    hostname: str(r.hostname),
    tags,
    agentUrl: str(r.agent_url),
    registeredAt: date(r.registered_at),
    lastSeen: date(r.last_seen),
    health: str(r.health),
    pid: num(r.pid),
    processStartedAt: dateOrNull(r.process_started_at),
    restartCount: num(r.restart_count),
    cpuPercent: num(r.cpu_percent),
    memoryBytes: num(r.memory_bytes),
    processCount: num(r.process_count ?? 0),
  };
}

function check(row: AgentRow): void {
  if (!row.agentId) throw new Error("upsertAgent: agentId is required");
  if (!row.serviceName) throw new Error(`upsertAgent ${row.agentId}: serviceName is required`);
  if (!Number.isInteger(row.port) || row.port < 0 || row.port > 65535) {
    throw new Error(`upsertAgent ${row.agentId}: port ${row.port} is not a TCP port`);
  }
}

/** Insert or replace the agent's row and refresh its service's row, in one transaction. */
export async function upsertAgent(conn: Conn, row: AgentRow): Promise<void> {
  check(row);
  await transaction(conn, async () => {
    await exec(
      conn,
      `INSERT INTO agents (${columns})
       VALUES ($1, $2, $3, $4, $5, $6, $7::JSON, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
       ON CONFLICT (agent_id) DO UPDATE SET
         service_name = excluded.service_name, port = excluded.port, address = excluded.address,
         version = excluded.version, hostname = excluded.hostname, tags = excluded.tags,
         agent_url = excluded.agent_url, registered_at = excluded.registered_at,
         last_seen = excluded.last_seen, health = excluded.health, pid = excluded.pid,
         process_started_at = excluded.process_started_at, restart_count = excluded.restart_count,
         cpu_percent = excluded.cpu_percent, memory_bytes = excluded.memory_bytes,
         process_count = excluded.process_count`,
      [
        row.agentId,
        row.serviceName,
        row.port,
        row.address,
        row.version,
        row.hostname,
        JSON.stringify(row.tags ?? {}),
        row.agentUrl,
        ts(row.registeredAt),
        ts(row.lastSeen),
        row.health,
        Math.trunc(row.pid),
        tsOrNull(row.processStartedAt),
        Math.trunc(row.restartCount),
        row.cpuPercent,
        BigInt(Math.max(0, Math.trunc(row.memoryBytes))),
        Math.max(0, Math.trunc(row.processCount ?? 0)),
      ],
    );
    await exec(
      conn,
      `INSERT INTO services (id, name, version, agent_id, labels, last_seen, status)
       VALUES ($1, $1, $2, $3, $4::JSON, $5, $6)
       ON CONFLICT (id) DO UPDATE SET
         version = excluded.version, agent_id = excluded.agent_id, labels = excluded.labels,
         last_seen = excluded.last_seen, status = excluded.status`,
      [row.serviceName, row.version, row.agentId, JSON.stringify(row.tags ?? {}), ts(row.lastSeen), row.health],
    );
  });
}

export async function listAgents(conn: Conn): Promise<AgentRow[]> {
  const rows = await all(conn, `SELECT ${columns} FROM agents ORDER BY service_name, agent_id`);
  return rows.map(toAgent);
}

export async function getAgent(conn: Conn, agentId: string): Promise<AgentRow | null> {
  const rows = await all(conn, `SELECT ${columns} FROM agents WHERE agent_id = $1`, [agentId]);
  return rows[0] ? toAgent(rows[0]) : null;
}
