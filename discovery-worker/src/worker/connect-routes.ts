// Serves DiscoveryService through @connectrpc/connect's own handlers, so the
// Connect, gRPC and gRPC-web protocols, JSON and binary, error bodies and
// codes all behave exactly as a generic client expects.
import { fromBinary, fromJsonString, toBinary, toJsonString, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, createContextValues } from "@connectrpc/connect";
import { createAsyncIterable, type UniversalServerRequest, type UniversalServerResponse } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import { DiscoveryService, discoveryPb as pb, limits } from "@coral/proto";
import { clientIp, errorResponse, readBoundedBody, toConnectError } from "./http.ts";
import { refreshedHeader as refreshedHeaderName } from "./answer-expiry.ts";
import { isPlainUnary } from "./plain-unary.ts";
import type { Registrar } from "./registry-batch.ts";
import { callContextKey, discoveryOps, discoveryService, type CallContext } from "./service.ts";

const jsonOptions = { ignoreUnknownFields: false };
const router = createConnectRouter({
  readMaxBytes: limits.maxBodyBytes,
  jsonOptions,
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

/** `register`: how registrations reach their mesh's object (a batch's, see registration-batch.ts); default alone. */
export async function serveConnect(request: Request, env: DiscoveryEnv, register?: Registrar): Promise<Response> {
  const path = new URL(request.url).pathname;
  const registration = registrations.get(path);
  if (registration && isPlainUnary(request.method, (name) => request.headers.get(name))) return serveRegistration(registration, request, env, register);
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

interface RegistrationMethod<I extends DescMessage, O extends DescMessage> {
  input: I;
  output: O;
  run(call: CallContext, req: MessageShape<I>, responseHeaders: Headers): Promise<MessageShape<O>>;
}

function registrationMethod<I extends DescMessage, O extends DescMessage>(method: RegistrationMethod<I, O>): RegistrationMethod<DescMessage, DescMessage> {
  return method as unknown as RegistrationMethod<DescMessage, DescMessage>;
}

/**
 * Registrations are most of discovery's writes (every colony and agent
 * refreshes every minute), and connect-es's generic unary handler (a handler
 * context with its abort signal and header objects, async iterables, a
 * trailer mux) cost about as much worker CPU as the registration itself. A
 * plain Connect unary registration (POST, JSON or binary, uncompressed, no
 * timeout) is answered here instead, with connect-es's own parsing,
 * serialization, content types and error format, so the answer is the one the
 * generic handler gives (tests/discovery/discovery.test.ts compares them).
 * Everything else takes the generic handler.
 */
const registrations = new Map([
  [
    `${connectPathPrefix}RegisterColony`,
    registrationMethod({ input: pb.RegisterColonyRequestSchema, output: pb.RegisterColonyResponseSchema, run: discoveryOps.registerColony }),
  ],
  [
    `${connectPathPrefix}RegisterAgent`,
    registrationMethod({ input: pb.RegisterAgentRequestSchema, output: pb.RegisterAgentResponseSchema, run: discoveryOps.registerAgent }),
  ],
]);

async function serveRegistration(
  method: RegistrationMethod<DescMessage, DescMessage>,
  request: Request,
  env: DiscoveryEnv,
  register: Registrar | undefined,
): Promise<Response> {
  const binary = request.headers.get("content-type")!.toLowerCase() === contentTypeUnaryProto;
  const headers = new Headers({ "content-type": binary ? contentTypeUnaryProto : contentTypeUnaryJson });
  let status = 200;
  let body: Uint8Array;
  try {
    const bytes = await readBoundedBody(request);
    let input: MessageShape<DescMessage>;
    try {
      input = binary ? fromBinary(method.input, bytes) : fromJsonString(method.input, new TextDecoder().decode(bytes), jsonOptions);
    } catch (err) {
      throw binary
        ? new ConnectError(`body: is not a valid ${method.input.typeName} in protobuf binary`, Code.InvalidArgument)
        : ConnectError.from(err, Code.InvalidArgument);
    }
    const output = await method.run({ env, clientIp: clientIp(request), register }, input, headers);
    body = binary ? toBinary(method.output, output) : new TextEncoder().encode(toJsonString(method.output, output));
  } catch (err) {
    const error = toConnectError(err);
    status = codeToHttpStatus(error.code);
    headers.set("content-type", contentTypeUnaryJson);
    headers.delete(refreshedHeaderName);
    body = errorToJsonBytes(error, {});
  }
  headers.set("content-length", String(body.byteLength));
  return new Response(body, { status, headers });
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
