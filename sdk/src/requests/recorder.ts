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
import { MAX_ROUTE_LENGTH, normaliseRoute, OTHER_ROUTE } from "@coral/proto/http-routes";
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

/**
 * Where a framework says which route pattern served the request (called
 * once, when the response ends, with the request it watches).
 */
export type RouteOf = (req: IncomingMessage) => string | undefined;

/** On a watched request: its Watch (a second middleware only adds its route lookup). */
const watched = Symbol.for("coral.sdk.request");
/** On its response: the same Watch, for the shared 'finish' listener and write/end wrappers. */
const watchedResponse = Symbol("coral.sdk.response");

type Marked<T> = T & { [watched]?: Watch; [watchedResponse]?: Watch };
type AnyFunction = (this: unknown, ...args: unknown[]) => unknown;

/** Express `/users/:id` and Fastify `/users/:id` patterns in the agent's form (`/users/{id}`). */
export function frameworkRoute(pattern: string): string {
  return pattern.replace(/[:*]([A-Za-z_][A-Za-z0-9_]*)(\([^)]*\))?\??/g, (_m, name: string) => `{${name.toLowerCase().replace(/[^a-z]/g, "") || "param"}}`);
}

/** Framework patterns are few (an app's routes): each is rewritten once. */
const patternRoutes = new Map<string, string>();
const maxPatternRoutes = 1000;
function cachedFrameworkRoute(pattern: string): string {
  let route = patternRoutes.get(pattern);
  if (route === undefined) {
    route = frameworkRoute(pattern);
    if (patternRoutes.size < maxPatternRoutes) patternRoutes.set(pattern, route);
  }
  return route;
}

let idCounter = 0;
const idPrefix = randomBytes(6).toString("hex");
function nextId(): string {
  idCounter = (idCounter + 1) % 0x1_0000_0000;
  return idPrefix + idCounter.toString(16).padStart(8, "0");
}

/**
 * One request, from the 'request' event to its response's 'finish': one
 * object, and shared functions (no closures) for the listener and the body
 * wrappers. Whether it is in the sampled share is decided when it starts;
 * a request outside the share keeps only references (its head is on the
 * request anyway; request body chunks as the parser made them) and copies
 * a response body only once the status says 5xx, so it can still be kept
 * as an error sample.
 */
class Watch {
  readonly start = performance.now();
  /** Now, before a router rewrites it (Express strips mount paths from req.url). */
  readonly path: string;
  durationMs = 0;
  /** Wall clock when the response went out (a sample's start is this less its duration). */
  endMs = 0;
  requestBody: BodyCapture | undefined = undefined;
  responseBody: BodyCapture | undefined = undefined;
  push: AnyFunction | undefined = undefined;
  write: AnyFunction | undefined = undefined;
  end: AnyFunction | undefined = undefined;

  constructor(
    readonly recorder: RequestRecorder,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    public routeOf: RouteOf | undefined,
    readonly sampled: boolean,
  ) {
    this.path = req.url ?? "/";
  }

  requestChunk(chunk: unknown, encoding: unknown): void {
    (this.requestBody ??= new BodyCapture(this.recorder.options.maxBodyBytes)).add(chunk, encoding);
  }

  /** A response chunk: copied if the request is in the share or its status (fixed once a chunk is written) is 5xx. */
  responseChunk(chunk: unknown, encoding: unknown): void {
    if (!this.sampled && !alwaysKept(this.res.statusCode)) return;
    (this.responseBody ??= new BodyCapture(this.recorder.options.maxBodyBytes)).add(chunk, encoding, true);
  }

  route(): string {
    let pattern: string | undefined;
    if (this.routeOf) {
      try {
        pattern = this.routeOf(this.req);
      } catch {
        pattern = undefined;
      }
    }
    return pattern ? cachedFrameworkRoute(pattern) : normaliseRoute(this.path);
  }

  /** The response went out: its duration now, the rest once the event loop has moved on (see recordFinished). */
  finish(): void {
    this.durationMs = performance.now() - this.start;
    this.endMs = Date.now();
    if (finished.push(this) === 1) setImmediate(recordFinished);
  }

  record(): void {
    const durationMs = this.durationMs;
    const { recorder, req, res } = this;
    const status = res.statusCode;
    const method = req.method ?? "GET";
    const route = this.route();
    recorder.red.record(method, route.length > MAX_ROUTE_LENGTH ? OTHER_ROUTE : route, status, durationMs);
    if (!recorder.options.samples || !(this.sampled || alwaysKept(status))) return;
    const head = (res as unknown as { _header?: unknown })._header;
    const captured: CapturedRequest = {
      id: nextId(),
      method,
      path: this.path,
      route,
      status,
      startMs: this.endMs - durationMs,
      durationMs,
      requestRaw: req.rawHeaders.slice(),
      responseHead: typeof head === "string" ? head : undefined,
      responseHeaders: typeof head === "string" ? undefined : objectPairs(res.getHeaders()),
      requestBody: this.requestBody,
      responseBody: this.responseBody,
      reason: this.sampled ? "sampled" : "error",
    };
    recorder.queue.push(captured, estimateBytes(captured, recorder.options.maxBodyBytes));
  }
}

/**
 * Requests whose response went out, recorded (route, RED, the sample) in one
 * batch after the current turn of the event loop. Done in the 'finish'
 * listener, before the server returned to the event loop, it added about a
 * microsecond more to a request's latency (bench/traffic-sdk, servers
 * interleaved: +2.1–2.8 µs → +1.5–2.1 µs on a ready 0.25 ms answer).
 */
let finished: Watch[] = [];
function recordFinished(): void {
  const batch = finished;
  finished = [];
  for (const w of batch) {
    try {
      w.record();
    } catch {
      // the app must never fail for the SDK's sake; one request's figures are lost
    }
  }
}

function onFinish(this: Marked<ServerResponse>): void {
  this[watchedResponse]?.finish();
}

// The HTTP parser pushes body chunks: seen however the app reads them (events, pipes, iterators), or if it never does.
function capturePush(this: Marked<IncomingMessage>, ...args: unknown[]): unknown {
  const w = this[watched]!;
  if (args[0] !== null) w.requestChunk(args[0], args[1]);
  return w.push!.apply(this, args);
}

function captureWrite(this: Marked<ServerResponse>, ...args: unknown[]): unknown {
  const w = this[watchedResponse]!;
  w.responseChunk(args[0], typeof args[1] === "string" ? args[1] : undefined);
  return w.write!.apply(this, args);
}

function captureEnd(this: Marked<ServerResponse>, ...args: unknown[]): unknown {
  const w = this[watchedResponse]!;
  const chunk = args[0];
  if (chunk !== undefined && typeof chunk !== "function") w.responseChunk(chunk, typeof args[1] === "string" ? args[1] : undefined);
  return w.end!.apply(this, args);
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
    const mreq = req as Marked<IncomingMessage>;
    const existing = mreq[watched];
    if (existing) {
      if (routeOf) existing.routeOf = routeOf;
      return;
    }
    this.instrumented = true;
    const samples = this.options.samples;
    const w = new Watch(this, req, res, routeOf, samples && this.sampler.next());
    mreq[watched] = w;
    const mres = res as Marked<ServerResponse>;
    mres[watchedResponse] = w;
    if (samples && this.options.maxBodyBytes > 0) {
      w.push = req.push as AnyFunction;
      req.push = capturePush as typeof req.push;
      w.write = res.write as AnyFunction;
      res.write = captureWrite as typeof res.write;
      w.end = res.end as AnyFunction;
      res.end = captureEnd as typeof res.end;
    }
    res.on("finish", onFinish);
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
