// The API port's front door: what a request goes through before Connect sees
// it. The route, the declared size and the caller are checked from the head
// alone, so an oversized request is answered without a byte of its body
// being read, and a refused caller's body (within the cap) is only thrown
// away. The body is then read under the same cap and must decode as the
// method's input: connect-es answers an unparseable binary message with
// `internal`, but it is the caller's mistake (invalid_argument).
import type { IncomingMessage, ServerResponse } from "node:http";
import { fromBinary, type DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { createAsyncIterable, type Compression, type UniversalHandler } from "@connectrpc/connect/protocol";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import { universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { callerKey, peerAddressKey, type CallHead, type Caller } from "../auth/index.ts";
import { relayedForHeader } from "@coral/proto";

export interface IntakeOptions {
  /** The Connect router's handlers (Connect protocol only). */
  handlers: readonly UniversalHandler[];
  /** The largest body a method of `service` may send, compressed or not. */
  maxBodyBytes(service: string): number;
  /** The caller of a token service (throws a ConnectError to refuse); undefined for the others. */
  authenticate(head: CallHead): Promise<Caller | undefined>;
  /** Request compressions the colony accepts (the router's). */
  compressions: readonly Compression[];
  /** Told about failures that are the colony's, not the caller's. */
  onInternalError?(err: unknown, head: { path: string }): void;
}

export type ApiRequestListener = (req: IncomingMessage, res: ServerResponse, expectsContinue?: boolean) => void;

interface Route {
  handler: UniversalHandler;
  service: string;
  method: string;
  input: DescMessage;
  streaming: boolean;
}

/** A Node request listener for the colony's Connect services. */
export function apiRequestListener(options: IntakeOptions): ApiRequestListener {
  const routes = new Map<string, Route>(
    options.handlers.map((h) => [
      h.requestPath,
      { handler: h, service: h.service.typeName, method: h.method.name, input: h.method.input, streaming: h.method.methodKind !== "unary" },
    ]),
  );
  return (req, res, expectsContinue = false) => {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    const route = routes.get(path);
    handle(options, route, path, req, res, expectsContinue).catch((err: unknown) => {
      if (!(err instanceof ConnectError)) options.onInternalError?.(err, { path });
      const answer = err instanceof ConnectError ? err : new ConnectError("internal error", Code.Internal);
      sendError(req, res, answer, route?.streaming ?? false);
    });
  };
}

async function handle(options: IntakeOptions, route: Route | undefined, path: string, req: IncomingMessage, res: ServerResponse, expectsContinue: boolean) {
  // Like Connect: 404 for a path that is no method, 405 for a method that is not POST.
  if (!route) return sendHttp(res, 404, { code: "unimplemented", message: `${path.slice(0, 200)} is not a method of this colony's API` });
  if (req.method !== "POST") return sendHttp(res, 405, { code: "unimplemented", message: `${route.method} takes POST requests` }, { allow: "POST" });
  const max = options.maxBodyBytes(route.service);
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > max)
    throw new ConnectError(`request body is ${declared} bytes; ${route.method} takes at most ${max} bytes`, Code.ResourceExhausted);
  const peer = req.socket.remoteAddress ?? "";
  const caller = await authenticateHead(options, req, {
    service: route.service,
    method: route.method,
    authorization: req.headers.authorization ?? null,
    peer,
    relayedFor: firstHeader(req.headers[relayedForHeader]),
    cookie: req.headers.cookie ?? null,
    csrf: firstHeader(req.headers["x-coral-csrf"]),
    origin: req.headers.origin ?? null,
    host: req.headers.host ?? null,
  }, max, expectsContinue);
  // `Expect: 100-continue`: the client sends its body only now that head checks passed.
  if (expectsContinue) res.writeContinue();
  const header = webHeaders(req);
  const body = await prepareBody(await readBody(req, max, route.method), header, route, options.compressions, max);

  const abort = new AbortController();
  res.once("close", () => abort.abort());
  const contextValues = createContextValues().set(peerAddressKey, peer);
  if (caller) contextValues.set(callerKey, caller);
  const answer = await route.handler({
    httpVersion: req.httpVersion,
    method: "POST",
    // A fixed origin: Connect reads only the path and query, and a Host header is the caller's to garble.
    url: new URL(req.url ?? "/", "http://colony").toString(),
    header,
    body: createAsyncIterable([body]),
    signal: abort.signal,
    contextValues,
  });
  await universalResponseToNodeResponse(answer, res).catch((err: unknown) => {
    // The caller went away mid-response: nothing left to answer.
    if (ConnectError.from(err).code !== Code.Aborted) throw err;
  });
}

/**
 * The caller, from the head. A refusal is answered after the body (within
 * the cap it declared, or the method's) has arrived and been thrown away, for
 * at most a second: the answer closes the connection, and a client still
 * writing its small body then saw EPIPE instead of why it was refused.
 */
async function authenticateHead(options: IntakeOptions, req: IncomingMessage, head: CallHead, max: number, expectsContinue: boolean): Promise<Caller | undefined> {
  try {
    return await options.authenticate(head);
  } catch (err) {
    // With `Expect: 100-continue` the client sends nothing until told to.
    if (!expectsContinue) await discardBody(req, max, 1000);
    throw err;
  }
}

function discardBody(req: IncomingMessage, max: number, ms: number): Promise<void> {
  return new Promise((resolve) => {
    let total = 0;
    const done = () => {
      clearTimeout(timer);
      req.off("data", onData).off("end", done).off("error", done).off("close", done);
      req.pause();
      resolve();
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > max) done();
    };
    const timer = setTimeout(done, ms);
    if (req.readableEnded || req.destroyed) return done();
    req.on("data", onData).once("end", done).once("error", done).once("close", done);
  });
}

