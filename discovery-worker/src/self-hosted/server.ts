// Self-hosted discovery: the worker runs in workerd through Miniflare, with
// Durable Object storage persisted under the data folder. Meshes are split
// over one or more workerd processes ("shards", see shards.ts). A small Node
// front listens on the public port: it sends each request to its mesh's
// shard, sums Health over all shards, applies the registration rate limit,
// and tells the worker each caller's real socket address (it overwrites
// CF-Connecting-IP and drops Miniflare's internal headers, which a client
// could otherwise use to spoof its address). Shards listen on 127.0.0.1 but
// answer only requests carrying this process's random front secret, which
// only the front adds: a local caller cannot skip the rate limit or spoof
// its address by talking to a shard directly. The front forwards the
// canonical path it classified (see canonicalTarget), never the raw one.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { limits } from "@coral/proto";
import { Log, LogLevel as MiniflareLogLevel, Miniflare } from "miniflare";
import type { Logger } from "pino";
import { expiresAtHeader, refreshedHeader } from "../worker/answer-expiry.ts";
import { frontSecretHeader } from "../worker/front-secret.ts";
import { isPlainUnary } from "../worker/plain-unary.ts";
import {
  decodeBatch,
  encodeBatch,
  isAnswerHead,
  maxBatchItems,
  registrationBatchPath,
  type BatchAnswerHead,
  type BatchPart,
  type BatchRequestHead,
} from "../worker/registration-batch-wire.ts";
import { AnswerCache, ownBytes, type Answer, type AnswerCacheStats } from "./answer-cache.ts";
import { parseRefreshNote, refreshedAnswer } from "./answer-refresh.ts";
import { bundleWorker } from "./bundle.ts";
import { FrontRateLimiter } from "./front-rate-limit.ts";
import { encodeHealth, parseHealth, sumHealth, type HealthEncoding } from "./health.ts";
import { loadOrCreateSigningJwk } from "./keys.ts";
import { RegistrationBatcher, type BatcherStats } from "./registration-batcher.ts";
import { bodyFormat, canonicalTarget, connectMethod, isLookup, isRegistration, meshIdFromBody, meshIdFromQuery, restTarget } from "./route-key.ts";
import { resolveLayout, shardOf, shardStorageDir } from "./shards.ts";

export const discoveryVersion = "0.1.0";

/**
 * Mesh buckets per shard of a new data dir. Fewer buckets means more requests
 * reach the same object together and share a commit: at 32 in flight over 2
 * shards, first registrations ran at ~1,700/s with 1 bucket, ~1,400/s with 4,
 * ~1,050/s with 16 and ~990/s with 64 (bench/BENCHMARKS.md, issue 26). 4
 * keeps most of that while no one object gets very large (100,000 meshes
 * over 2 shards are 12,500 per bucket, loaded in one go when it starts).
 */
export const defaultMeshBuckets = 4;

/**
 * Lookup answers the front keeps by default: a colony answer and an agent's
 * for each of 100,000 meshes, with 1.5 KiB of budget each (see
 * answer-cache.ts); the front's RSS at 100,000 meshes is in bench/BENCHMARKS.md.
 */
export const defaultAnswerCacheEntries = 200_000;

/**
 * How long a registration may wait for others to its shard while a batch of
 * them is on its way (see registration-batcher.ts); one that finds its shard
 * idle goes at once. A colony refreshes once a minute, so a few ms do not
 * matter to it, while refreshes arriving evenly at 1,000/s per shard would
 * make batches of only ~2 with a 2 ms window (bench/BENCHMARKS.md, issue 26).
 */
export const defaultRegistrationBatchWindowMs = 5;

