/**
 * Pure parsers for the kernel's /proc/net/tcp and /proc/net/tcp6 tables, and
 * a thin reader on top of them.
 *
 * Line format (one socket per line, after a header line):
 *
 *     sl  local_address rem_address   st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
 *      0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000      0 12345 ...
 *
 * Addresses are the raw in-kernel bytes printed as 32-bit words in the host's
 * byte order (little-endian on x86/arm64): 0100007F is 127.0.0.1. IPv6
 * addresses are four such words. Ports are plain big-endian hex. The inode is
 * decimal and matches the `socket:[inode]` link in /proc/<pid>/fd.
 */
// procfs reads never block on disk: sync calls save the thread-pool round trip of each open/read/close.
import { readFileSync, readlinkSync } from "node:fs";
import { endianness } from "node:os";

export type TcpStateName =
  | "ESTABLISHED"
  | "SYN_SENT"
  | "SYN_RECV"
  | "FIN_WAIT1"
  | "FIN_WAIT2"
  | "TIME_WAIT"
  | "CLOSE"
  | "CLOSE_WAIT"
  | "LAST_ACK"
  | "LISTEN"
  | "CLOSING"
  | "NEW_SYN_RECV"
  | "UNKNOWN";

/** include/net/tcp_states.h */
export const TCP_STATES: Readonly<Record<number, TcpStateName>> = {
  0x01: "ESTABLISHED",
  0x02: "SYN_SENT",
  0x03: "SYN_RECV",
  0x04: "FIN_WAIT1",
  0x05: "FIN_WAIT2",
  0x06: "TIME_WAIT",
  0x07: "CLOSE",
  0x08: "CLOSE_WAIT",
  0x09: "LAST_ACK",
  0x0a: "LISTEN",
  0x0b: "CLOSING",
  0x0c: "NEW_SYN_RECV",
};

export const TCP_LISTEN = 0x0a;

export interface ProcNetTcpEntry {
  /** Address family of the socket's table row (tcp = 4, tcp6 = 6). */
  family: 4 | 6;
  /** Textual IP. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are given as plain IPv4. */
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  stateCode: number;
  state: TcpStateName;
  uid: number;
  /** Socket inode; 0 for sockets no file descriptor refers to (e.g. TIME_WAIT). */
  inode: number;
}

const HOST_LITTLE_ENDIAN = endianness() === "LE";
const HEX_RE = /^[0-9A-Fa-f]+$/;

/** Reorders one 8-hex-digit kernel word into network byte order. */
function wordBytes(word: string, littleEndian: boolean): number[] {
  const bytes = [0, 2, 4, 6].map((i) => parseInt(word.slice(i, i + 2), 16));
  return littleEndian ? bytes.reverse() : bytes;
}

/**
 * Compresses eight 16-bit groups into RFC 5952 text: lowercase, no leading
 * zeros, the longest run (first on a tie) of two or more zero groups as "::".
 */
export function formatIpv6(groups: readonly number[]): string {
  if (groups.length !== 8) throw new Error(`an IPv6 address has 8 groups, got ${groups.length}`);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestLen < 2) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLen).join(":");
  return `${head}::${tail}`;
}

/**
 * Decodes a /proc/net/tcp{,6} hex address (8 or 32 hex digits) to text.
 * IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes "a.b.c.d". Returns null if the
 * input is not such an address.
 */
export function decodeHexIp(hex: string, littleEndian = HOST_LITTLE_ENDIAN): string | null {
  if (!HEX_RE.test(hex)) return null;
  if (hex.length === 8) return wordBytes(hex, littleEndian).join(".");
  if (hex.length !== 32) return null;
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) bytes.push(...wordBytes(hex.slice(w * 8, w * 8 + 8), littleEndian));
  const isV4Mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (isV4Mapped) return bytes.slice(12).join(".");
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0));
  return formatIpv6(groups);
}

