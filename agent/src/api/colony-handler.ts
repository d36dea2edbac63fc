// Serves the agent's Connect services behind the colony guard: the Connect
// protocol only (no gRPC, no compression, so nothing expands past the cap),
// bodies read up to the cap (chunked ones too), and each parsed request
// checked against the body hash the colony signed. A binary body that is not
// the method's message answers invalid_argument (Connect itself says
// internal for those).
import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, createContextKey, createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { ColonyCallClaim } from "@coral/proto";
import { refuse } from "./colony-guard.ts";

/** SHA-256 (hex) of the request message the colony signed, set by the guard. */
const signedBodyKey = createContextKey("", { description: "signed body sha256" });

/**
 * Refuses a request whose parsed message is not the one the colony signed.
 * Unary and server-streaming calls (one request message each); a client
 * stream is refused.
 */
function signedBody(): Interceptor {
  return (next) => async (req) => {
    const check = (message: Parameters<typeof toBinary>[1]) => {
      const signed = req.contextValues.get(signedBodyKey);
      const actual = createHash("sha256").update(toBinary(req.method.input, message)).digest("hex");
      if (!signed || signed !== actual) throw new ConnectError("the request body does not match the colony's signature", Code.Unauthenticated);
    };
    if (!req.stream) {
      check(req.message);
      return next(req);
    }
    if (req.method.methodKind !== "server_streaming") throw new ConnectError("this agent serves unary and server-streaming calls only", Code.Unimplemented);
    const messages = [];
    for await (const m of req.message) messages.push(m);
    if (messages.length !== 1) throw new ConnectError(`one request message expected, got ${messages.length}`, Code.InvalidArgument);
    const [message] = messages;
    check(message!);
    return next({ ...req, message: (async function* () { yield message!; })() });
  };
}

/** Passes the body through, then fails the read (before Connect parses) if it is not a `schema`. */
async function* checkedProtobuf(body: AsyncIterable<Uint8Array>, schema: DescMessage): AsyncGenerator<Uint8Array> {
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) {
    chunks.push(chunk);
    yield chunk;
  }
  try {
    fromBinary(schema, Buffer.concat(chunks));
  } catch (err) {
    throw new ConnectError(`the request body is not a ${schema.typeName} in protobuf binary: ${err instanceof Error ? err.message : String(err)}`, Code.InvalidArgument);
  }
}

const binaryContentType = /^application\/proto$/i;

export function colonyCallHandler(options: { routes: (router: ConnectRouter) => void; maxBodyBytes: number }) {
  const router = createConnectRouter({
    connect: true,
    grpc: false,
    grpcWeb: false,
    acceptCompression: [],
    readMaxBytes: options.maxBodyBytes,
    interceptors: [signedBody()],
  });
  options.routes(router);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));

  return function colonyCall(req: IncomingMessage, res: ServerResponse, claim: ColonyCallClaim): void {
    const path = (req.url ?? "").split("?", 1)[0]!;
    const handler = handlers.get(path);
    if (!handler) return refuse(req, res, 404, "unimplemented", `this agent serves no ${path.slice(0, 200)}`);
    if (!req.headers.host) return refuse(req, res, 400, "invalid_argument", "the request has no Host header");
    // Nothing compressed is accepted (Connect would answer 501 for it): say so as the caller's mistake.
    const encoding = req.headers["content-encoding"] ?? req.headers["connect-content-encoding"];
    if (encoding && encoding !== "identity")
      return refuse(req, res, 415, "unimplemented", `this agent accepts uncompressed requests only (not content-encoding ${String(encoding).slice(0, 40)})`);
    const uReq = universalRequestFromNodeRequest(req, res, undefined, createContextValues().set(signedBodyKey, claim.bodySha256));
    const body = uReq.body;
    const checked =
      binaryContentType.test(req.headers["content-type"] ?? "") && body !== null && typeof body === "object" && Symbol.asyncIterator in body
        ? checkedProtobuf(body as AsyncIterable<Uint8Array>, handler.method.input)
        : body;
    handler({ ...uReq, body: checked })
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch(() => res.destroy());
  };
}