export interface DiscoveryServerOptions {
  port: number;
  host?: string;
  ttlSeconds?: number;
  /** How often expired entries are purged at most (0: exactly at expiry). */
  cleanupIntervalSeconds?: number;
  dataDir: string;
  /** Registrations per minute per client address; 0 turns the limit off. */
  rateLimitPerMinute?: number;
  pinGraceSeconds?: number;
  replayWindowSeconds?: number;
  /**
   * workerd processes to split meshes over. An existing data dir keeps the
   * count it was created with; asking for another one is refused.
   */
  shards?: number;
  /** Shard count for a new data dir when `shards` is not given (default 1). */
  defaultShards?: number;
  /**
   * Durable Objects per shard that meshes are hashed into (0: one object per
   * mesh, the hosted layout). A new data dir takes this or defaultMeshBuckets;
   * an existing one keeps its count (one per mesh if it predates buckets), and
   * asking for another one is refused.
   */
  meshBuckets?: number;
  /** The worker bundle to run; default: the built one. Benchmarks pass an older build to compare. */
  workerScript?: string;
  /** Private JWK; default: read or create `<dataDir>/bootstrap-signing-key.jwk`. */
  signingKey?: string;
  /** Lookup answers the front keeps (see answer-cache.ts); 0 turns the cache off. Default defaultAnswerCacheEntries. */
  answerCacheEntries?: number;
  /**
   * Registrations to a shard go to its worker in batches, each waiting at
   * most this long for others (see registration-batcher.ts); 0: each alone.
   * Default defaultRegistrationBatchWindowMs.
   */
  registrationBatchWindowMs?: number;
  /**
   * Opens each shard's V8 inspector on a random loopback port (see
   * workerInspectorUrls), so a benchmark can profile the worker's
   * JavaScript. Anyone on the machine could then run code in the worker:
   * benchmarks only, never a served deployment.
   */
  workerInspector?: boolean;
  logger?: Logger;
}

export interface DiscoveryServer extends AsyncDisposable {
  url: string;
  port: number;
  shards: number;
  /** Durable Objects per shard that meshes share; 0: one per mesh. */
  meshBuckets: number;
  /** Counters of the front's answer cache; undefined when it is off. */
  answerCacheStats(): AnswerCacheStats | undefined;
  /** Registration batches sent to the shards, summed; undefined when registrations go alone. */
  registrationBatchStats(): BatcherStats | undefined;
  /** Each shard's inspector (ws://), in shard order; empty unless workerInspector was asked for. */
  workerInspectorUrls(): Promise<string[]>;
  close(): Promise<void>;
}

const miniflareHeader = /^mf-/i;

/**
 * Miniflare's exit hook calls process.exit() on SIGINT and SIGTERM, before the
 * process hosting it (coral up, coral-discovery) can shut down gracefully.
 * The host closes Miniflare itself; its "exit" hook (which stops workerd)
 * stays in place.
 */
function leaveSignalsToTheHost(): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const)
    for (const listener of process.listeners(signal))
      if (listener.name === "onSignalInt" || listener.name === "onSignalTerm") process.removeListener(signal, listener);
}

interface Shard {
  mf: Miniflare;
  host: string;
  port: number;
  agent: http.Agent;
  /** Undefined when registrations go alone. */
  batcher?: RegistrationBatcher;
}

/** A request to send to a shard whole (its body already read). */
interface UpstreamRequest {
  method: string;
  path: string;
  headers: http.OutgoingHttpHeaders;
  body: Buffer;
}

/**
 * Answers a registration asks again for, at most: a mesh's colony lookup and
 * its most recently filled agent lookups.
 */
const refreshLimit = 16;

interface Upstream {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export async function startDiscoveryServer(options: DiscoveryServerOptions): Promise<DiscoveryServer> {
  const dataDir = resolve(options.dataDir);
  const host = options.host ?? "127.0.0.1";
  const log = options.logger;
  const layout = await resolveLayout(
    dataDir,
    { shards: options.shards, meshBuckets: options.meshBuckets },
    { shards: options.defaultShards ?? 1, meshBuckets: defaultMeshBuckets },
  );
  const shardCount = layout.shards;
  const signingKey = options.signingKey ?? (await loadOrCreateSigningJwk(join(dataDir, "bootstrap-signing-key.jwk")));
  const script = options.workerScript ?? (await bundleWorker());
  const startedAtMs = Date.now();
  // New on every start: only this front can reach its shards.
  const frontSecret = randomBytes(32).toString("hex");
  const toShard = (req: http.IncomingMessage) => upstreamHeaders(req, frontSecret);

