/**
 * The lines and records bpf/http-requests.bt.tmpl prints, and the HTTP/1.x
 * request and status lines in the captured bytes.
 */

export type TraceLine =
  | { kind: "R" | "W"; pid: number; fd: number; ns: bigint; len: number; data: string }
  | { kind: "X"; pid: number; fd: number; ns: bigint }
  | { kind: "F"; pid: number; parent: number }
  | { kind: "P" | "T" };

const intRe = /^\d{1,10}$/;
const nsRe = /^\d{1,20}$/;

/**
 * One line the program printed, or a record put together by TraceRecords
 * (R/W, with the captured bytes as they were: latin1, one char per byte),
 * or null for anything else (warnings, truncated lines).
 */
export function parseTraceLine(line: string): TraceLine | null {
  if (line === "P" || line === "T") return { kind: line };
  const k = line[0];
  if ((k === "R" || k === "W") && line[1] === " ") {
    // R pid fd ns len data (data may hold spaces and newlines, and may be empty)
    const parts = line.split(" ", 5);
    if (parts.length < 5) return null;
    const [, pid, fd, ns, len] = parts;
    if (!intRe.test(pid!) || !intRe.test(fd!) || !nsRe.test(ns!) || !intRe.test(len!)) return null;
    const head = parts.join(" ").length;
    const data = line.length > head ? line.slice(head + 1) : "";
    return { kind: k, pid: Number(pid), fd: Number(fd), ns: BigInt(ns!), len: Number(len), data };
  }
  const f = line.split(" ");
  if (f.length === 4 && f[0] === "X" && intRe.test(f[1]!) && intRe.test(f[2]!) && nsRe.test(f[3]!))
    return { kind: "X", pid: Number(f[1]), fd: Number(f[2]), ns: BigInt(f[3]!) };
  if (f.length === 3 && f[0] === "F" && intRe.test(f[1]!) && intRe.test(f[2]!)) return { kind: "F", pid: Number(f[1]), parent: Number(f[2]) };
  return null;
}

export type TraceOutput =
  /** A whole R/W record: its lines joined again ("R pid fd ns len data"). */
  | { kind: "record"; line: string }
  /** A line printed outside records (X, F, P, T, bpftrace's own). */
  | { kind: "line"; line: string }
  /** A record longer than any the program prints: dropped. */
  | { kind: "oversized" };

/**
 * Puts the program's records back together: "TAG R ..." opens one, the
 * captured bytes may run over several lines, and the line that is TAG alone
 * closes it. Bytes a client sent cannot open or close a record (they would
 * need the tag), nor pass for a line outside one (they are inside one).
 */
export class TraceRecords {
  readonly #open: string;
  #record: string | null = null;
  #dropping = false;

  constructor(
    readonly tag: string,
    /** Characters a record may hold (the header and the captured bytes). */
    private readonly maxChars: number,
  ) {
    this.#open = `${tag} `;
  }

  #rest = "";

  /**
   * Feeds a chunk of output (latin1), split at "\n" only: the captured bytes
   * keep their "\r" (a line reader would take "\r\n" and a lone "\r" as line
   * ends, and the "\r\n\r\n" that ends a head would be lost).
   */
  feed(chunk: string): TraceOutput[] {
    const out: TraceOutput[] = [];
    let text = this.#rest + chunk;
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      const o = this.push(text.slice(start, nl));
      if (o) out.push(o);
      start = nl + 1;
    }
    text = text.slice(start);
    // No line is this long: whatever it was, it is not the program's.
    this.#rest = text.length > 4 * this.maxChars + 4096 ? "" : text;
    return out;
  }

  /** Feeds one line of output; returns what it completes, if anything. */
  push(line: string): TraceOutput | null {
    if (line === this.tag) {
      const record = this.#record;
      const dropped = this.#dropping;
      this.#record = null;
      this.#dropping = false;
      if (dropped) return { kind: "oversized" };
      return record === null ? null : { kind: "record", line: record };
    }
    if (line.startsWith(this.#open)) {
      // A record whose closing line never came (bpftrace cut short): lost with it.
      this.#dropping = line.length - this.#open.length > this.maxChars;
      this.#record = this.#dropping ? "" : line.slice(this.#open.length);
      return null;
    }
    if (this.#record !== null) {
      if (this.#dropping) return null;
      if (this.#record.length + 1 + line.length > this.maxChars) {
        this.#dropping = true;
        this.#record = "";
        return null;
      }
      this.#record += "\n" + line;
      return null;
    }
    return { kind: "line", line };
  }
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
