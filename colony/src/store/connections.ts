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
// opened counts the connections opened during each observation's interval
// (agents with eBPF see every connect, however short; /proc snapshots only
// those they catch): an edge appears with the first batch after one short
// connection, even when none is open when the agent looks.
//
// An endpoint several agents have claimed (an agent replaced, the old one
// offline) resolves to the online agent that observes it now, and a past
// observation to the agent that observed the port then: history keeps its
// attribution, and service_connections rows keep the target they were stored
// with.
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

/** An observation made after an agent registered and at most this long after its last heartbeat counts as made while it observed its port. */
const observingSlackMs = 60_000;
/** Window of ConnectionEdgeRow.openedLastMinute. */
const minuteMs = 60_000;

interface Resolver {
  /** The service at host:port, as of `atMs` when given (else now). */
  (host: string, port: number | null, atMs?: number): string | null;
  /** True when more than one agent has claimed host:port (then the answer depends on time). */
  ambiguous(host: string, port: number | null): boolean;
}

interface Candidate {
  serviceName: string;
  agentId: string;
  online: boolean;
  registeredMs: number;
  lastSeenMs: number;
}

/** Online first, then the most recently seen, then by agent id (stable). */
function better(a: Candidate, b: Candidate): number {
  return Number(b.online) - Number(a.online) || b.lastSeenMs - a.lastSeenMs || a.agentId.localeCompare(b.agentId);
}

/**
 * Which agent's service an endpoint belongs to. Several agents may have
 * claimed the same port over time (an agent replaced by another, the old one
 * offline): now, it is the online agent (else the one seen last); at a past
 * moment, the agent that observed the port then (registered before it and
 * seen after it), so history keeps its attribution.
 */
function resolver(agents: AgentRow[], online: ReadonlySet<string>): Resolver {
  const exact = new Map<string, Candidate[]>();
  const loopbackByPort = new Map<number, Candidate[]>();
  const add = <K>(m: Map<K, Candidate[]>, k: K, c: Candidate) => m.set(k, [...(m.get(k) ?? []), c]);
  for (const a of agents) {
    const c: Candidate = { serviceName: a.serviceName, agentId: a.agentId, online: online.has(a.agentId), registeredMs: a.registeredAt.getTime(), lastSeenMs: a.lastSeen.getTime() };
    add(exact, `${a.address.toLowerCase()}|${a.port}`, c);
    if (isLoopback(a.address)) add(loopbackByPort, a.port, c);
  }
  for (const list of [...exact.values(), ...loopbackByPort.values()]) list.sort(better);
  const candidates = (host: string, port: number | null): Candidate[] => {
    if (port === null) return [];
    if (isLoopback(host)) {
      const byPort = loopbackByPort.get(port);
      if (byPort) return byPort;
    }
    return exact.get(`${host.toLowerCase()}|${port}`) ?? [];
  };
  const resolve = (host: string, port: number | null, atMs?: number): string | null => {
    const list = candidates(host, port);
    if (list.length === 0) return null;
    if (atMs !== undefined && list.length > 1) {
      // The newest claimant registered by then and still heard from around then.
      let then: Candidate | undefined;
      for (const c of list)
        if (c.registeredMs <= atMs && atMs <= c.lastSeenMs + observingSlackMs && (!then || c.registeredMs > then.registeredMs)) then = c;
      if (then) return then.serviceName;
    }
    return list[0]!.serviceName;
  };
  return Object.assign(resolve, { ambiguous: (host: string, port: number | null) => candidates(host, port).length > 1 });
}

/** Agents the colony holds online (or degraded: still reporting) now. */
async function onlineAgents(conn: Conn): Promise<Set<string>> {
  const rows = await all(conn, "SELECT actor_id FROM actor_snapshots WHERE kind = 'agent' AND state IN ('online', 'degraded')");
  return new Set(rows.map((r) => str(r.actor_id)));
}

async function currentResolver(conn: Conn): Promise<Resolver> {
  return resolver(await listAgents(conn), await onlineAgents(conn));
}

/**
 * Folds e into its edge: `peak` says how simultaneous-connection peaks combine
 * (sum: other endpoints at the same moments; max: other moments or sources),
 * `opened` how opened counts do (sum: distinct observations; max: the same
 * ones counted twice, raw and stored).
 */
function merge(into: Map<string, ConnectionEdgeRow>, e: ConnectionEdgeRow, peak: "sum" | "max", opened: "sum" | "max" = peak): void {
  const key = `${e.fromService}\u0000${e.toService}\u0000${e.protocol}`;
  const prev = into.get(key);
  if (!prev) {
    into.set(key, { ...e });
    return;
  }
  if (e.firstObserved < prev.firstObserved) prev.firstObserved = e.firstObserved;
  if (e.lastObserved > prev.lastObserved) prev.lastObserved = e.lastObserved;
  const add = (a: number, b: number) => a + b;
  prev.connectionCount = (peak === "sum" ? add : Math.max)(prev.connectionCount, e.connectionCount);
  prev.openedTotal = (opened === "sum" ? add : Math.max)(prev.openedTotal, e.openedTotal);
  prev.openedLastMinute = (opened === "sum" ? add : Math.max)(prev.openedLastMinute, e.openedLastMinute);
  prev.external = prev.external && e.external;
}