/** "ip:port", with IPv6 in brackets: "127.0.0.1:80", "[::1]:80". */
export function formatEndpoint(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function parseHexEndpoint(field: string, littleEndian: boolean): { ip: string; port: number } | null {
  const colon = field.indexOf(":");
  if (colon < 0) return null;
  const ip = decodeHexIp(field.slice(0, colon), littleEndian);
  const portHex = field.slice(colon + 1);
  if (ip === null || portHex.length === 0 || portHex.length > 4 || !HEX_RE.test(portHex)) return null;
  return { ip, port: parseInt(portHex, 16) };
}

/**
 * Parses one data line of /proc/net/tcp or /proc/net/tcp6. Returns null for
 * the header line and for anything malformed (the caller skips those).
 */
export function parseProcNetTcpLine(line: string, littleEndian = HOST_LITTLE_ENDIAN): ProcNetTcpEntry | null {
  const f = line.trim().split(/\s+/);
  if (f.length < 10 || !/^\d+:$/.test(f[0] ?? "")) return null;
  const [, localField = "", remoteField = "", stateField = "", , , , uidField = "", , inodeField = ""] = f;
  const local = parseHexEndpoint(localField, littleEndian);
  const remote = parseHexEndpoint(remoteField, littleEndian);
  if (!local || !remote) return null;
  const localHexLen = localField.indexOf(":");
  if (localHexLen !== remoteField.indexOf(":")) return null;
  if (!/^[0-9A-Fa-f]{2}$/.test(stateField) || !/^\d+$/.test(uidField) || !/^\d+$/.test(inodeField)) return null;
  const stateCode = parseInt(stateField, 16);
  return {
    family: localHexLen === 8 ? 4 : 6,
    localIp: local.ip,
    localPort: local.port,
    remoteIp: remote.ip,
    remotePort: remote.port,
    stateCode,
    state: TCP_STATES[stateCode] ?? "UNKNOWN",
    uid: Number(uidField),
    inode: Number(inodeField),
  };
}

/** Parses a whole /proc/net/tcp{,6} file, skipping the header and malformed lines. */
export function parseProcNetTcp(text: string, littleEndian = HOST_LITTLE_ENDIAN): ProcNetTcpEntry[] {
  const out: ProcNetTcpEntry[] = [];
  for (const line of text.split("\n")) {
    const entry = parseProcNetTcpLine(line, littleEndian);
    if (entry) out.push(entry);
  }
  return out;
}

async function readOptional(path: string): Promise<string> {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    // tcp6 is absent when IPv6 is disabled; that is an empty table, not an error.
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
    throw err;
  }
}

/**
 * Reads tcp and tcp6 under `root` ("/proc/net" for this agent's network
 * namespace, "/proc/<pid>/net" for a process's). Throws ENOENT if the root
 * itself is gone (e.g. the process exited).
 */
export async function readTcpTables(root = "/proc/net"): Promise<ProcNetTcpEntry[]> {
  const v4 = readFileSync(`${root}/tcp`, "utf8");
  const v6 = await readOptional(`${root}/tcp6`);
  return [...parseProcNetTcp(v4), ...parseProcNetTcp(v6)];
}

export interface RecentTables {
  entries: ProcNetTcpEntry[];
  /** When they were read (performance.now() unless told). */
  readAt: number;
}

/** Tables read lately, per network namespace ("net:[4026531840]"). */
const recentTables = new Map<string, { readAt: number; entries: Promise<ProcNetTcpEntry[]> }>();

/**
 * The TCP tables of `pid`'s network namespace, read at most once per
 * `maxAgeMs` (0: always read) for every caller of this process: an agent that observes several
 * services on one host (they share a namespace) samples them on the same tick,
 * and the kernel walks its whole socket hash for each read. Throws like
 * readTcpTables when the process is gone.
 */
export async function recentTcpTables(pid: number, maxAgeMs = 250, now = performance.now()): Promise<RecentTables> {
  let ns: string;
  try {
    ns = readlinkSync(`/proc/${pid}/ns/net`);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM") return { entries: await readTcpTables(`/proc/${pid}/net`), readAt: now }; // not ours to name: read it alone
    throw err;
  }
  const hit = recentTables.get(ns);
  if (hit && now - hit.readAt < maxAgeMs) return { entries: await hit.entries, readAt: hit.readAt };
  const entries = readTcpTables(`/proc/${pid}/net`);
  const entry = { readAt: now, entries };
  recentTables.set(ns, entry);
  // A failed read (the process went away mid-read) is not kept for the others.
  entries.catch(() => recentTables.get(ns) === entry && recentTables.delete(ns));
  for (const [key, e] of recentTables) if (now - e.readAt > 60_000) recentTables.delete(key);
  return { entries: await entries, readAt: now };
}
