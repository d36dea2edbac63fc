// Which process sent OTLP over a loopback connection: the sender's end of
// the connection is the row of /proc/net/tcp{,6} whose local address:port is
// the connection's remote address:port (and whose remote end is ours); its
// socket inode is held by the sending process, as a `socket:[inode]` link in
// /proc/<pid>/fd. The observed services' processes are looked at first;
// then the rest of /proc, within a bound (a number of processes, yielding
// to the event loop as it goes), then it gives up. Non-loopback connections
// are not looked up: their sender is on another host (or namespace).
import { statSync } from "node:fs";
import { isGone, isNoAccess, listPids, socketInodes } from "../observe/procfs.ts";
import { readTcpTables, type ProcNetTcpEntry } from "../observe/procnet.ts";

/** A connection's ends as Node's socket gives them. */
export interface OtlpPeer {
  remoteAddress?: string;
  remotePort?: number;
  localAddress?: string;
  localPort?: number;
}

export interface SenderPidStats {
  /** Connections looked up (loopback ones). */
  lookups: number;
  /** Found among the observed services' processes. */
  foundObserved: number;
  /** Found by the scan of the other processes. */
  foundScanned: number;
  /** Not found: no such socket (gone already), a process we may not read, or past the scan's bound. */
  notFound: number;
  /** Connections from another host, not looked up. */
  notLoopback: number;
}

export interface SenderPidOptions {
  /** The observed services' processes, looked at first. */
  candidates?: () => Iterable<number>;
  /** At most this many other processes are looked at per connection (default 4096). */
  maxScan?: number;
  /** Test seams; default the real /proc. */
  readTables?: () => Promise<ProcNetTcpEntry[]>;
  listPids?: () => Promise<number[]>;
  socketInodes?: (pid: number) => Promise<Set<number> | null>;
  /** The owner's uid of /proc/<pid>, undefined when gone (the scan skips other users' processes). */
  uidOf?: (pid: number) => number | undefined;
}

/** "::ffff:127.0.0.1" → "127.0.0.1" (procnet gives IPv4-mapped addresses as plain IPv4); lower case. */
export function plainIp(ip: string): string {
  const lower = ip.toLowerCase();
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/.test(lower) ? lower.slice(7) : lower;
}

export function isLoopback(ip: string | undefined): boolean {
  if (!ip) return false;
  const p = plainIp(ip);
  return p === "::1" || /^127\.\d+\.\d+\.\d+$/.test(p);
}

/**
 * The socket inode of the sender's end of `peer` (a connection as the
 * receiver sees it): the row whose local end is the peer's remote end and
 * whose remote end is the receiver's local end. Undefined when there is none
 * (or only one without an inode, e.g. already closed).
 */
export function senderInode(rows: readonly ProcNetTcpEntry[], peer: OtlpPeer): number | undefined {
  if (!peer.remoteAddress || !peer.remotePort) return undefined;
  const remote = plainIp(peer.remoteAddress);
  const local = peer.localAddress ? plainIp(peer.localAddress) : undefined;
  for (const r of rows) {
    if (r.inode === 0 || r.localPort !== peer.remotePort || r.localIp !== remote) continue;
    if (peer.localPort !== undefined && r.remotePort !== peer.localPort) continue;
    if (local !== undefined && r.remoteIp !== local) continue;
    return r.inode;
  }
  return undefined;
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function procUid(pid: number): number | undefined {
  try {
    return statSync(`/proc/${pid}`).uid;
  } catch {
    return undefined;
  }
}

/** Finds senders' pids; one lookup per connection is the caller's to arrange (the receiver caches it on the connection). */
export class SenderPids {
  readonly #opts: Required<Omit<SenderPidOptions, "candidates">> & Pick<SenderPidOptions, "candidates">;
  readonly #stats: SenderPidStats = { lookups: 0, foundObserved: 0, foundScanned: 0, notFound: 0, notLoopback: 0 };

  constructor(options: SenderPidOptions = {}) {
    this.#opts = { maxScan: 4096, readTables: () => readTcpTables("/proc/net"), listPids, socketInodes, uidOf: procUid, ...options };
  }

  stats(): SenderPidStats {
    return { ...this.#stats };
  }

  /** The pid of the process that holds the other end of `peer`, or undefined. Never throws. */
  async pidOf(peer: OtlpPeer): Promise<number | undefined> {
    if (!isLoopback(peer.remoteAddress)) {
      this.#stats.notLoopback++;
      return undefined;
    }
    this.#stats.lookups++;
    try {
      const rows = await this.#opts.readTables();
      const inode = senderInode(rows, peer);
      if (inode !== undefined) {
        const uid = rows.find((r) => r.inode === inode)?.uid;
        const seen = new Set<number>();
        for (const pid of this.#opts.candidates?.() ?? []) {
          seen.add(pid);
          if (await this.#holds(pid, inode)) {
            this.#stats.foundObserved++;
            return pid;
          }
        }
        let looked = 0;
        for (const pid of await this.#opts.listPids()) {
          if (seen.has(pid) || (uid !== undefined && this.#opts.uidOf(pid) !== uid)) continue;
          if (++looked > this.#opts.maxScan) break;
          if (await this.#holds(pid, inode)) {
            this.#stats.foundScanned++;
            return pid;
          }
          if (looked % 64 === 0) await yieldToLoop();
        }
      }
    } catch {
      // An unreadable /proc is "no pid", not a failed export.
    }
    this.#stats.notFound++;
    return undefined;
  }

  async #holds(pid: number, inode: number): Promise<boolean> {
    try {
      return (await this.#opts.socketInodes(pid))?.has(inode) ?? false;
    } catch (err) {
      if (isGone(err) || isNoAccess(err)) return false;
      throw err;
    }
  }
}