const obsSql = (where: string, byTime: boolean) => `
  WITH obs AS (
    SELECT o.service_id, o.remote_addr, o.remote_host, o.remote_port, o.observed_at,
           sum(o.count) AS n, sum(coalesce(o.opened, 0)) AS opened
    FROM connection_observations o
    LEFT JOIN agents a ON a.agent_id = o.agent_id
    WHERE coalesce(upper(o.state), '') NOT IN ('LISTEN', 'CLOSE')
      AND NOT (a.port IS NOT NULL AND o.local_port IS NOT NULL AND o.local_port = a.port)
      ${where}
    GROUP BY o.service_id, o.remote_addr, o.remote_host, o.remote_port, o.observed_at
  )
  SELECT service_id, remote_addr, remote_host, remote_port,${byTime ? " observed_at," : ""}
         min(observed_at) AS first_observed, max(observed_at) AS last_observed, max(n) AS peak,
         sum(opened) AS opened_total, sum(opened) FILTER (WHERE observed_at >= $1) AS opened_last_minute
  FROM obs
  GROUP BY service_id, remote_addr, remote_host, remote_port${byTime ? ", observed_at" : ""}`;

/**
 * Edges from the raw observations still stored. An endpoint that one agent
 * claimed resolves once for all its observations; one that several agents
 * claimed (an agent replaced) resolves per observation time.
 */
async function rawEdges(conn: Conn, resolve: Resolver, now: Date): Promise<ConnectionEdgeRow[]> {
  const since = ts(new Date(now.getTime() - minuteMs));
  const rows = await all(conn, obsSql("", false), [since]);
  const port = (r: Record<string, unknown>) => (r.remote_port === null || r.remote_port === undefined ? null : num(r.remote_port));
  const plain = rows.filter((r) => !resolve.ambiguous(str(r.remote_host), port(r)));
  const ambiguousPorts = [...new Set(rows.filter((r) => resolve.ambiguous(str(r.remote_host), port(r))).map((r) => port(r)!))];
  const timed = ambiguousPorts.length
    ? await all(conn, obsSql(`AND o.remote_port IN (${ambiguousPorts.map((p) => Math.trunc(p)).join(", ")})`, true), [since])
    : [];
  const edges = new Map<string, ConnectionEdgeRow>();
  for (const r of [...plain, ...timed.filter((t) => resolve.ambiguous(str(t.remote_host), port(t)))]) {
    const at = r.observed_at === undefined ? undefined : date(r.observed_at).getTime();
    const target = resolve(str(r.remote_host), port(r), at);
    merge(
      edges,
      {
        fromService: str(r.service_id),
        toService: target ?? str(r.remote_addr),
        protocol,
        external: target === null,
        connectionCount: num(r.peak),
        openedTotal: num(r.opened_total ?? 0),
        openedLastMinute: r.opened_last_minute === null || r.opened_last_minute === undefined ? 0 : num(r.opened_last_minute),
        firstObserved: date(r.first_observed),
        lastObserved: date(r.last_observed),
      },
      // Peaks of several endpoints add up; per-moment rows take the largest
      // moment. Opened counts always add up: every row is other observations.
      at === undefined ? "sum" : "max",
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
      openedTotal: r.opened_total === null || r.opened_total === undefined ? 0 : num(r.opened_total),
      // Only raw observations are that recent.
      openedLastMinute: 0,
      firstObserved: date(r.first_observed),
      lastObserved: date(r.last_observed),
    };
  });
}

/** Sorted by fromService, toService. */
export async function connectionEdges(conn: Conn, now = new Date()): Promise<ConnectionEdgeRow[]> {
  const resolve = await currentResolver(conn);
  const edges = new Map<string, ConnectionEdgeRow>();
  for (const e of await storedEdges(conn, resolve)) merge(edges, e, "max");
  for (const e of await rawEdges(conn, resolve, now)) merge(edges, e, "max");
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
  const edges = await rawEdges(conn, await currentResolver(conn), new Date());
  if (edges.length === 0) return 0;
  await transaction(conn, async () => {
    for (const e of edges) {
      await exec(
        conn,
        `INSERT INTO service_connections
           (from_service, to_service, protocol, first_observed, last_observed, connection_count, external, opened_total)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (from_service, to_service, protocol) DO UPDATE SET
           first_observed = least(service_connections.first_observed, excluded.first_observed),
           last_observed = greatest(service_connections.last_observed, excluded.last_observed),
           connection_count = greatest(service_connections.connection_count, excluded.connection_count),
           external = excluded.external,
           opened_total = greatest(coalesce(service_connections.opened_total, 0), excluded.opened_total)`,
        [e.fromService, e.toService, e.protocol, ts(e.firstObserved), ts(e.lastObserved), e.connectionCount, e.external, e.openedTotal],
      );
    }
  });
  return edges.length;
}
