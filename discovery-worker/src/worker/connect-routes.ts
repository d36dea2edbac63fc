// Serves DiscoveryService through @connectrpc/connect's own handlers, so the
// Connect, gRPC and gRPC-web protocols, JSON and binary, error bodies and
// codes all behave exactly as a generic client expects.
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, createContextValues } from "@connectrpc/connect";
import { createAsyncIterable, type UniversalServerRequest, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import { DiscoveryService, limits } from "@coral/proto";
import { clientIp, errorResponse, readBoundedBody, toConnectError } from "./http.ts";
import { callContextKey, discoveryService } from "./service.ts";

const router = createConnectRouter({
  readMaxBytes: limits.maxBodyBytes,
  jsonOptions: { ignoreUnknownFields: false },
}).service(DiscoveryService, discoveryService);

const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
const inputs = new Map(DiscoveryService.methods.map((m) => [`/${DiscoveryService.typeName}/${m.name}`, m.input]));

/**
 * connect-es reports an unparseable binary body as internal; to the caller it
 * is bad input, so check unary binary bodies first and say invalid_argument.
 */
function checkBinaryBody(path: string, contentType: string | null, body: Uint8Array | undefined): void {
  const input = inputs.get(path);
  if (!input || !body || contentType?.split(";")[0]?.trim() !== "application/proto") return;
  try {
    fromBinary(input, body);
  } catch {
    throw new ConnectError(`body: is not a valid ${input.typeName} in protobuf binary`, Code.InvalidArgument);
  }
}

export const connectPathPrefix = `/${DiscoveryService.typeName}/`;

export async function serveConnect(request: Request, env: DiscoveryEnv): Promise<Response> {
  const path = new URL(request.url).pathname;
  const handler = handlers.get(path);
  if (!handler) {
    // not_found (404) rather than unimplemented (501): a wrong path is the caller's mistake, not a server failure.
    const err = new ConnectError(`${path} is not a method of ${DiscoveryService.typeName}`, Code.NotFound);
    return errorResponse(err);
  }
  try {
    const body = request.method === "POST" ? await readBoundedBody(request) : undefined;
    checkBinaryBody(path, request.headers.get("content-type"), body);
    // The body is already in memory: hand it to connect-es as one chunk
    // instead of rebuilding a Request and streaming it back out, which cost
    // more CPU than the lookup itself.
    const ureq: UniversalServerRequest = {
      httpVersion: "",
      method: request.method,
      url: request.url,
      header: request.headers,
      body: createAsyncIterable(body ? [body] : []),
      signal: request.signal,
      contextValues: createContextValues().set(callContextKey, { env, clientIp: clientIp(request) }),
    };
    const answer = await handler(ureq);
    if (answer.status >= 400 && answer.body === undefined) return errorResponse(bareStatusError(answer.status, request));
    return await toFetchResponse(answer);
  } catch (err) {
    return errorResponse(toConnectError(err));
  }
}

/**
 * connect-es answers a wrong method or content type with a bare HTTP status
 * and no body; callers get the reason in the Connect error format instead.
 */
function bareStatusError(status: number, request: Request): ConnectError {
  const type = request.headers.get("content-type") ?? "none";
  if (status === 415)
    return new ConnectError(
      `content-type ${type} is not supported: send application/json or application/proto (Connect), or use gRPC or gRPC-web`,
      Code.InvalidArgument,
    );
  if (status === 405)
    return new ConnectError(`${request.method} is not allowed here: send POST (GET only with encoding and message for lookups)`, Code.InvalidArgument);
  return new ConnectError(`the request was refused (HTTP ${status})`, Code.InvalidArgument);
}

/** Unary answers are a single chunk; collect them rather than streaming. */
async function toFetchResponse(res: UniversalServerResponse): Promise<Response> {
  let body: Uint8Array | null = null;
  if (res.body !== undefined) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) chunks.push(chunk);
    body = chunks.length === 1 ? chunks[0]! : concat(chunks);
  }
  return new Response(body, { status: res.status, headers: res.header });
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
