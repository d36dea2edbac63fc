// Serves DiscoveryService through @connectrpc/connect's own handlers, so the
// Connect, gRPC and gRPC-web protocols, JSON and binary, error bodies and
// codes all behave exactly as a generic client expects.
import { fromBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, createContextValues } from "@connectrpc/connect";
import { universalServerRequestFromFetch, universalServerResponseToFetch } from "@connectrpc/connect/protocol";
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
    const err = new ConnectError(`${path} is not a method of ${DiscoveryService.typeName}`, Code.Unimplemented);
    return errorResponse(err);
  }
  try {
    const body = request.method === "POST" ? await readBoundedBody(request) : undefined;
    checkBinaryBody(path, request.headers.get("content-type"), body);
    const bounded = new Request(request.url, { method: request.method, headers: request.headers, body });
    const ureq = universalServerRequestFromFetch(bounded, {});
    ureq.contextValues = createContextValues().set(callContextKey, { env, clientIp: clientIp(request) });
    return universalServerResponseToFetch(await handler(ureq));
  } catch (err) {
    return errorResponse(toConnectError(err));
  }
}
