/**
 * Pairs, per connection (pid, fd), the requests a server reads with the
 * responses it writes, in order (keep-alive: many per connection;
 * pipelining: a queue per connection). Only the server side counts: a
 * connection on which the process writes a request line or reads a status
 * line is its own outbound call (it is a client there) and is left alone.
 */
import { normaliseRoute, RouteCap } from "./routes.ts";
import { requestLinePrefix, requestLines, statusClass, statusLines, type TraceLine } from "./parse.ts";

export interface ServedRequest {
  pid: number;
  method: string;
  /** Normalised and capped (`/users/{id}`, or `other`). */
  route: string;
  status: number;
  /** "2xx", "4xx", … */
  statusClass: string;
  /** Response written − request read, kernel clock. */
  durationMs: number;
  /** Kernel (monotonic) time of the response, ns. */
  endNs: bigint;
}

export interface PairingCounts {
  /** Requests answered (paired). */
  requests: number;
  /** Reads where a request should start that are not HTTP/1.x. */
  unparsed: number;
  /** Responses written with no request read before them (missed or interim). */
  unmatched: number;
  /** Requests whose connection closed before any response. */
  unanswered: number;
  /** Messages of the process's own outbound calls (not counted as served). */
  client: number;
  /** Requests counted as `other` by the route cap. */
  overflow: number;
}

interface Pending {
  method: string;
  target: string;
  ns: bigint;
}

interface Conn {
  queue: Pending[];
  /** The beginning of a request line a read split (with its time). */
  partial: string;
  partialNs: bigint;
  client: boolean;
}

/** Connections kept at most (the oldest is forgotten first): a bound for sockets closed unseen. */
const maxConnections = 65_536;
/** Requests queued per connection at most (pipelining). */
const maxQueue = 256;

export class RequestPairer {
  readonly #conns = new Map<string, Conn>();
  /** Null: routes are capped by whoever takes the requests (one cap per service). */
  readonly #cap: RouteCap | null;
  readonly counts: PairingCounts = { requests: 0, unparsed: 0, unmatched: 0, unanswered: 0, client: 0, overflow: 0 };

  constructor(
    routeCap?: number | null,
    /** Bytes captured per buffer: a buffer longer than that was cut. */
    private readonly captureBytes = 160,
  ) {
    this.#cap = routeCap === null ? null : new RouteCap(routeCap);
  }

  routes(): number {
    return this.#cap?.size() ?? 0;
  }

  #conn(key: string): Conn {
    let c = this.#conns.get(key);
    if (c) return c;
    if (this.#conns.size >= maxConnections) {
      const oldest = this.#conns.keys().next().value!;
      this.#conns.delete(oldest);
    }
    c = { queue: [], partial: "", partialNs: 0n, client: false };
    this.#conns.set(key, c);
    return c;
  }

  /** Feeds one line (in kernel time order); returns the requests it completes. */
  add(e: TraceLine): ServedRequest[] {
    if (e.kind === "X") {
      const key = `${e.pid}:${e.fd}`;
      const c = this.#conns.get(key);
      if (c) {
        this.counts.unanswered += c.queue.length;
        this.#conns.delete(key);
      }
      return [];
    }
    if (e.kind !== "R" && e.kind !== "W") return [];
    const key = `${e.pid}:${e.fd}`;
    const c = this.#conn(key);
    if (c.client) return [];
    const cut = e.len > this.captureBytes;
    if (e.kind === "R") {
      let data = e.data;
      let ns = e.ns;
      if (c.partial) {
        data = c.partial + data;
        ns = c.partialNs;
        c.partial = "";
      }
      const lines = requestLines(data, cut);
      if (lines.length > 0) {
        for (const l of lines) if (c.queue.length < maxQueue) c.queue.push({ method: l.method, target: l.target, ns });
        return [];
      }
      // Inside a request (rest of the head, the body): nothing to see.
      if (c.queue.length > 0) return [];
      if (!cut && requestLinePrefix(data)) {
        c.partial = data;
        c.partialNs = ns;
        return [];
      }
      if (statusLines(data).length > 0) {
        c.client = true;
        this.counts.client++;
        return [];
      }
      this.counts.unparsed++;
      return [];
    }
    // A write.
    if (c.queue.length === 0 && requestLines(e.data, cut).length > 0) {
      c.client = true;
      this.counts.client++;
      return [];
    }
    const out: ServedRequest[] = [];
    for (const status of statusLines(e.data)) {
      // 1xx (100 Continue) comes before the real response.
      if (status < 200) continue;
      const req = c.queue.shift();
      if (!req) {
        this.counts.unmatched++;
        continue;
      }
      const normalised = normaliseRoute(req.target);
      const route = this.#cap ? this.#cap.route(req.method, normalised) : normalised;
      if (route === "other") this.counts.overflow++;
      this.counts.requests++;
      out.push({
        pid: e.pid,
        method: req.method,
        route,
        status,
        statusClass: statusClass(status),
        durationMs: Number(e.ns - req.ns) / 1e6,
        endNs: e.ns,
      });
    }
    return out;
  }
}
