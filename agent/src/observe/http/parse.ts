/**
 * What bpf/http-requests.bt.tmpl prints (bpftrace's JSON lines, and the text
 * of each printf), and the HTTP/1.x request and status lines in the captured
 * bytes.
 */

export type TraceLine =
  | { kind: "R" | "W"; pid: number; fd: number; ns: bigint; len: number; data: string }
  | { kind: "X"; pid: number; fd: number; ns: bigint }
  | { kind: "F"; pid: number; parent: number }
  | { kind: "P" | "T" };

const intRe = /^\d{1,10}$/;
const nsRe = /^\d{1,20}$/;

/**
 * What one printf of the program printed (R/W with the captured bytes as
 * they were), or null for anything else.
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
  /** What one printf printed, its final newline dropped (a line of the program, the captured bytes as they were). */
  | { kind: "printf"; text: string }
  /** bpftrace attached its probes. */
  | { kind: "attached"; probes: number }
  /** bpftrace could not hand over this many events (its perf buffer was full). */
  | { kind: "lost"; events: number }
  /** Anything else: not JSON, or JSON of another kind. */
  | { kind: "other"; line: string };

/**
 * bpftrace's `-f json` output, a JSON object a line: each printf's text
 * escaped by bpftrace, so captured bytes (newlines, quotes, anything a client
 * sent) stay inside their event and cannot pass for a line of the program.
 */
export class BpftraceJsonLines {
  #rest = "";

  constructor(
    /** Characters a line may hold; longer ones are not the program's. */
    private readonly maxChars: number,
  ) {}

  /** Feeds a chunk of output; returns the events it completes. */
  feed(chunk: string): TraceOutput[] {
    const out: TraceOutput[] = [];
    const text = this.#rest + chunk;
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      out.push(decodeJsonLine(text.slice(start, nl), this.maxChars));
      start = nl + 1;
    }
    const rest = text.slice(start);
    this.#rest = rest.length > this.maxChars ? "" : rest;
    return out;
  }
}

export function decodeJsonLine(line: string, maxChars = Infinity): TraceOutput {
  if (line.length > maxChars || !line.startsWith("{")) return { kind: "other", line: line.slice(0, 200) };
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { kind: "other", line: line.slice(0, 200) };
  }
  const o = v as { type?: unknown; data?: unknown; count?: unknown };
  if (o.type === "printf" && typeof o.data === "string") return { kind: "printf", text: o.data.endsWith("\n") ? o.data.slice(0, -1) : o.data };
  const data = (typeof o.data === "object" && o.data !== null ? o.data : {}) as { probes?: unknown; events?: unknown };
  if (o.type === "attached_probes" && typeof data.probes === "number") return { kind: "attached", probes: data.probes };
  const events = typeof data.events === "number" ? data.events : o.count;
  if (o.type === "lost_events" && typeof events === "number") return { kind: "lost", events };
  return { kind: "other", line: line.slice(0, 200) };
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
