// Process snapshots (CPU, memory, fds, threads) and the process's TCP connections.
import { withAppender } from "@coral/common/duckdb";
import { all, checkDate, checkLimit, date, newestPage, num, str, ts, Where, type Conn } from "./sql.ts";
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

export async function recordSnapshot(conn: Conn, s: ProcessSnapshot): Promise<void> {
  await recordSnapshots(conn, [s]);
}

/** Writer side: many snapshots through one appender. */
export async function recordSnapshots(conn: Conn, list: readonly ProcessSnapshot[]): Promise<number> {
  list.forEach(checkSnapshot);
  if (list.length === 0) return 0;
  return withAppender(conn, "process_snapshots", (a) => {
    for (const s of list) {
      a.appendTimestamp(ts(s.timestamp));
      a.appendInteger(s.pid);
      a.appendDouble(s.cpuPercent);
      a.appendBigInt(BigInt(Math.round(s.memoryBytes)));
      a.appendInteger(Math.round(s.fdCount));
      a.appendInteger(Math.round(s.threadCount));
      a.endRow();
    }
    return list.length;
  });
}

export async function querySnapshots(conn: Conn, q: SnapshotQuery): Promise<QueryPage<ProcessSnapshot>> {
  const limit = checkLimit(q.limit);
  const where = new Where().eq("pid", q.pid).range("timestamp", q.since, q.until);
  const rows = await all(
    conn,
    `SELECT timestamp, pid, cpu_percent, memory_bytes, fd_count, thread_count FROM process_snapshots ${where}
     ORDER BY timestamp DESC, rowid DESC LIMIT ${limit + 1}`,
    where.params,
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

export async function recordConnections(conn: Conn, list: readonly ConnectionInput[], at: Date): Promise<number> {
  checkConnections(list, at);
  const observedAt = ts(at);
  if (list.length === 0) return 0;
  return withAppender(conn, "connections", (a) => {
    for (const c of list) {
      a.appendVarchar(c.localAddr);
      a.appendVarchar(c.remoteAddr);
      if (c.state) a.appendVarchar(c.state);
      else a.appendNull();
      a.appendTimestamp(observedAt);
      a.endRow();
    }
    return list.length;
  });
}

export async function queryConnections(conn: Conn, q: ConnectionQuery): Promise<QueryPage<ConnectionRow>> {
  const limit = checkLimit(q.limit);
  const where = new Where().range("observed_at", q.since, q.until);
  const rows = await all(
    conn,
    `SELECT local_addr, remote_addr, state, observed_at FROM connections ${where}
     ORDER BY observed_at DESC, rowid DESC LIMIT ${limit + 1}`,
    where.params,
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