/**
 * Reads the whole body, refusing more than `max` bytes (chunked ones
 * included) as they arrive. Events, not `for await`: leaving that loop early
 * destroys the socket, and the refusal could not be sent.
 */
function readBody(req: IncomingMessage, max: number, method: string): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const stop = (err?: ConnectError) => {
      req.off("data", onData).off("end", onEnd).off("error", onGone).off("close", onGone);
      if (!err) return resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
      req.pause(); // the rest stays unread; the answer closes the connection
      reject(err);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > max) return stop(new ConnectError(`request body is more than ${max} bytes; ${method} takes at most ${max} bytes`, Code.ResourceExhausted));
      chunks.push(chunk);
    };
    const onEnd = () => stop();
    // The caller went away mid-body: not the colony's failure.
    const onGone = () => stop(new ConnectError("the request body was cut off", Code.Aborted));
    if (req.destroyed) return onGone(); // gone while its head was checked
    req.on("data", onData).once("end", onEnd).once("error", onGone).once("close", onGone);
  });
}

function firstHeader(value: string | string[] | undefined): string | null {
  return (Array.isArray(value) ? value[0] : value) ?? null;
}

function mediaType(header: Headers): string {
  return (header.get("content-type") ?? "").split(";", 1)[0]!.trim().toLowerCase();
}

/**
 * Checks that a binary body decodes as the method's input, decompressing a
 * unary body here (under the cap) so Connect gets plain bytes. JSON bodies
 * are left to Connect, which answers invalid_argument for them itself.
 */
async function prepareBody(body: Uint8Array, header: Headers, route: Route, compressions: readonly Compression[], max: number): Promise<Uint8Array> {
  const type = mediaType(header);
  if (type === "application/proto" && !route.streaming) {
    const encoding = header.get("content-encoding")?.toLowerCase();
    let plain = body;
    if (encoding && encoding !== "identity") {
      const compression = compressions.find((c) => c.name === encoding);
      if (!compression) return body; // Connect answers unimplemented, naming what it accepts
      plain = await decompress(compression, body, max);
      header.delete("content-encoding");
    }
    checkDecodes(route.input, plain);
    return plain;
  }
  if (type === "application/connect+proto" && route.streaming) {
    const encoding = header.get("connect-content-encoding")?.toLowerCase();
    const compression = encoding && encoding !== "identity" ? compressions.find((c) => c.name === encoding) : undefined;
    for (let offset = 0; offset < body.byteLength; ) {
      if (body.byteLength - offset < 5) throw new ConnectError("body: incomplete envelope (5 header bytes expected)", Code.InvalidArgument);
      const flags = body[offset]!;
      const length = new DataView(body.buffer, body.byteOffset + offset + 1, 4).getUint32(0);
      const start = offset + 5;
      if (start + length > body.byteLength)
        throw new ConnectError(`body: an envelope promises ${length} bytes but ${body.byteLength - start} follow`, Code.InvalidArgument);
      let message = body.subarray(start, start + length);
      if (flags & 0b1) {
        if (!compression) throw new ConnectError("body: a compressed envelope without a connect-content-encoding the colony accepts (gzip, br)", Code.InvalidArgument);
        message = await decompress(compression, message, max);
      }
      if (!(flags & 0b10)) checkDecodes(route.input, message);
      offset = start + length;
    }
  }
  return body;
}

async function decompress(compression: Compression, bytes: Uint8Array, max: number): Promise<Uint8Array> {
  try {
    return await compression.decompress(bytes, max);
  } catch (err) {
    const ce = ConnectError.from(err);
    if (ce.code === Code.ResourceExhausted) throw new ConnectError(`request body is more than ${max} bytes once decompressed`, Code.ResourceExhausted);
    throw new ConnectError(`body: cannot be decompressed as ${compression.name}`, Code.InvalidArgument);
  }
}

function checkDecodes(input: DescMessage, bytes: Uint8Array): void {
  try {
    fromBinary(input, bytes);
  } catch (err) {
    throw new ConnectError(`body: is not a valid ${input.typeName} in protobuf binary (${(err as Error).message})`, Code.InvalidArgument);
  }
}

function webHeaders(req: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.append(name, v);
  }
  return headers;
}

/**
 * Answers with a Connect error and closes the connection, leaving an unread
 * body unread. Streaming methods get it the way Connect streams end (HTTP
 * 200 and an end-stream envelope), so clients see the code and message.
 */
function sendError(req: IncomingMessage, res: ServerResponse, err: ConnectError, streaming: boolean): void {
  if (res.destroyed || !req.socket || req.socket.destroyed) return; // nobody left to tell
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const error = { code: codeToString(err.code), message: err.rawMessage };
  const type = (req.headers["content-type"] ?? "").split(";", 1)[0]!.trim().toLowerCase();
  if (streaming && type.startsWith("application/connect+")) {
    const json = Buffer.from(JSON.stringify({ error }));
    const envelope = Buffer.alloc(5 + json.byteLength);
    envelope[0] = 0b10;
    envelope.writeUInt32BE(json.byteLength, 1);
    json.copy(envelope, 5);
    res.writeHead(200, { "content-type": type, "content-length": envelope.byteLength, connection: "close" });
    res.end(envelope);
    return;
  }
  sendHttp(res, codeToHttpStatus(err.code), error);
}

function sendHttp(res: ServerResponse, status: number, error: { code: string; message: string }, extra: Record<string, string> = {}): void {
  const body = JSON.stringify(error);
  res.writeHead(status, { ...extra, "content-type": "application/json", "content-length": Buffer.byteLength(body), connection: "close" });
  res.end(body);
}
