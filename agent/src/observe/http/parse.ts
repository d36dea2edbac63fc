/**
 * The lines bpf/http-requests.bt.tmpl prints, and the HTTP/1.x request and
 * status lines in the captured bytes.
 */

export type TraceLine =
  | { kind: "R" | "W"; pid: number; fd: number; ns: bigint; len: number; data: string }
  | { kind: "X"; pid: number; fd: number; ns: bigint }
  | { kind: "F"; pid: number; parent: number }
  | { kind: "P" | "T" };

const intRe = /^\d{1,10}$/;
const nsRe = /^\d{1,20}$/;

/** bpftrace's %r: printable bytes as they are, the others as \xNN. Decoded as latin1 (one char per byte). */
export function decodeEscaped(text: string): string {
  return text.replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** One output line, or null for anything else (warnings, truncated lines). */
export function parseTraceLine(line: string): TraceLine | null {
  if (line === "P" || line === "T") return { kind: line };
  const k = line[0];
  if ((k === "R" || k === "W") && line[1] === " ") {
    // R pid fd ns len data (data may hold spaces, and may be empty)
    const parts = line.split(" ", 5);
    if (parts.length < 5) return null;
    const [, pid, fd, ns, len] = parts;
    if (!intRe.test(pid!) || !intRe.test(fd!) || !nsRe.test(ns!) || !intRe.test(len!)) return null;
    const head = parts.join(" ").length;
    const data = line.length > head ? decodeEscaped(line.slice(head + 1)) : "";
    return { kind: k, pid: Number(pid), fd: Number(fd), ns: BigInt(ns!), len: Number(len), data };
  }
  const f = line.split(" ");
  if (f.length === 4 && f[0] === "X" && intRe.test(f[1]!) && intRe.test(f[2]!) && nsRe.test(f[3]!))
    return { kind: "X", pid: Number(f[1]), fd: Number(f[2]), ns: BigInt(f[3]!) };
  if (f.length === 3 && f[0] === "F" && intRe.test(f[1]!) && intRe.test(f[2]!)) return { kind: "F", pid: Number(f[1]), parent: Number(f[2]) };
  return null;
}

export const HTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE"] as const;

const requestLineRe = /^(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS|CONNECT|TRACE) ([^\s]+) HTTP\/1\.[01]\r?\n/;
/** A request line cut by the capture (long target): method and the target's beginning. */
const cutRequestLineRe = /^(GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS|CONNECT|TRACE) ([^\s]+)(?: H?T?T?P?\/?1?\.?[01]?\r?)?$/;
const statusLineRe = /^HTTP\/1\.[01] (\d{3})(?: |\r?\n|$)/;

export interface RequestLine {
  method: string;
  target: string;
}

/**
 * The request lines at the start of `data` and after each blank line that
 * ends a head (pipelined requests in one read). `cut`: the capture ended
 * before the buffer did, so a request line without its end still counts.
 */
export function requestLines(data: string, cut: boolean): RequestLine[] {
  const out: RequestLine[] = [];
  let rest = data;
  for (;;) {
    const m = requestLineRe.exec(rest) ?? (cut ? cutRequestLineRe.exec(rest) : null);
    if (!m) break;
    out.push({ method: m[1]!, target: m[2]! });
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) break;
    rest = rest.slice(end + 4);
  }
  return out;
}

/** Whether `data` may be the beginning of a request line (a read split it). */
export function requestLinePrefix(data: string): boolean {
  if (data.length === 0 || data.length > 100 || data.includes("\n")) return false;
  const sp = data.indexOf(" ");
  const method = sp < 0 ? data : data.slice(0, sp);
  if (!HTTP_METHODS.some((m) => (sp < 0 ? m.startsWith(method) : m === method))) return false;
  if (sp < 0) return true;
  const after = data.slice(sp + 1);
  return /^[^\s]*( H?T?T?P?\/?1?\.?[01]?\r?)?$/.test(after);
}

/** The status codes of the responses at the start of `data` and after each blank line (pipelined). */
export function statusLines(data: string): number[] {
  const out: number[] = [];
  let rest = data;
  for (;;) {
    const m = statusLineRe.exec(rest);
    if (!m) break;
    out.push(Number(m[1]));
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) break;
    rest = rest.slice(end + 4);
  }
  return out;
}

export function statusClass(status: number): string {
  return `${Math.floor(status / 100)}xx`;
}
