// Self-hosted discovery: the worker runs in workerd through Miniflare, with
// Durable Object storage persisted under the data folder. A small Node front
// listens on the public port so the worker learns each caller's real socket
// address (it overwrites CF-Connecting-IP and drops Miniflare's internal
// headers, which a client could otherwise use to spoof its address).
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { Log, LogLevel as MiniflareLogLevel, Miniflare } from "miniflare";
import type { Logger } from "pino";
import { bundleWorker } from "./bundle.ts";
import { loadOrCreateSigningJwk } from "./keys.ts";

export const discoveryVersion = "0.1.0";

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
  /** Private JWK; default: read or create `<dataDir>/bootstrap-signing-key.jwk`. */
  signingKey?: string;
  logger?: Logger;
}

export interface DiscoveryServer extends AsyncDisposable {
  url: string;
  port: number;
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

export async function startDiscoveryServer(options: DiscoveryServerOptions): Promise<DiscoveryServer> {
  const dataDir = resolve(options.dataDir);
  const host = options.host ?? "127.0.0.1";
  const signingKey = options.signingKey ?? (await loadOrCreateSigningJwk(join(dataDir, "bootstrap-signing-key.jwk")));
  const mf = new Miniflare({
    modules: true,
    script: await bundleWorker(),
    compatibilityDate: "2025-09-01",
    host: "127.0.0.1",
    port: 0,
    log: new Log(MiniflareLogLevel.WARN),
    // No network lookup of the cf object: discovery reads only CF-Connecting-IP.
    cf: false,
    durableObjects: {
      MESHES: { className: "MeshRegistry", useSQLite: true },
      DIRECTORY: { className: "Directory", useSQLite: true },
      RATE_LIMITER: { className: "RateLimiter", useSQLite: true },
    },
    durableObjectsPersist: join(dataDir, "durable-objects"),
    bindings: {
      REGISTRATION_TTL_SECONDS: String(options.ttlSeconds ?? 300),
      CLEANUP_INTERVAL_SECONDS: String(options.cleanupIntervalSeconds ?? 0),
      PIN_GRACE_SECONDS: String(options.pinGraceSeconds ?? 86400),
      REPLAY_WINDOW_SECONDS: String(options.replayWindowSeconds ?? 300),
      REGISTER_RATE_PER_MINUTE: String(options.rateLimitPerMinute ?? 60),
      VERSION: discoveryVersion,
      STARTED_AT_MS: String(Date.now()),
      BOOTSTRAP_SIGNING_KEY: signingKey,
    },
  });
  const inner = await mf.ready;
  leaveSignalsToTheHost();

  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const front = http.createServer((req, res) => {
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !miniflareHeader.test(name) && name !== "cf-connecting-ip") headers[name] = value;
    }
    headers["cf-connecting-ip"] = (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
    options.logger?.debug({ method: req.method, path: req.url, client: headers["cf-connecting-ip"] }, "request");
    const upstream = http.request(
      { host: inner.hostname, port: inner.port, method: req.method, path: req.url, headers, agent },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, upRes.headers);
        upRes.pipe(res);
      },
    );
    upstream.on("error", (err) => {
      options.logger?.error({ err: err.message }, "worker runtime did not answer");
      if (!res.headersSent) res.writeHead(503, { "content-type": "application/json" });
      res.end(JSON.stringify({ code: "unavailable", message: "discovery runtime is not answering; retry shortly" }));
    });
    req.pipe(upstream);
  });
  front.keepAliveTimeout = 65_000;
  front.listen(options.port, host);
  await once(front, "listening");
  const port = (front.address() as AddressInfo).port;
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      front.closeAllConnections();
      await new Promise<void>((done) => front.close(() => done()));
      agent.destroy();
      await mf.dispose();
    })());
  return { url: `http://${urlHost}:${port}`, port, close, [Symbol.asyncDispose]: close };
}
