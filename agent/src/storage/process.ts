// Process snapshots (CPU, memory, fds, threads) and the process's TCP connections.
import { checkDate, checkLimit, date, newestPage, num, str, ts, Where, type Conn } from "./sql.ts";
import type { ConnectionInput, ConnectionQuery, ConnectionRow, ProcessSnapshot, QueryPage, SnapshotQuery } from "./types.ts";

function finite(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new TypeError(`${what} must be a finite number, got ${String(v)}`);
  return v;
}

/** Throws a TypeError unless the snapshot can be stored. */
export function checkSnapshot(s: ProcessSnapshot): void {
  checkDate(s.timestamp, "snapshot timestamp");
  if (!Number.isInteger(s.pid) || s.pid <= 0) throw new TypeError(`snapshot pid must be a positive integer, got ${s.pid}`);
  finite(s.cpuPercent, "cpuPercent");
  finite(s.memoryBytes, "memoryBytes");
  finite(s.fdCount, "fdCount");
  finite(s.threadCount, "threadCount");
}

export function recordSnapshot(conn: Conn, s: ProcessSnapshot): void {
  recordSnapshots(conn, [s]);
}

/** Writer side: many snapshots in one transaction. */
export function recordSnapshots(conn: Conn, list: readonly ProcessSnapshot[]): number {
  list.forEach(checkSnapshot);
  if (list.length === 0) return 0;
  const insert = conn.stmt("INSERT INTO process_snapshots (timestamp, pid, cpu_percent, memory_bytes, fd_count, thread_count) VALUES (?, ?, ?, ?, ?, ?)");
  return conn.tx(() => {
    for (const s of list) insert.run(ts(s.timestamp), s.pid, s.cpuPercent, Math.round(s.memoryBytes), Math.round(s.fdCount), Math.round(s.threadCount));
    return list.length;
  });
}

export function querySnapshots(conn: Conn, q: SnapshotQuery): QueryPage<ProcessSnapshot> {
  const limit = checkLimit(q.limit);
  const where = new Where().eq("pid", q.pid).range("timestamp", q.since, q.until);
  const rows = conn.all(
    `SELECT timestamp, pid, cpu_percent, memory_bytes, fd_count, thread_count FROM process_snapshots ${where}
     ORDER BY timestamp DESC, rowid DESC LIMIT ?`,
    [...where.params, limit + 1],
  );
  return newestPage(
    rows.map((r) => ({
      timestamp: date(r.timestamp),
      pid: num(r.pid),
      cpuPercent: num(r.cpu_percent),
      memoryBytes: num(r.memory_bytes),
      fdCount: num(r.fd_count),
      threadCount: num(r.thread_count),
    })),
    limit,
  );
}

/** Throws a TypeError naming the first bad connection. */
export function checkConnections(list: readonly ConnectionInput[], at: Date): void {
  checkDate(at, "observed at");
  for (const [i, c] of list.entries()) {
    if (typeof c.localAddr !== "string" || typeof c.remoteAddr !== "string" || c.remoteAddr === "") {
      throw new TypeError(`connection ${i} needs localAddr and remoteAddr strings`);
    }
  }
}

export function recordConnections(conn: Conn, list: readonly ConnectionInput[], at: Date): number {
  checkConnections(list, at);
  if (list.length === 0) return 0;
  const observedAt = ts(at);
  const insert = conn.stmt("INSERT INTO connections (local_addr, remote_addr, state, observed_at) VALUES (?, ?, ?, ?)");
  return conn.tx(() => {
    for (const c of list) insert.run(c.localAddr, c.remoteAddr, c.state || null, observedAt);
    return list.length;
  });
}

export function queryConnections(conn: Conn, q: ConnectionQuery): QueryPage<ConnectionRow> {
  const limit = checkLimit(q.limit);
  const where = new Where().range("observed_at", q.since, q.until);
  const rows = conn.all(
    `SELECT local_addr, remote_addr, state, observed_at FROM connections ${where}
     ORDER BY observed_at DESC, rowid DESC LIMIT ?`,
    [...where.params, limit + 1],
  );
  return newestPage(
    rows.map((r) => ({
      localAddr: str(r.local_addr),
      remoteAddr: str(r.remote_addr),
      state: str(r.state),
      observedAt: date(r.observed_at),
    })),
    limit,
  );
}
