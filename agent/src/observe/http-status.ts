// The status of one plain-HTTP GET, read off the response's first line, for
// the agent's health probes. node:http builds a client request, an agent, a
// parser and header objects for each GET: ~1 ms of CPU a probe in the
// agent's baseline-compiled code, against ~0.3 ms for a socket that writes
// the request and reads one line (most of it the kernel's connect). A
// five-service agent probes about once a second, so that is ~0.07 % of a
// core of its < 1 % budget. Bodies and https stay with http-get.ts.
import { connect, type Socket } from "node:net";
import { timeoutError } from "./http-get.ts";
import { markOwnConnection } from "./own-connections.ts";

export interface HttpStatus {
  status: number;
  statusText: string;
}

/** The first line may be no longer than this (a status line is ~20 bytes). */
const MAX_STATUS_LINE = 8 * 1024;
/** After the status, at most this much of the response is read (and dropped) before the connection is closed. */
const MAX_DRAIN = 64 * 1024;

const STATUS_LINE = /^HTTP\/\d(?:\.\d)? (\d{3})(?: (.*))?$/;

/** The request's bytes: GET with Host, the URL's credentials as Basic auth, `headers`, Connection: close. */
export function statusRequest(url: URL, headers: Record<string, string> = {}): string {
  const lines = [`GET ${url.pathname || "/"}${url.search} HTTP/1.1`, `Host: ${url.host}`];
  if (url.username || url.password) {
    const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
    lines.push(`Authorization: Basic ${Buffer.from(credentials).toString("base64")}`);
  }
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(name + value)) throw new Error(`header ${JSON.stringify(name)} holds a line break`);
    lines.push(`${name}: ${value}`);
  }
  lines.push("Connection: close", "", "");
  return lines.join("\r\n");
}

/**
 * GETs `url` (http: only) on a connection of its own and resolves with the
 * response's status as soon as its first line is in. The rest of the
 * response is read and dropped until the server closes (it was asked to),
 * so a server writing its body sees no reset. Rejects with the connection's
 * error, an Error for an answer that is not HTTP, or a TimeoutError once
 * `timeoutMs` has passed.
 */
export function httpStatus(url: URL, options: { timeoutMs: number; headers?: Record<string, string> }): Promise<HttpStatus> {
  if (url.protocol !== "http:") return Promise.reject(new Error(`httpStatus speaks http: only, not ${url.protocol}`));
  let request: string;
  try {
    request = statusRequest(url, options.headers);
  } catch (err) {
    return Promise.reject(err as Error);
  }
  return new Promise<HttpStatus>((resolve, reject) => {
    let answered = false;
    let head = "";
    let drained = 0;
    const socket: Socket = connect({ host: url.hostname.replace(/^\[|\]$/g, ""), port: Number(url.port || 80) });
    markOwnConnection(socket);
    const timer = setTimeout(() => fail(timeoutError(options.timeoutMs)), options.timeoutMs);
    const close = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    const fail = (err: Error): void => {
      close();
      if (!answered) reject(err);
      answered = true;
    };
    socket.setEncoding("latin1");
    socket.setNoDelay(true);
    socket.once("connect", () => socket.write(request));
    socket.on("data", (chunk: string) => {
      if (answered) {
        drained += chunk.length;
        if (drained > MAX_DRAIN) close();
        return;
      }
      head += chunk;
      const eol = head.indexOf("\r\n");
      if (eol < 0) {
        if (head.length > MAX_STATUS_LINE) fail(new Error(`not an HTTP answer: no status line in its first ${MAX_STATUS_LINE} bytes`));
        return;
      }
      const match = STATUS_LINE.exec(head.slice(0, eol));
      if (!match) return fail(new Error(`not an HTTP answer: ${JSON.stringify(head.slice(0, Math.min(eol, 80)))}`));
      answered = true;
      drained = head.length - eol;
      resolve({ status: Number(match[1]), statusText: match[2] ?? "" });
    });
    socket.on("error", (err) => fail(err));
    // After the server's end too (a socket that is not half-open closes then).
    socket.on("close", () => fail(new Error("the connection closed before an answer")));
  });
}