  const startShard = async (index: number): Promise<Shard> => {
    const mf = new Miniflare({
      modules: true,
      script,
      compatibilityDate: "2025-09-01",
      host: "127.0.0.1",
      port: 0,
      log: new Log(MiniflareLogLevel.WARN),
      // No network lookup of the cf object: discovery reads only CF-Connecting-IP.
      cf: false,
      // The front talks to the worker's own socket, skipping Miniflare's entry
      // worker (dev conveniences: pretty errors, request logs, live reload),
      // which cost about a third of the worker CPU of a lookup.
      unsafeDirectSockets: [{ host: "127.0.0.1", port: 0 }],
      ...(options.workerInspector ? { inspectorPort: 0 } : {}),
      durableObjects: {
        MESHES: { className: "MeshRegistry", useSQLite: true },
        DIRECTORY: { className: "Directory", useSQLite: true },
        RATE_LIMITER: { className: "RateLimiter", useSQLite: true },
      },
      durableObjectsPersist: shardStorageDir(dataDir, index),
      bindings: {
        REGISTRATION_TTL_SECONDS: String(options.ttlSeconds ?? 300),
        CLEANUP_INTERVAL_SECONDS: String(options.cleanupIntervalSeconds ?? 0),
        PIN_GRACE_SECONDS: String(options.pinGraceSeconds ?? 86400),
        REPLAY_WINDOW_SECONDS: String(options.replayWindowSeconds ?? 300),
        // The front limits registrations (FrontRateLimiter), across shards.
        REGISTER_RATE_PER_MINUTE: "0",
        // One isolate per shard sees every registration of its meshes, so a
        // cached answer can live until the registration expires (a
        // re-registration drops it; see lookup-cache.ts). Lookups then rarely
        // wake a mesh's object, which lets idle objects be evicted and their
        // SQLite memory freed.
        LOOKUP_CACHE_SECONDS: String(options.ttlSeconds ?? 300),
        // Meshes share this many objects per shard: a new mesh is rows in an
        // open database, not a new database (see shards.ts).
        MESH_BUCKETS: String(layout.meshBuckets),
        VERSION: discoveryVersion,
        STARTED_AT_MS: String(startedAtMs),
        BOOTSTRAP_SIGNING_KEY: signingKey,
        FRONT_SECRET: frontSecret,
      },
    });
    try {
      await mf.ready;
      const direct = await mf.unsafeGetDirectURL();
      return { mf, host: direct.hostname, port: Number(direct.port), agent: new http.Agent({ keepAlive: true, maxSockets: 512 }) };
    } catch (err) {
      await mf.dispose().catch(() => undefined);
      throw err;
    }
  };

  const started = await Promise.allSettled(Array.from({ length: shardCount }, (_, i) => startShard(i)));
  const shards = started.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const stopShards = () => Promise.all(shards.map(async (s) => (s.agent.destroy(), await s.mf.dispose())));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) {
    await stopShards();
    throw failed.reason;
  }
  leaveSignalsToTheHost();
  const limiter = new FrontRateLimiter(options.rateLimitPerMinute ?? 60);
  const answerCacheEntries = options.answerCacheEntries ?? defaultAnswerCacheEntries;
  const answers = answerCacheEntries > 0 ? new AnswerCache<UpstreamRequest>({ maxEntries: answerCacheEntries }) : undefined;

