// Service topology from the agents' connection observations.
//
// An observation says "service S (via its agent) holds connection local → remote".
// The remote "ip:port" belongs to the service whose agent has that (address,
// port); on one machine every agent's address is 127.0.0.1, so a loopback
// remote (127.0.0.0/8, ::1) matches a loopback agent by port alone. A remote no
// agent owns is an external edge whose to_service is the remote address.
// Connections whose local port is the service's own listen port are inbound
// (the other side's outbound connection) and are skipped.
//
// connection_count is the peak number of simultaneous connections seen in one
// observation (summed over the remote endpoints that resolve to the same edge).
//
// Edges are computed when read, from the raw observations and the current
// agents (so an agent registering late fixes earlier "external" edges), merged
// with service_connections, where maintenance keeps edges after their raw
// observations have expired.
import { isLoopback, parseHostPort } from "./addresses.ts";
import { listAgents } from "./agents.ts";
import { all, date, exec, num, str, transaction, ts, type Conn } from "./sql.ts";
import type { AgentRow, ConnectionEdgeRow } from "./types.ts";

const protocol = "tcp";

interface Resolver {
  (host: string, port: number | null): string | null;
}

function resolver(agents: AgentRow[]): Resolver {
  const exact = new Map<string, string>();
  const loopbackByPort = new Map<number, string>();
  for (const a of [...agents].sort((x, y) => x.agentId.localeCompare(y.agentId))) {
    const key = `${a.address.toLowerCase()}|${a.port}`;
    if (!exact.has(key)) exact.set(key, a.serviceName);
    if (isLoopback(a.address) && !loopbackByPort.has(a.port)) loopbackByPort.set(a.port, a.serviceName);
  }
  return (host, port) => {
    if (port === null) return null;
    if (isLoopback(host)) {
      const byPort = loopbackByPort.get(port);
      if (byPort) return byPort;
    }
    return exact.get(`${host.toLowerCase()}|${port}`) ?? null;
  };
}

function merge(into: Map<string, ConnectionEdgeRow>, e: ConnectionEdgeRow, combine: "sum" | "max"): void {
  const key = `${e.fromService}\u0000${e.toService}\u0000${e.protocol}`;
  const prev = into.get(key);
  if (!prev) {
    into.set(key, { ...e });
    return;
  }
  if (e.firstObserved < prev.firstObserved) prev.firstObserved = e.firstObserved;
  if (e.lastObserved > prev.lastObserved) prev.lastObserved = e.lastObserved;
  prev.connectionCount =
    combine === "sum" ? prev.connectionCount + e.connectionCount : Math.max(prev.connectionCount, e.connectionCount);
  prev.external = prev.external && e.external;
}

/** Edges from the raw observations still stored. */
async function rawEdges(conn: Conn, resolve: Resolver): Promise<ConnectionEdgeRow[]> {
  const rows = await all(
    conn,
    `WITH obs AS (
       SELECT o.service_id, o.remote_addr, o.remote_host, o.remote_port, o.observed_at, sum(o.count) AS n
       FROM connection_observations o
       LEFT JOIN agents a ON a.agent_id = o.agent_id
       WHERE coalesce(upper(o.state), '') NOT IN ('LISTEN', 'CLOSE')
         AND NOT (a.port IS NOT NULL AND o.local_port IS NOT NULL AND o.local_port = a.port)
       GROUP BY o.service_id, o.remote_addr, o.remote_host, o.remote_port, o.observed_at
     )
     SELECT service_id, remote_addr, remote_host, remote_port,
            min(observed_at) AS first_observed, max(observed_at) AS last_observed, max(n) AS peak
     FROM obs
     GROUP BY service_id, remote_addr, remote_host, remote_port`,
  );
  const edges = new Map<string, ConnectionEdgeRow>();
  for (const r of rows) {
    const port = r.remote_port === null || r.remote_port === undefined ? null : num(r.remote_port);
    const target = resolve(str(r.remote_host), port);
    merge(
      edges,
      {
        fromService: str(r.service_id),
        toService: target ?? str(r.remote_addr),
        protocol,
        external: target === null,
        connectionCount: num(r.peak),
        firstObserved: date(r.first_observed),
        lastObserved: date(r.last_observed),
      },
      "sum",
    );
  }
  return [...edges.values()];
}

async function storedEdges(conn: Conn, resolve: Resolver): Promise<ConnectionEdgeRow[]> {
  const rows = await all(conn, "SELECT * FROM service_connections");
  return rows.map((r) => {
    let toService = str(r.to_service);
    let external = r.external === true;
    if (external) {
      // Re-resolve: the agent owning this address may have registered since.
      const hp = parseHostPort(toService);
      const target = resolve(hp.host, hp.port);
      if (target !== null) {
        toService = target;
        external = false;
      }
    }
    return {
      fromService: str(r.from_service),
      toService,
      protocol: str(r.protocol),
      external,
      connectionCount: num(r.connection_count),
      firstObserved: date(r.first_observed),
      lastObserved: date(r.last_observed),
    };
  });
}

/** Sorted by fromService, toService. */
export async function connectionEdges(conn: Conn): Promise<ConnectionEdgeRow[]> {
  const resolve = resolver(await listAgents(conn));
  const edges = new Map<string, ConnectionEdgeRow>();
  for (const e of await storedEdges(conn, resolve)) merge(edges, e, "max");
  for (const e of await rawEdges(conn, resolve)) merge(edges, e, "max");
  return [...edges.values()].sort(
    (a, b) => a.fromService.localeCompare(b.fromService) || a.toService.localeCompare(b.toService),
  );
}

/**
 * Writer side: folds the edges derived from raw observations into
 * service_connections, so they outlive the observations' retention.
 * Returns the number of edges written.
 */
export async function persistEdges(conn: Conn): Promise<number> {
  const resolve = resolver(await listAgents(conn));
  const edges = await rawEdges(conn, resolve);
  if (edges.length === 0) return 0;
  await transaction(conn, async () => {
    for (const e of edges) {
      await exec(
        conn,
        `INSERT INTO service_connections
           (from_service, to_service, protocol, first_observed, last_observed, connection_count, external)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (from_service, to_service, protocol) DO UPDATE SET
           first_observed = least(service_connections.first_observed, excluded.first_observed),
           last_observed = greatest(service_connections.last_observed, excluded.last_observed),
           connection_count = greatest(service_connections.connection_count, excluded.connection_count),
           external = excluded.external`,
        [e.fromService, e.toService, e.protocol, ts(e.firstObserved), ts(e.lastObserved), e.connectionCount, e.external],
      );
    }
  });
  return edges.length;
}
