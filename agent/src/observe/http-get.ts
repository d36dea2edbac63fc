// One HTTP GET for the agent's health probes and metric scrapes, on node:http
// (node:https for https URLs). Not fetch: Node's fetch is undici, and loading
// it costs a long-running agent ~15 MB of resident memory for two GETs a
// second. No pooled keep-alive socket: an idle connection from the agent
// would show up in the app's own connection list.
import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { markOwnConnection } from "./own-connections.ts";

export interface HttpGetOptions {
  timeoutMs: number;
  headers?: Record<string, string>;
  /** Read the body up to this many bytes (a larger one is cut off and reported); undefined: drain it unread. */
  maxBodyBytes?: number;
  /** Redirects to follow (default 0: a 3xx is the answer). */
  followRedirects?: number;
}

export interface HttpGetResult {
  status: number;
  statusText: string;
  headers: IncomingHttpHeaders;
  /** When maxBodyBytes was given and the body fit. */
  body?: Buffer;
  /** The body was larger than maxBodyBytes: at least this many bytes (declared, or read until the cap). */
  tooLarge?: number;
}

/** "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:1", "timeout after 500 ms", … */
export function describeGetError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; code?: string; message?: string } | null;
  if (e?.name === "TimeoutError") return `timeout after ${timeoutMs} ms`;
  if (e?.code) return `${e.code}: ${e.message ?? ""}`.trim();
  return e?.message ?? String(err);
}

/** The error a GET rejects with once its time is up (describeGetError tells it by its name). */
export function timeoutError(ms: number): Error {
  return Object.assign(new Error(`timeout after ${ms} ms`), { name: "TimeoutError" });
}

/** Rejects with the connection's error, or a TimeoutError once `timeoutMs` has passed in all. */
export async function httpGet(url: string, options: HttpGetOptions): Promise<HttpGetResult> {
  const deadline = performance.now() + options.timeoutMs;
  let target = new URL(url);
  for (let hops = 0; ; hops++) {
    const res = await getOnce(target, options, deadline);
    const location = res.headers.location;
    if (res.status >= 300 && res.status < 400 && location && hops < (options.followRedirects ?? 0)) {
      target = new URL(location, target);
      continue;
    }
    return res;
  }
}

async function getOnce(url: URL, options: HttpGetOptions, deadline: number): Promise<HttpGetResult> {
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error(`unsupported URL scheme ${url.protocol}`);
  const { request } = url.protocol === "https:" ? await import("node:https") : await import("node:http");
  return new Promise<HttpGetResult>((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | undefined, result?: HttpGetResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        req.destroy();
        reject(err);
      } else resolve(result!);
    };
    const timer = setTimeout(
      () => finish(timeoutError(Math.round(deadline - performance.now()))),
      Math.max(0, deadline - performance.now()),
    );
    const req = request(url, { method: "GET", agent: false, headers: { connection: "close", ...options.headers } }, (res: IncomingMessage) => {
      const base = { status: res.statusCode ?? 0, statusText: res.statusMessage ?? "", headers: res.headers };
      const cap = options.maxBodyBytes;
      if (cap === undefined) {
        res.resume();
        finish(undefined, base);
        return;
      }
      const declared = Number(res.headers["content-length"] ?? NaN);
      if (Number.isFinite(declared) && declared > cap) {
        finish(undefined, { ...base, tooLarge: declared });
        req.destroy();
        return;
      }
      const chunks: Buffer[] = [];
      let bytes = 0;
      res.on("data", (chunk: Buffer) => {
        bytes += chunk.length;
        if (bytes <= cap) chunks.push(chunk);
        else {
          finish(undefined, { ...base, tooLarge: bytes });
          req.destroy();
        }
      });
      res.on("end", () => finish(undefined, { ...base, body: Buffer.concat(chunks) }));
      res.on("error", (err) => finish(err));
    });
    req.on("socket", markOwnConnection);
    req.on("error", (err) => finish(err));
    req.end();
  });
}