  const unavailable = (res: http.ServerResponse, err: Error) => {
    log?.error({ err: err.message }, "worker runtime did not answer");
    if (!res.headersSent) res.writeHead(503, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: "unavailable", message: "discovery runtime is not answering; retry shortly" }));
  };

  /** Sends the request to one shard and streams the answer back. */
  const forward = (
    shard: Shard,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    headers: http.OutgoingHttpHeaders,
    body: { buffered: Buffer[]; rest: boolean },
    onAnswer?: (status: number, headers: http.IncomingHttpHeaders) => void,
    retried = false,
  ) => {
    // The retry takes a connection of its own: another kept-alive one may be just as dead.
    const upstream = http.request(
      { host: shard.host, port: shard.port, method: req.method, path: req.url, headers, agent: retried ? false : shard.agent },
      (upRes) => {
        onAnswer?.(upRes.statusCode ?? 502, upRes.headers);
        // For the front only (see refreshedHeader).
        delete upRes.headers[refreshedHeader];
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    upstream.on("error", (err: NodeJS.ErrnoException) => {
      // workerd may close an idle kept-alive connection just as it is reused;
      // then nothing reached the worker, and a buffered request can go again.
      if (!retried && upstream.reusedSocket && reusedSocketGone(err) && !body.rest && !res.headersSent)
        return forward(shard, req, res, headers, body, onAnswer, true);
      // The worker may have acted on the request before the connection broke.
      onAnswer?.(503, {});
      unavailable(res, err);
    });
    for (const chunk of body.buffered) upstream.write(chunk);
    if (body.rest) req.pipe(upstream);
    else upstream.end();
  };

  /** Asks one shard and reads the whole answer (Health and lookups, which are small). */
  const ask = (shard: Shard, request: UpstreamRequest, retried = false) =>
    new Promise<Upstream>((done, fail) => {
      const upstream = http.request(
        { host: shard.host, port: shard.port, method: request.method, path: request.path, headers: request.headers, agent: retried ? false : shard.agent },
        (upRes) => {
          const chunks: Buffer[] = [];
          upRes.on("data", (c: Buffer) => chunks.push(c));
          upRes.on("end", () => done({ status: upRes.statusCode ?? 502, headers: upRes.headers, body: Buffer.concat(chunks) }));
          upRes.on("error", fail);
        },
      );
      upstream.on("error", (err: NodeJS.ErrnoException) => {
        if (!retried && upstream.reusedSocket && reusedSocketGone(err)) ask(shard, request, true).then(done, fail);
        else fail(err);
      });
      upstream.end(request.body);
    });

  /** Sends registrations to a shard as one batch (registration-batcher.ts) and reads the worker's answer to each. */
  const sendBatch = async (shard: Shard, parts: Array<BatchPart<BatchRequestHead>>): Promise<Array<BatchPart<BatchAnswerHead>>> => {
    const encoded = encodeBatch(parts);
    const body = Buffer.from(encoded.buffer, encoded.byteOffset, encoded.byteLength);
    const headers = { "content-type": "application/octet-stream", "content-length": String(body.byteLength), [frontSecretHeader]: frontSecret };
    const upstream = await ask(shard, { method: "POST", path: registrationBatchPath, headers, body });
    if (upstream.status !== 200)
      throw new Error(`the worker refused a registration batch (HTTP ${upstream.status}): ${upstream.body.toString("utf8", 0, 500)}`);
    return decodeBatch(upstream.body, Infinity).map((part) => {
      if (!isAnswerHead(part.head)) throw new Error("the worker's answer to a registration batch holds a part that is not an answer");
      return { head: part.head, body: part.body };
    });
  };
  const batchWindowMs = options.registrationBatchWindowMs ?? defaultRegistrationBatchWindowMs;
  if (batchWindowMs > 0)
    for (const shard of shards) shard.batcher = new RegistrationBatcher((parts) => sendBatch(shard, parts), { maxItems: maxBatchItems, windowMs: batchWindowMs });

  /** Sends a registration to its shard with the others that arrive meanwhile and answers it as forward() would. */
  const registerBatched = (
    batcher: RegistrationBatcher,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    body: Buffer,
    onAnswer: (status: number, headers: http.IncomingHttpHeaders) => void,
  ) => {
    batcher
      .submit({ head: { path: req.url ?? "/", headers: batchedHeaders(toShard(req)) }, body })
      .then(
        (answer) => {
          const headers: http.IncomingHttpHeaders = {};
          for (const [name, value] of answer.head.headers) headers[name] = value;
          onAnswer(answer.head.status, headers);
          // For the front only (see refreshedHeader).
          delete headers[refreshedHeader];
          headers["content-length"] = String(answer.body.byteLength);
          res.writeHead(answer.head.status, headers);
          res.end(answer.body);
        },
        (err: Error) => {
          // The worker may have acted on the registration before the connection broke.
          onAnswer(503, {});
          unavailable(res, err);
        },
      )
      .catch((err: Error) => unavailable(res, err));
  };

  const health = async (
    encoding: HealthEncoding,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    headers: http.OutgoingHttpHeaders,
    body: Buffer,
  ) => {
    const request = { method: req.method ?? "GET", path: req.url ?? "/", headers, body };
    const answers = await Promise.all(shards.map((s) => ask(s, request)));
    const failed = answers.find((a) => a.status !== 200);
    const first = failed ?? answers[0]!;
    const merged = failed ? first.body : encodeHealth(encoding, sumHealth(answers.map((a) => parseHealth(encoding, a.body))));
    res.writeHead(first.status, { ...first.headers, "content-length": String(merged.byteLength) });
    res.end(merged);
  };

  /**
   * Asks the mesh's shard for a lookup answer and keeps it if it may be kept.
   * Resolves to undefined when the shard did not answer. Misses of the same
   * key meanwhile share this answer.
   */
  const fetchAnswer = (cache: AnswerCache<UpstreamRequest>, key: string, meshId: string, request: UpstreamRequest) => {
    const ticket = cache.begin(meshId);
    const answer = ask(shardFor(meshId), request).then(
      (upstream) => {
        const a = toAnswer(upstream);
        if (a.expiresAtMs > 0) cache.fill(ticket, key, a, keptRequest(request));
        else cache.abandon(ticket);
        return a;
      },
      (err: Error) => {
        cache.abandon(ticket);
        log?.warn({ err: err.message }, "worker runtime did not answer a lookup");
        return undefined;
      },
    );
    cache.share(ticket, key, answer);
    return answer;
  };

  /** A lookup the cache did not have: share one on its way, or ask the mesh's shard; pass the answer on. */
  const lookupAndKeep = async (
    cache: AnswerCache<UpstreamRequest>,
    key: string,
    meshId: string,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    body: Buffer,
  ) => {
    const answer =
      (await cache.pending(meshId, key)) ??
      (await fetchAnswer(cache, key, meshId, { method: req.method ?? "GET", path: req.url ?? "/", headers: toShard(req), body }));
    if (answer) serveAnswer(res, answer);
    else unavailable(res, new Error("no answer from the worker runtime"));
  };

  const refuseRate = (res: http.ServerResponse, contentType: string | undefined, message: string) => {
    if (contentType?.startsWith("application/grpc")) {
      res.writeHead(200, { "content-type": contentType, "grpc-status": "8", "grpc-message": encodeURIComponent(message) });
      res.end();
      return;
    }
    res.writeHead(429, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: "resource_exhausted", message }));
  };

  const shardFor = (meshId: string | undefined) => shards[meshId === undefined ? 0 : shardOf(meshId, shards.length)]!;

  /**
   * Drops the mesh's cached answers now and again once the registration is
   * answered (see answer-cache.ts). Then, when the worker says it was a pure
   * refresh and no other registration of the mesh came in meanwhile, puts
   * the dropped answers back updated to it (answer-refresh.ts); otherwise
   * asks again for the most recently filled of them, so lookups of a busy
   * mesh keep finding one. Gives back the rate-limit token of a registration
   * refused as invalid.
   */
  const registering = (client: string, meshId: string | undefined) => {
    if (meshId === undefined) answers?.invalidateAll();
    const registration = meshId === undefined ? undefined : answers?.registering(meshId);
    return (status: number, headers: http.IncomingHttpHeaders) => {
      if (status === 400) limiter.refund(client);
      if (!answers || !registration || meshId === undefined) return answers?.invalidateAll();
      const alone = answers.registered(registration);
      const note = status === 200 && alone ? parseRefreshNote(headers[refreshedHeader]) : undefined;
      const refetch = [];
      for (const dropped of registration.dropped) {
        const contentType = dropped.request.headers["content-type"];
        const updated = note && refreshedAnswer({ path: dropped.request.path, contentType: typeof contentType === "string" ? contentType : undefined }, dropped.answer, note);
        if (!updated || !answers.restore(meshId, dropped, updated)) refetch.push(dropped);
      }
      for (const { key, request } of refetch.slice(0, refreshLimit))
        if (!answers.has(key) && !answers.pending(meshId, key)) void fetchAnswer(answers, key, meshId, request);
    };
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (log?.isLevelEnabled("debug")) log.debug({ method: req.method, path: req.url, client: clientAddress(req) }, "request");
    const canonical = canonicalTarget(req.url ?? "/");
    if (canonical === undefined) {
      res.writeHead(400, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: "invalid_argument", message: `request target ${JSON.stringify(req.url)} is not a path` }));
      return;
    }
    // Everything below, and the shard, sees the one spelling that was classified.
    req.url = canonical;
    const url = canonical;
    const queryAt = url.indexOf("?");
    const path = queryAt < 0 ? url : url.slice(0, queryAt);
    if (path.toLowerCase() === registrationBatchPath) {
      res.writeHead(403, { "content-type": "application/json" });
      const message = `${registrationBatchPath} is internal to coral-discovery (its front sends registration batches to its shards); register with RegisterColony, RegisterAgent or POST /v1/mesh/:mesh_id/register`;
      res.end(JSON.stringify({ code: "permission_denied", message }));
      return;
    }
    // Every body is read (up to the limit) before it goes to a shard: a request
    // the worker refuses half-read would break the kept-alive connection for
    // the next one, and a buffered request can be sent again on a fresh one.
    const withBody = async (): Promise<{ buffered: Buffer[]; rest: false } | undefined> => {
      if (req.method === "GET" || req.method === "HEAD") return { buffered: [], rest: false };
      const body = await readBounded(req);
      if (body.rest) return void tooLarge(req, res);
      return { buffered: body.buffered, rest: false };
    };
    const admitted = (register: boolean, contentType?: string) => {
      if (!register) return true;
      const client = clientAddress(req);
      const decision = limiter.take(client);
      if (!decision.allowed) refuseRate(res, contentType, limiter.message(client, decision));
      return decision.allowed;
    };

    if (path === "/health" && req.method === "GET" && shards.length > 1)
      return health("rest", req, res, toShard(req), Buffer.alloc(0));
    const rest = restTarget(req.method ?? "", path);
    if (rest) {
      if (rest.register) {
        if (!admitted(true)) return;
        const body = await withBody();
        if (!body) return;
        const shard = shardFor(rest.meshId);
        const onAnswer = registering(clientAddress(req), rest.meshId);
        if (shard.batcher) registerBatched(shard.batcher, req, res, Buffer.concat(body.buffered), onAnswer);
        else forward(shard, req, res, toShard(req), body, onAnswer);
        return;
      }
      if (answers && req.method === "GET") {
        const key = `GET ${url}`;
        const hit = answers.get(key);
        if (hit) return serveAnswer(res, hit);
        return lookupAndKeep(answers, key, rest.meshId, req, res, Buffer.alloc(0));
      }
      const body = await withBody();
      if (body) forward(shardFor(rest.meshId), req, res, toShard(req), body);
      return;
    }
    const method = connectMethod(path);
    if (!method || req.method !== "POST") {
      const body = await withBody();
      if (!body) return;
      if (method && req.method === "GET") return forward(shardFor(meshIdFromQuery(method, new URLSearchParams(url.slice(queryAt + 1)))), req, res, toShard(req), body);
      return forward(shards[0]!, req, res, toShard(req), body);
    }

    const body = await withBody();
    if (!body) return;
    const bytes = body.buffered.length === 1 ? body.buffered[0]! : Buffer.concat(body.buffered);
    const contentType = req.headers["content-type"] ?? "";
    const key = answers && isLookup(method) ? connectLookupKey(path, req, bytes) : undefined;
    if (key !== undefined) {
      const hit = answers!.get(key);
      if (hit) return serveAnswer(res, hit);
    }
    const format = bodyFormat(contentType);
    if (method.name === "Health" && shards.length > 1 && format && !format.enveloped)
      return health(format.binary ? "proto" : "json", req, res, toShard(req), bytes);
    const register = isRegistration(method);
    if (!admitted(register, contentType)) return;
    const meshId = meshIdFromBody(
      method,
      { contentType, contentEncoding: header(req, "content-encoding"), grpcEncoding: header(req, "grpc-encoding") },
      bytes,
    );
    if (key !== undefined && meshId !== undefined) return lookupAndKeep(answers!, key, meshId, req, res, bytes);
    const onStatus = register ? registering(clientAddress(req), meshId) : undefined;
    const shard = shardFor(meshId);
    // The registrations the worker answers on its own path (connect-routes.ts) go in batches; the rest alone.
    if (onStatus && shard.batcher && isPlainUnary(req.method ?? "", (name) => header(req, name)))
      return registerBatched(shard.batcher, req, res, bytes, onStatus);
    forward(shard, req, res, toShard(req), { buffered: [bytes], rest: false }, onStatus);
  };

  const front = http.createServer((req, res) => {
    handle(req, res).catch((err: Error) => unavailable(res, err));
  });
  front.keepAliveTimeout = 65_000;
  try {
    front.listen(options.port, host);
    await once(front, "listening");
  } catch (err) {
    await stopShards();
    throw err;
  }
  const port = (front.address() as AddressInfo).port;
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      front.closeAllConnections();
      await new Promise<void>((done) => front.close(() => done()));
      await stopShards();
    })());
  return {
    url: `http://${urlHost}:${port}`,
    port,
    shards: shards.length,
    meshBuckets: layout.meshBuckets,
    answerCacheStats: () => (answers ? { ...answers.stats, entries: answers.size } : undefined),
    registrationBatchStats: () =>
      batchWindowMs > 0
        ? shards.reduce((sum, s) => ({ batches: sum.batches + s.batcher!.stats.batches, registrations: sum.registrations + s.batcher!.stats.registrations }), {
            batches: 0,
            registrations: 0,
          })
        : undefined,
    workerInspectorUrls: async () => (options.workerInspector ? Promise.all(shards.map(async (s) => (await s.mf.getInspectorURL()).href)) : []),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** The error of a kept-alive connection the worker closed just before it was reused (reset, or closed as the request was written). */
function reusedSocketGone(err: NodeJS.ErrnoException): boolean {
  return err.code === "ECONNRESET" || err.code === "EPIPE";
}

/** Refuses a body over the limit at the front, as the worker would, and closes the connection (the rest of the body is never read). */
function tooLarge(req: http.IncomingMessage, res: http.ServerResponse): void {
  const declared = Number(req.headers["content-length"] ?? NaN);
  const size = Number.isFinite(declared) && declared > limits.maxBodyBytes ? `${declared} bytes` : `more than ${limits.maxBodyBytes} bytes`;
  const body = JSON.stringify({ code: "invalid_argument", message: `request body is ${size}; the limit is ${limits.maxBodyBytes} bytes` });
  res.writeHead(400, { "content-type": "application/json", "content-length": Buffer.byteLength(body), connection: "close" });
  res.end(body);
}

/**
 * Reads the body up to the size limit; a longer one is left unread. Events,
 * not `for await`: a bare node:http server that read bodies with the async
 * iterator used ~35 % more CPU than one reading them with events, at 4,000
 * requests/s (bench/BENCHMARKS.md, issue 26), and every lookup reads its body.
 */
function readBounded(req: http.IncomingMessage): Promise<{ buffered: Buffer[]; rest: boolean }> {
  const buffered: Buffer[] = [];
  if (Number(req.headers["content-length"] ?? 0) > limits.maxBodyBytes) return Promise.resolve({ buffered, rest: true });
  return new Promise((done, fail) => {
    let total = 0;
    const onData = (chunk: Buffer) => {
      buffered.push(chunk);
      total += chunk.byteLength;
      if (total <= limits.maxBodyBytes) return;
      req.pause();
      stop();
      done({ buffered, rest: true });
    };
    const onEnd = () => {
      stop();
      done({ buffered, rest: false });
    };
    const onError = (err: Error) => {
      stop();
      fail(err);
    };
    // A client that goes away mid-body ends neither with 'end' nor 'error' here.
    const onClose = () => {
      stop();
      fail(new Error("the client closed the connection before its request body was read"));
    };
    const stop = () => {
      req.off("data", onData).off("end", onEnd).off("error", onError).off("close", onClose);
    };
    req.on("data", onData).on("end", onEnd).on("error", onError).on("close", onClose);
  });
}

function clientAddress(req: http.IncomingMessage): string {
  return (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
}

/**
 * The request's headers for the worker: CF-Connecting-IP set from the socket,
 * the front secret added, and Miniflare's own and any client-sent copies of
 * those dropped.
 */
function upstreamHeaders(req: http.IncomingMessage, frontSecret: string): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined && !miniflareHeader.test(name) && name !== "cf-connecting-ip" && name !== frontSecretHeader) headers[name] = value;
  }
  headers["cf-connecting-ip"] = clientAddress(req);
  headers[frontSecretHeader] = frontSecret;
  return headers;
}

