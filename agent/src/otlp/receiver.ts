// The agent's OTLP endpoints, on loopback by default: OTLP/HTTP on 4318
// (POST /v1/traces, /v1/metrics, /v1/logs; protobuf or JSON; gzip) and
// OTLP/gRPC on 4317 (the collector services, gzip accepted). Sizes are
// capped before and after decompression; a body that does not decode is
// answered 400 (HTTP) or invalid_argument (gRPC) with what was wrong,
// counted, and nothing else happens. Decoded requests go to `sink`, with
// the pid of the process that sent them when `senderPid` finds it (looked
// up once per connection: exporters keep theirs open).
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttp2Server, type Http2Server, type Http2ServerRequest } from "node:http2";
import type { AddressInfo } from "node:net";
import { gunzip } from "node:zlib";
import { promisify } from "node:util";
import { create, toBinary, toJsonString, type DescMessage } from "@bufbuild/protobuf";
import { createContextKey, createContextValues, type ConnectRouter, type HandlerContext } from "@connectrpc/connect";
import { compressionGzip, connectNodeAdapter } from "@connectrpc/connect-node";
import { ExportLogsServiceResponseSchema, LogsService } from "@coral/proto/gen/opentelemetry/proto/collector/logs/v1/logs_service_pb";
import { ExportMetricsServiceResponseSchema, MetricsService } from "@coral/proto/gen/opentelemetry/proto/collector/metrics/v1/metrics_service_pb";
import { ExportTraceServiceResponseSchema, TraceService } from "@coral/proto/gen/opentelemetry/proto/collector/trace/v1/trace_service_pb";
import { OtlpDecodeError, decodeOtlp, type OtlpRequest, type OtlpSignal } from "./decode.ts";
import type { OtlpPeer } from "./sender.ts";

const gunzipAsync = promisify(gunzip);

/** `senderPid`: the process that sent the request, when the receiver found it (loopback only). */
export interface OtlpSink {
  traces(req: OtlpRequest<"traces">, via: "http" | "grpc", senderPid?: number): void | Promise<void>;
  metrics(req: OtlpRequest<"metrics">, via: "http" | "grpc", senderPid?: number): void | Promise<void>;
  logs(req: OtlpRequest<"logs">, via: "http" | "grpc", senderPid?: number): void | Promise<void>;
}

export interface OtlpReceiverOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** OTLP/HTTP port (default 4318; 0 = any free port; null = off). */
  httpPort?: number | null;
  /** OTLP/gRPC port (default 4317; 0 = any free port; null = off). */
  grpcPort?: number | null;
  /** Largest request body, compressed or not (default 16 MiB). */
  maxBodyBytes?: number;
  sink: OtlpSink;
  /** The pid of the process at the other end of a connection (./sender.ts SenderPids.pidOf); without it none is looked for. */
  senderPid?: (peer: OtlpPeer) => Promise<number | undefined>;
}

export interface OtlpReceiverStats {
  requests: Record<OtlpSignal, number>;
  /** Requests refused: undecodable, too large, wrong content type. */
  rejected: number;
  lastRejection?: string;
}

