/**
 * Health probes: an HTTP GET (2xx/3xx is healthy), a plain TCP connect, or
 * (the default) whether the port is still listening, read from
 * /proc/<pid>/net/tcp{,6}: no connection to the app, so a server that forks a
 * process per connection is not made to fork by its health check.
 * Every outcome, including "unreachable" and "timed out", is a result.
 */
import { connect } from "node:net";
import { performance } from "node:perf_hooks";
import { listenersOnPort } from "./listener.ts";
import { readTcpTables, recentTcpTables } from "./procnet.ts";
import { describeGetError, httpGet } from "./http-get.ts";
import { httpStatus } from "./http-status.ts";
import { markOwnConnection } from "./own-connections.ts";

export interface HealthTarget {
  /** HTTP(S) URL to GET. Takes precedence over `tcp` when both are given. */
  url?: string;
  tcp?: { host: string; port: number };
  /**
   * Is a socket listening on `port`: read from the network namespace of `pid`
   * (/proc/<pid>/net) when given, else the agent's own (/proc/net).
   */
  listening?: { port: number; pid?: number | null };
}

/** The health target for a --health value: http(s)://… (GET), tcp://host:port (connect), none (is the port listening). */
export function healthTargetFor(health: string | undefined, port: number, pid: number | null): HealthTarget {
  if (health?.startsWith("tcp://")) {
    const url = new URL(health);
    return { tcp: { host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port) } };
  }
  if (health) return { url: health };
  return { listening: { port, pid } };
}

export interface HealthResult {
  healthy: boolean;
  kind: "http" | "tcp" | "listen";
  /** HTTP status code, when a response arrived. */
  status?: number;
  /** Time to the response headers (HTTP) or to the connection (TCP), or until failure. */
  latencyMs: number;
  error?: string;
}

const PROBE_HEADERS = { "user-agent": "coral-agent/health" };

async function probeHttp(url: URL, timeoutMs: number): Promise<HealthResult> {
  const t0 = performance.now();
  try {
    // Plain HTTP: the status line is all a probe needs (http-status.ts says why not node:http).
    const res = url.protocol === "http:" ? await httpStatus(url, { timeoutMs, headers: PROBE_HEADERS }) : await httpGet(url.href, { timeoutMs, headers: PROBE_HEADERS });
    const latencyMs = performance.now() - t0;
    const healthy = res.status >= 200 && res.status < 400;
    const result: HealthResult = { healthy, kind: "http", status: res.status, latencyMs };
    if (!healthy) result.error = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
    return result;
  } catch (err) {
    return { healthy: false, kind: "http", latencyMs: performance.now() - t0, error: describeGetError(err, timeoutMs) };
  }
}

function probeTcp(host: string, port: number, timeoutMs: number): Promise<HealthResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const socket = connect({ host, port });
    markOwnConnection(socket);
    const finish = (result: Omit<HealthResult, "kind" | "latencyMs">): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...result, kind: "tcp", latencyMs: performance.now() - t0 });
    };
    const timer = setTimeout(() => finish({ healthy: false, error: `timeout after ${timeoutMs} ms` }), timeoutMs);
    socket.once("connect", () => finish({ healthy: true }));
    socket.once("error", (err: NodeJS.ErrnoException) =>
      finish({ healthy: false, error: err.code ? `${err.code}: ${err.message}` : err.message }),
    );
  });
}

async function probeListening(port: number, pid: number | null | undefined): Promise<HealthResult> {
  const t0 = performance.now();
  try {
    // The services of one agent are probed on the same beat: one read of their namespace's tables.
    const tables = pid ? (await recentTcpTables(pid)).entries : await readTcpTables("/proc/net");
    const listening = listenersOnPort(tables, port).size > 0;
    const result: HealthResult = { healthy: listening, kind: "listen", latencyMs: performance.now() - t0 };
    if (!listening) result.error = `nothing listens on port ${port}`;
    return result;
  } catch (err) {
    // The process is gone (its /proc folder with it): nothing listens.
    const code = (err as NodeJS.ErrnoException).code;
    // Another user's process whose table we may not read: this namespace's.
    if (pid && (code === "EACCES" || code === "EPERM")) return probeListening(port, null);
    return { healthy: false, kind: "listen", latencyMs: performance.now() - t0, error: code === "ENOENT" || code === "ESRCH" ? `nothing listens on port ${port} (process ${pid} is gone)` : String(err) };
  }
}

/** Probes `target` once, within `timeoutMs` (default 2000). Never throws. */
export async function probeHealth(target: HealthTarget, timeoutMs = 2000): Promise<HealthResult> {
  if (target.url) {
    let url: URL;
    try {
      url = new URL(target.url);
    } catch {
      return { healthy: false, kind: "http", latencyMs: 0, error: `invalid URL: ${target.url}` };
    }
    return probeHttp(url, timeoutMs);
  }
  if (target.tcp) {
    const { host, port } = target.tcp;
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      return { healthy: false, kind: "tcp", latencyMs: 0, error: `invalid TCP port: ${port}` };
    }
    return probeTcp(host, port, timeoutMs);
  }
  if (target.listening) {
    const { port, pid } = target.listening;
    if (!Number.isInteger(port) || port < 1 || port > 65535) return { healthy: false, kind: "listen", latencyMs: 0, error: `invalid TCP port: ${port}` };
    return probeListening(port, pid);
  }
  return { healthy: false, kind: "http", latencyMs: 0, error: "no health target: give a url, a tcp host and port, or a listening port" };
}
