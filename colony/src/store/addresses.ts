// Parsing "host:port" socket addresses as agents report them (from
// /proc/net/tcp*), and loopback detection.

export interface HostPort {
  host: string;
  port: number | null;
}

/** "127.0.0.1:8080", "[::1]:8080", "::1:8080" (last colon splits), "host" (no port). */
export function parseHostPort(addr: string): HostPort {
  const a = addr.trim();
  const bracket = /^\[([^\]]*)\](?::(\d+))?$/.exec(a);
  if (bracket) return { host: bracket[1] ?? "", port: bracket[2] ? Number(bracket[2]) : null };
  const m = /^(.*):(\d+)$/.exec(a);
  if (m && m[1] !== undefined && m[1] !== "") {
    const port = Number(m[2]);
    return { host: m[1], port: port <= 65535 ? port : null };
  }
  return { host: a, port: null };
}

/** 127.0.0.0/8, ::1, IPv4-mapped loopback and "localhost". */
export function isLoopback(host: string): boolean {
  const h = host.trim().toLowerCase();
  if (h === "localhost" || h === "::1" || h === "0:0:0:0:0:0:0:1") return true;
  const v4 = h.startsWith("::ffff:") ? h.slice("::ffff:".length) : h;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}
