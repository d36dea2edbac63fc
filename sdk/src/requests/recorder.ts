/**
 * Watches one request through its response, for any server built on
 * node:http or node:https (plain handlers, Express, Fastify): method, route,
 * status and duration go to the RED aggregates; a sampled request (the share,
 * or any 5xx) is queued as it was seen, and turned into a TrafficSample
 * (headers redacted, bodies joined) only when the agent drains it, so the
 * request path only copies what it needs.
 */
import { randomBytes } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { performance } from "node:perf_hooks";
import { normaliseRoute } from "@coral/proto/http-routes";
import { BodyCapture } from "./body.ts";
import type { ResolvedRequestOptions } from "./options.ts";
import { BoundedQueue } from "./queue.ts";
import { RedAggregator } from "./red.ts";
import { headPairs, objectPairs, redactionSet, redactPairs, type HeaderLine } from "./redact.ts";
import { Sampler, alwaysKept } from "./sampler.ts";

/** A request as it was seen, before serialising (see TrafficSampleData). */
export interface CapturedRequest {
  id: string;
  method: string;
  path: string;
  route: string;
  status: number;
  startMs: number;
  durationMs: number;
  requestRaw: string[];
  responseHead: string | undefined;
  responseHeaders: string[] | undefined;
  requestBody: BodyCapture | undefined;
  responseBody: BodyCapture | undefined;
  reason: "sampled" | "error";
}

/** A sample ready to hand over. */
export interface TrafficSampleData {
  id: string;
  method: string;
  path: string;
  route: string;
  status: number;
  startTime: Date;
  durationMs: number;
  requestHeaders: HeaderLine[];
  responseHeaders: HeaderLine[];
  requestBody: Buffer;
  requestBodyTruncated: boolean;
  requestBodySize: number;
  responseBody: Buffer;
  responseBodyTruncated: boolean;
  responseBodySize: number;
  reason: "sampled" | "error";
}

/** Where a framework says which route pattern served the request (called once, when the response ends). */
export type RouteOf = () => string | undefined;

const watched = Symbol.for("coral.sdk.request");

interface Watch {
  routeOf: RouteOf | undefined;
}

/** Express `/users/:id` and Fastify `/users/:id` patterns in the agent's form (`/users/{id}`). */
export function frameworkRoute(pattern: string): string {
  return pattern.replace(/[:*]([A-Za-z_][A-Za-z0-9_]*)(\([^)]*\))?\??/g, (_m, name: string) => `{${name.toLowerCase().replace(/[^a-z]/g, "") || "param"}}`);
}

let idCounter = 0;
const idPrefix = randomBytes(6).toString("hex");
function nextId(): string {
  idCounter = (idCounter + 1) % 0x1_0000_0000;
  return idPrefix + idCounter.toString(16).padStart(8, "0");
}

export class RequestRecorder {
  readonly red: RedAggregator;
  readonly queue: BoundedQueue<CapturedRequest>;
  readonly sampler: Sampler;
  #redact: ReadonlySet<string>;
  /** Set once any middleware watched a request. */
  instrumented = false;

  constructor(readonly options: ResolvedRequestOptions) {
    this.red = new RedAggregator(options.routeCap);
    this.queue = new BoundedQueue(options.queue);
    this.sampler = new Sampler(options.sampleRate);
    this.#redact = redactionSet(options.redactHeaders);
  }

