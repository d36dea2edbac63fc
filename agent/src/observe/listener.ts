/**
 * Which process listens on a TCP port: the LISTEN rows of /proc/net/tcp{,6}
 * give the socket inodes; the process whose /proc/<pid>/fd holds one of them
 * is the listener.
 */
// procfs reads never block on disk: sync calls save the thread-pool round trip of each open/read/close.
import { readdirSync, readlinkSync } from "node:fs";
import { isGone, isNoAccess, listPids, socketInodeFromLink } from "./procfs.ts";
import { formatEndpoint, readTcpTables, TCP_LISTEN, type ProcNetTcpEntry } from "./procnet.ts";

export interface ListeningProcess {
  pid: number;
  /** Inode of the listening socket this process holds. */
  inode: number;
  /** The listening address, e.g. "0.0.0.0:8080", "[::]:8080", "127.0.0.1:8080". */
  address: string;
}

/** LISTEN rows on `port`, keyed by inode. Pure. */
export function listenersOnPort(entries: readonly ProcNetTcpEntry[], port: number): Map<number, ProcNetTcpEntry> {
  const byInode = new Map<number, ProcNetTcpEntry>();
  for (const e of entries) {
    if (e.stateCode === TCP_LISTEN && e.localPort === port && e.inode !== 0) byInode.set(e.inode, e);
  }
  return byInode;
}

/** The first listening-socket inode among the process's fds, or null. Never throws. */
async function heldInode(pid: number, wanted: ReadonlyMap<number, unknown>): Promise<number | null> {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch (err) {
    if (isGone(err) || isNoAccess(err)) return null;
    throw err;
  }
  for (const fd of fds) {
    try {
      const inode = socketInodeFromLink(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (inode !== null && wanted.has(inode)) return inode;
    } catch (err) {
      if (!isGone(err) && !isNoAccess(err)) throw err;
    }
  }
  return null;
}

/**
 * Finds the process listening on `port` (IPv4 or IPv6, any bound address) in
 * this agent's network namespace. Returns null when nothing listens, or when
 * the listener belongs to a process whose fds we may not read (another user's
 * process while the agent is not root): we skip those rather than fail.
 *
 * When several processes share the listening socket (a pre-fork or cluster
 * server, SO_REUSEPORT) the lowest pid wins, which is normally the parent.
 */
export async function findListeningProcess(port: number): Promise<ListeningProcess | null> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`invalid TCP port: ${port}`);
  const listeners = listenersOnPort(await readTcpTables("/proc/net"), port);
  if (listeners.size === 0) return null;
  for (const pid of await listPids()) {
    if (pid === 0) continue;
    const inode = await heldInode(pid, listeners);
    if (inode === null) continue;
    const row = listeners.get(inode);
    if (!row) continue;
    return { pid, inode, address: formatEndpoint(row.localIp, row.localPort) };
  }
  return null;
}