const responseSchemas: Record<OtlpSignal, DescMessage> = {
  traces: ExportTraceServiceResponseSchema,
  metrics: ExportMetricsServiceResponseSchema,
  logs: ExportLogsServiceResponseSchema,
};
const senderKey = createContextKey<Promise<number | undefined> | undefined>(undefined);
const paths: Record<string, OtlpSignal> = { "/v1/traces": "traces", "/v1/metrics": "metrics", "/v1/logs": "logs" };

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class OtlpReceiver {
  readonly #opts: Required<Omit<OtlpReceiverOptions, "httpPort" | "grpcPort" | "senderPid">> & Pick<OtlpReceiverOptions, "senderPid"> & { httpPort: number | null; grpcPort: number | null };
  /** Per connection (HTTP/1 socket, HTTP/2 session): its sender's pid, looked up once. */
  readonly #senders = new WeakMap<object, Promise<number | undefined>>();
  #http: Server | undefined;
  #grpc: Http2Server | undefined;
  readonly #stats: OtlpReceiverStats = { requests: { traces: 0, metrics: 0, logs: 0 }, rejected: 0 };

  constructor(options: OtlpReceiverOptions) {
    this.#opts = {
      host: options.host ?? "127.0.0.1",
      httpPort: options.httpPort === undefined ? 4318 : options.httpPort,
      grpcPort: options.grpcPort === undefined ? 4317 : options.grpcPort,
      maxBodyBytes: options.maxBodyBytes ?? 16 * 1024 * 1024,
      sink: options.sink,
      senderPid: options.senderPid,
    };
  }

  stats(): OtlpReceiverStats {
    return { ...this.#stats, requests: { ...this.#stats.requests } };
  }

  /** Where each endpoint listens (after start). */
  get httpPort(): number | undefined {
    return (this.#http?.address() as AddressInfo | null)?.port;
  }
  get grpcPort(): number | undefined {
    return (this.#grpc?.address() as AddressInfo | null)?.port;
  }

  async start(): Promise<void> {
    const { host, httpPort, grpcPort } = this.#opts;
    if (httpPort !== null) {
      const server = createHttpServer((req, res) => void this.#serveHttp(req, res));
      await listen(server, httpPort, host);
      this.#http = server;
    }
    if (grpcPort !== null) {
      const server = createHttp2Server(
        connectNodeAdapter({
          routes: (r) => this.#routes(r),
          contextValues: (req) => createContextValues().set(senderKey, this.#senderOf(req)),
          grpc: true,
          connect: false,
          grpcWeb: false,
          acceptCompression: [compressionGzip],
          readMaxBytes: this.#opts.maxBodyBytes,
        }),
      );
      try {
        await listen(server, grpcPort, host);
      } catch (err) {
        await this.stop();
        throw err;
      }
      this.#grpc = server;
    }
  }

  async stop(): Promise<void> {
    const close = (s: Server | Http2Server | undefined) => new Promise<void>((resolve) => (s ? s.close(() => resolve()) : resolve()));
    this.#http?.closeAllConnections();
    await Promise.all([close(this.#http), close(this.#grpc)]);
    this.#http = this.#grpc = undefined;
  }

  #reject(why: string): void {
    this.#stats.rejected++;
    this.#stats.lastRejection = why;
  }

  /** The sender's pid of the request's connection: looked up at its first request, then the same promise. */
  #senderOf(req: IncomingMessage | Http2ServerRequest): Promise<number | undefined> | undefined {
    const lookup = this.#opts.senderPid;
    if (!lookup) return undefined;
    const socket = req.socket;
    const key: object = ("stream" in req ? req.stream.session : undefined) ?? socket;
    let pid = this.#senders.get(key);
    if (!pid) {
      // Never rejects: a request refused before its handler runs never awaits it.
      pid = lookup({ remoteAddress: socket.remoteAddress, remotePort: socket.remotePort, localAddress: socket.localAddress, localPort: socket.localPort }).catch(() => undefined);
      this.#senders.set(key, pid);
    }
    return pid;
  }

  #routes(router: ConnectRouter): void {
    const handle = async <S extends OtlpSignal>(signal: S, req: OtlpRequest<S>, ctx: HandlerContext) => {
      this.#stats.requests[signal]++;
      const pid = await ctx.values.get(senderKey);
      await (this.#opts.sink[signal] as (r: OtlpRequest<S>, via: "grpc", pid?: number) => void | Promise<void>)(req, "grpc", pid);
      return {};
    };
    router.service(TraceService, { export: (req, ctx) => handle("traces", req, ctx) });
    router.service(MetricsService, { export: (req, ctx) => handle("metrics", req, ctx) });
    router.service(LogsService, { export: (req, ctx) => handle("logs", req, ctx) });
  }

  async #serveHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const signal = paths[(req.url ?? "").split("?", 1)[0]!];
    const json = /^application\/json\b/i.test(req.headers["content-type"] ?? "");
    // Looked up while the body is read (the sender waits for the answer, its socket still open).
    const sender = this.#senderOf(req);
    try {
      if (!signal) throw new HttpError(404, `no OTLP endpoint at ${String(req.url).slice(0, 100)}: POST /v1/traces, /v1/metrics or /v1/logs`);
      if (req.method !== "POST") throw new HttpError(405, `OTLP/HTTP takes POST, not ${req.method}`);
      if (!json && !/^application\/x-protobuf\b/i.test(req.headers["content-type"] ?? ""))
        throw new HttpError(415, `content-type must be application/x-protobuf or application/json (got ${String(req.headers["content-type"] ?? "none").slice(0, 60)})`);
      const encoding = (req.headers["content-encoding"] ?? "identity").toLowerCase();
      if (encoding !== "identity" && encoding !== "gzip") throw new HttpError(415, `content-encoding must be gzip or none (got ${encoding.slice(0, 40)})`);
      let body = await this.#readBody(req);
      if (encoding === "gzip") {
        try {
          body = await gunzipAsync(body, { maxOutputLength: this.#opts.maxBodyBytes });
        } catch (err) {
          const tooBig = (err as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE" || /Cannot create a Buffer larger|maxOutputLength/i.test(String(err));
          throw new HttpError(tooBig ? 413 : 400, tooBig ? `the body unzips to more than ${this.#opts.maxBodyBytes} bytes` : `the gzip body does not unzip: ${(err as Error).message}`);
        }
      }
      const decoded = decodeOtlp(signal, body, json);
      this.#stats.requests[signal]++;
      await (this.#opts.sink[signal] as (r: typeof decoded, via: "http", pid?: number) => void | Promise<void>)(decoded, "http", await sender);
      const schema = responseSchemas[signal];
      const empty = create(schema);
      res.writeHead(200, { "content-type": json ? "application/json" : "application/x-protobuf" });
      res.end(json ? toJsonString(schema, empty) : toBinary(schema, empty));
    } catch (err) {
      const status = err instanceof HttpError ? err.status : err instanceof OtlpDecodeError ? 400 : 500;
      const message = err instanceof Error ? err.message : String(err);
      this.#reject(message);
      // The body may not have been read: close rather than read a huge one.
      res.writeHead(status, { "content-type": "application/json", connection: "close" });
      res.end(JSON.stringify({ code: status === 500 ? 13 : 3, message }));
    }
  }

  /** The body, refused past the cap (by Content-Length before reading, and while reading). */
  async #readBody(req: IncomingMessage): Promise<Buffer> {
    const max = this.#opts.maxBodyBytes;
    const declared = Number(req.headers["content-length"] ?? NaN);
    if (declared > max) throw new HttpError(413, `the body is ${declared} bytes, more than ${max}`);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > max) throw new HttpError(413, `the body is more than ${max} bytes`);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }
}

function listen(server: Server | Http2Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
}

