// The SDK's Connect server on localhost. Every call, health and info
// included, needs the token from the announcement file: the caller is
// checked, and the declared size, before a byte of the body is read.
// Only the Connect protocol (the agent's) is served; malformed bodies are
// answered invalid_argument, never internal.
import { timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, createContextValues, type ServiceImpl } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import { createAsyncIterable, type UniversalHandler } from "@connectrpc/connect/protocol";
import { universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { FeatureFlagControlService } from "@coral/proto/gen/coral/control/v1/flags_pb";
import { RollbackControlService } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { CoralAppService } from "@coral/proto/gen/coral/sdk/v1/sdk_pb";
import { sdkTokenHeader } from "./announce.ts";

export interface SdkServerHandlers {
  app: ServiceImpl<typeof CoralAppService>;
  flags: ServiceImpl<typeof FeatureFlagControlService>;
  rollback: ServiceImpl<typeof RollbackControlService>;
}

/** A flag set of thousands of flags fits many times over. */
export const sdkMaxBodyBytes = 1024 * 1024;

export interface SdkServer {
  port: number;
  close(): Promise<void>;
}

function sendError(res: http.ServerResponse, err: ConnectError): void {
  if (res.headersSent) return void res.destroy();
  // The body may be left unread: close the connection rather than drain it.
  res.writeHead(codeToHttpStatus(err.code), { "content-type": "application/json", connection: "close" });
  res.end(JSON.stringify({ code: codeToString(err.code), message: err.rawMessage }));
}

/** Reads the body, refusing more than `max` bytes without buffering them. */
async function readBody(req: http.IncomingMessage, max: number): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > max) throw new ConnectError(`request body is more than ${max} bytes; the limit is ${max} bytes`, Code.InvalidArgument);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** The request's URL; "//x" is a path here, not a host. */
function requestUrl(target = "/"): URL {
  try {
    return new URL(`http://127.0.0.1${target.startsWith("/") ? target : `/${target}`}`);
  } catch {
    throw new ConnectError("the request target is not a path", Code.InvalidArgument);
  }
}

function webHeaders(req: http.IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

export async function startSdkServer(handlers: SdkServerHandlers, options: { host: string; port: number; token: string }): Promise<SdkServer> {
  const expected = Buffer.from(options.token);
  const router = createConnectRouter({ readMaxBytes: sdkMaxBodyBytes, grpc: false, grpcWeb: false, jsonOptions: { ignoreUnknownFields: false } })
    .service(CoralAppService, handlers.app)
    .service(FeatureFlagControlService, handlers.flags)
    .service(RollbackControlService, handlers.rollback);
  const routes = new Map<string, { handler: UniversalHandler; input: DescMessage }>(
    router.handlers.map((h) => [h.requestPath, { handler: h, input: h.method.input }]),
  );

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse) => {
    const given = Buffer.from(String(req.headers[sdkTokenHeader] ?? ""));
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new ConnectError(`missing or wrong ${sdkTokenHeader}: the token is in the SDK's announcement file`, Code.Unauthenticated);
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > sdkMaxBodyBytes)
      throw new ConnectError(`request body is ${declared} bytes; the limit is ${sdkMaxBodyBytes} bytes`, Code.InvalidArgument);
    const url = requestUrl(req.url);
    const route = routes.get(url.pathname);
    if (!route) throw new ConnectError(`${url.pathname} is not a method of the Coral SDK`, Code.NotFound);
    if (req.method !== "POST") throw new ConnectError(`${req.method} ${url.pathname}: the Coral SDK answers POST only`, Code.InvalidArgument);
    const type = req.headers["content-type"]?.split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json" && type !== "application/proto")
      throw new ConnectError(`content-type ${JSON.stringify(type ?? "")}: send application/json or application/proto (Connect unary)`, Code.InvalidArgument);
    const body = await readBody(req, sdkMaxBodyBytes);
    // connect-es calls an unparseable binary body internal; it is the caller's mistake.
    if (type === "application/proto") {
      try {
        fromBinary(route.input, body);
      } catch {
        throw new ConnectError(`body: is not a valid ${route.input.typeName} in protobuf binary`, Code.InvalidArgument);
      }
    }
    const abort = new AbortController();
    res.once("close", () => abort.abort());
    const answer = await route.handler({
      httpVersion: req.httpVersion,
      method: req.method ?? "POST",
      url: url.toString(),
      header: webHeaders(req),
      body: createAsyncIterable([body]),
      signal: abort.signal,
      contextValues: createContextValues(),
    });
    await universalResponseToNodeResponse(answer, res);
  };

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => sendError(res, err instanceof ConnectError ? err : new ConnectError("internal error in the Coral SDK", Code.Internal)));
  });
  server.listen(options.port, options.host);
  await Promise.race([
    once(server, "listening"),
    once(server, "error").then(([err]) => {
      throw err;
    }),
  ]);
  // The app's own lifetime decides; the SDK never keeps it running.
  server.unref();
  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
