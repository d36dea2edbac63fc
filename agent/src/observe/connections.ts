/**
 * A process's TCP sockets: the socket inodes behind its fds intersected with
 * the tcp/tcp6 tables of its network namespace (/proc/<pid>/net/tcp{,6}).
 */
import { isGone, socketInodes } from "./procfs.ts";
import { formatEndpoint, recentTcpTables, TCP_LISTEN, type ProcNetTcpEntry, type TcpStateName } from "./procnet.ts";

export type ConnectionDirection = "inbound" | "outbound";

export interface TcpConnection {
  /** "ip:port"; IPv6 as "[ip]:port"; IPv4-mapped IPv6 as plain IPv4. */
  localAddr: string;
  remoteAddr: string;
  state: Exclude<TcpStateName, "LISTEN">;
  /** inbound: the local port is one the process listens on; otherwise outbound. */
  direction: ConnectionDirection;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  inode: number;
}

export interface ListenSocket {
  address: string;
  port: number;
  inode: number;
}

export interface ProcessSockets {
  listening: ListenSocket[];
  connections: TcpConnection[];
}

/**
 * Splits the table rows owned by `inodes` into listening sockets and
 * connections, classifying each connection as inbound when its local port is
 * one of the process's listening ports (or one of `extraListenPorts`). Pure.
 */
export function classifySockets(
  entries: readonly ProcNetTcpEntry[],
  inodes: ReadonlySet<number>,
  extraListenPorts: readonly number[] = [],
): ProcessSockets {
  const owned = entries.filter((e) => e.inode !== 0 && inodes.has(e.inode));
  const listening: ListenSocket[] = [];
  const listenPorts = new Set(extraListenPorts);
  for (const e of owned) {
    if (e.stateCode !== TCP_LISTEN) continue;
    listening.push({ address: formatEndpoint(e.localIp, e.localPort), port: e.localPort, inode: e.inode });
    listenPorts.add(e.localPort);
  }
  const connections: TcpConnection[] = [];
  for (const e of owned) {
    if (e.stateCode === TCP_LISTEN) continue;
    connections.push({
      localAddr: formatEndpoint(e.localIp, e.localPort),
      remoteAddr: formatEndpoint(e.remoteIp, e.remotePort),
      state: e.state as Exclude<TcpStateName, "LISTEN">,
      direction: listenPorts.has(e.localPort) ? "inbound" : "outbound",
      localPort: e.localPort,
      remoteIp: e.remoteIp,
      remotePort: e.remotePort,
      inode: e.inode,
    });
  }
  return { listening, connections };
}

/**
 * The process's listening sockets and TCP connections. Returns null if the
 * process is gone; throws EACCES if the agent may not read its fd table (run
 * the agent as the app's user, or as root / with CAP_SYS_PTRACE).
 */
export async function processSockets(pid: number, extraListenPorts: readonly number[] = []): Promise<ProcessSockets | null> {
  // A reader that keeps nothing: it reads the tables every time.
  return new ProcessSocketsReader(0, undefined, 0).read(pid, extraListenPorts);
}

/**
 * The process's TCP connections (LISTEN sockets excluded), each classified
 * inbound/outbound against the ports it listens on plus `listenPorts`.
 * Returns null if the process is gone.
 */
export async function tcpConnections(pid: number, listenPorts: readonly number[] = []): Promise<TcpConnection[] | null> {
  const sockets = await processSockets(pid, listenPorts);
  return sockets ? sockets.connections : null;
}

/**
 * processSockets for a watched process, sampled every second. Reading the TCP
 * tables is the costly part (the kernel walks its whole socket hash: about
 * 8 ms of CPU per read on this 2-core VM with ~340 sockets, against 0.3 ms
 * for the rest of a sample), so they are read again only when the process's
 * set of socket inodes changed or the last read is older than `maxAgeMs`
 * (30 s: how late a state change of a socket that stays open, such as
 * ESTABLISHED → CLOSE_WAIT, shows; a socket opened or closed shows at the
 * next sample).
 */
export class ProcessSocketsReader {
  #key = "";
  #result: ProcessSockets | null = null;
  #readAt = 0;

  /**
   * `shareMs`: a table another reader of this process (another service's
   * sampler, on the same tick) read at most this long ago is used instead of
   * reading again; 0 always reads.
   */
  constructor(
    private readonly maxAgeMs = 30_000,
    private readonly now: () => number = () => performance.now(),
    private readonly shareMs = 250,
  ) {}

  /**
   * `pid` or a process set (its first pid the listener: null when that one is
   * gone; members that vanish while we read are skipped), whose sockets are
   * read as one: a worker's connections are the service's.
   */
  async read(pids: number | readonly number[], extraListenPorts: readonly number[] = []): Promise<ProcessSockets | null> {
    const set = typeof pids === "number" ? [pids] : pids;
    const pid = set[0];
    if (pid === undefined) return null;
    const inodesAt = performance.now();
    const inodes = await socketInodes(pid);
    if (inodes === null) return null;
    for (const member of set.slice(1)) {
      try {
        for (const inode of (await socketInodes(member)) ?? []) inodes.add(inode);
      } catch {
        // a member we may not read is left out, not the whole sample
      }
    }
    const key = `${set.join(",")}|${extraListenPorts.join(",")}|${[...inodes].sort((a, b) => a - b).join(",")}`;
    // Ages end on a common clock (every maxAgeMs since the process's time origin), so the
    // samplers of every service expire together and share one read of the tables.
    if (this.#result && key === this.#key && this.maxAgeMs > 0 && Math.floor(this.now() / this.maxAgeMs) === Math.floor(this.#readAt / this.maxAgeMs)) return this.#result;
    const unchanged = this.#result !== null && key === this.#key;
    let entries: ProcNetTcpEntry[];
    let fresh: boolean;
    try {
      const tables = await recentTcpTables(pid, this.shareMs);
      entries = tables.entries;
      // A table read a moment before our look at the sockets may miss one
      // opened since: use it now, and read again next time.
      // ... unless the set is the one we saw last time (before that table was read): then
      // every socket of it existed when the table was read.
      fresh = tables.readAt >= inodesAt || unchanged;
    } catch (err) {
      if (isGone(err)) return null;
      throw err;
    }
    this.#result = classifySockets(entries, inodes, extraListenPorts);
    this.#key = fresh ? key : "";
    this.#readAt = this.now();
    return this.#result;
  }
}