/** Headers of the connection, not of the request: a batch has its own (and its own front secret). */
const connectionHeaders = new Set(["host", "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "expect", "proxy-connection", frontSecretHeader]);

/** A registration's headers as its part of a batch carries them (see upstreamHeaders). */
function batchedHeaders(headers: http.OutgoingHttpHeaders): Array<[string, string]> {
  const list: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(headers))
    if (value !== undefined && !connectionHeaders.has(name)) list.push([name, Array.isArray(value) ? value.join(", ") : String(value)]);
  return list;
}

/** Request headers that can change a lookup's answer (the cache key has them too), or that the shard requires. */
const keptRequestHeaders = ["content-type", "accept-encoding", "connect-protocol-version", "cf-connecting-ip", frontSecretHeader];

/**
 * What a kept answer remembers of its request, to ask again after a
 * registration: what decides the answer, and a body of its own (a slice of
 * the socket's read would keep the whole read alive), not every header the
 * client sent.
 */
function keptRequest(request: UpstreamRequest): UpstreamRequest {
  const headers: http.OutgoingHttpHeaders = {};
  for (const name of keptRequestHeaders) if (request.headers[name] !== undefined) headers[name] = request.headers[name];
  return { method: request.method, path: request.path, headers, body: ownBytes(request.body) };
}

// Hop-by-hop headers, and Date, which a kept answer must not repeat.
const unkeptHeaders = new Set(["connection", "keep-alive", "transfer-encoding", "date", "content-length"]);

/** A worker's answer in the form the cache keeps and serves. */
function toAnswer(upstream: Upstream): Answer {
  const headers: string[] = [];
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (value === undefined || unkeptHeaders.has(name)) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.push(name, v);
  }
  headers.push("content-length", String(upstream.body.byteLength));
  const expires = Number(header(upstream, expiresAtHeader));
  return { status: upstream.status, headers, body: upstream.body, expiresAtMs: Number.isFinite(expires) ? expires : 0 };
}

function serveAnswer(res: http.ServerResponse, answer: Answer): void {
  res.writeHead(answer.status, answer.headers);
  res.end(answer.body);
}

/**
 * The cache key of a Connect unary lookup: everything of the request that
 * decides the worker's answer. undefined for requests the cache leaves alone
 * (compressed or large bodies, streaming protocols, a malformed timeout the
 * worker would refuse).
 */
function connectLookupKey(path: string, req: http.IncomingMessage, body: Buffer): string | undefined {
  const contentType = req.headers["content-type"] ?? "";
  const format = bodyFormat(contentType);
  if (!format || format.enveloped || body.byteLength > 4096) return undefined;
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding !== "identity") return undefined;
  const timeout = req.headers["connect-timeout-ms"];
  if (timeout !== undefined && !/^\d{1,10}$/.test(timeout as string)) return undefined;
  return `POST ${path}\n${contentType}\n${req.headers["accept-encoding"] ?? ""}\n${body.toString("latin1")}`;
}

function header(req: { headers: http.IncomingHttpHeaders }, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