  /**
   * Starts watching (once per request: a second middleware only adds its
   * route lookup). Call it before the app reads the body.
   */
  watch(req: IncomingMessage, res: ServerResponse, routeOf?: RouteOf): void {
    const existing = (req as unknown as Record<symbol, Watch | undefined>)[watched];
    if (existing) {
      if (routeOf) existing.routeOf = routeOf;
      return;
    }
    const w: Watch = { routeOf };
    (req as unknown as Record<symbol, Watch>)[watched] = w;
    this.instrumented = true;
    const start = performance.now();
    const startMs = Date.now();
    // Now, before a router rewrites it (Express strips mount paths from req.url).
    const path = req.url ?? "/";
    const samples = this.options.samples;
    const sampled = samples && this.sampler.next();
    const limit = this.options.maxBodyBytes;
    let reqBody: BodyCapture | undefined;
    let resBody: BodyCapture | undefined;
    if (samples && limit > 0) {
      reqBody = new BodyCapture(limit);
      resBody = new BodyCapture(limit);
      const rb = reqBody;
      const sb = resBody;
      // The HTTP parser pushes body chunks: seen however the app reads them (events, pipes, iterators), or if it never does.
      const push = req.push;
      req.push = function (this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding) {
        if (chunk !== null) rb.add(chunk, encoding);
        return push.call(this, chunk, encoding);
      } as typeof req.push;
      const write = res.write;
      res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
        sb.add(chunk, typeof rest[0] === "string" ? rest[0] : undefined, true);
        return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
      } as typeof res.write;
      const end = res.end;
      res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
        if (chunk !== undefined && typeof chunk !== "function") sb.add(chunk, typeof rest[0] === "string" ? rest[0] : undefined, true);
        return (end as (...a: unknown[]) => ServerResponse).call(this, chunk, ...rest);
      } as typeof res.end;
    }
    res.once("finish", () => {
      const durationMs = performance.now() - start;
      const status = res.statusCode;
      const method = req.method ?? "GET";
      let pattern: string | undefined;
      try {
        pattern = w.routeOf?.();
      } catch {
        pattern = undefined;
      }
      const route = pattern ? frameworkRoute(pattern) : normaliseRoute(path);
      this.red.record(method, route.length > 200 ? "other" : route, status, durationMs);
      if (!samples || !(sampled || alwaysKept(status))) return;
      const head = (res as unknown as { _header?: unknown })._header;
      const captured: CapturedRequest = {
        id: nextId(),
        method,
        path,
        route,
        status,
        startMs,
        durationMs,
        requestRaw: req.rawHeaders.slice(),
        responseHead: typeof head === "string" ? head : undefined,
        responseHeaders: typeof head === "string" ? undefined : objectPairs(res.getHeaders()),
        requestBody: reqBody,
        responseBody: resBody,
        reason: sampled ? "sampled" : "error",
      };
      this.queue.push(captured, estimateBytes(captured, limit));
    });
  }

  /** Up to `max` queued samples, oldest first, serialised and redacted. */
  takeSamples(max: number): TrafficSampleData[] {
    return this.queue.take(max).map((c) => this.serialise(c));
  }

  serialise(c: CapturedRequest): TrafficSampleData {
    const reqBody = c.requestBody;
    const resBody = c.responseBody;
    return {
      id: c.id,
      method: c.method,
      path: c.path,
      route: c.route,
      status: c.status,
      startTime: new Date(c.startMs),
      durationMs: c.durationMs,
      requestHeaders: redactPairs(c.requestRaw, this.#redact),
      responseHeaders: redactPairs(c.responseHead !== undefined ? headPairs(c.responseHead) : (c.responseHeaders ?? []), this.#redact),
      requestBody: reqBody?.bytes() ?? Buffer.alloc(0),
      requestBodyTruncated: reqBody?.truncated ?? false,
      requestBodySize: reqBody?.size ?? 0,
      responseBody: resBody?.bytes() ?? Buffer.alloc(0),
      responseBodyTruncated: resBody?.truncated ?? false,
      responseBodySize: resBody?.size ?? 0,
      reason: c.reason,
    };
  }
}

function estimateBytes(c: CapturedRequest, limit: number): number {
  let n = 200 + c.path.length + c.route.length + (c.responseHead?.length ?? 0);
  for (const h of c.requestRaw) n += h.length;
  for (const h of c.responseHeaders ?? []) n += h.length;
  n += Math.min(c.requestBody?.size ?? 0, limit) + Math.min(c.responseBody?.size ?? 0, limit);
  return n;
}
