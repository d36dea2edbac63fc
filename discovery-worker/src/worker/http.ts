// HTTP helpers shared by the Connect and REST routes: bounded body reads and
// errors in the Connect error format (`{"code": "...", "message": "..."}`).
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToHttpStatus, codeToString } from "@connectrpc/connect/protocol-connect";
import { limits } from "@coral/proto";

export function errorResponse(err: ConnectError): Response {
  return Response.json(
    { code: codeToString(err.code), message: err.rawMessage },
    { status: codeToHttpStatus(err.code), headers: { "content-type": "application/json" } },
  );
}

/** What a caller is told of an unexpected error: never internals; the log has them. */
export const internalErrorMessage = "internal error in discovery; see its log";

export function toConnectError(err: unknown): ConnectError {
  if (err instanceof ConnectError) return err;
  console.error("discovery: unexpected error", err);
  return new ConnectError(internalErrorMessage, Code.Internal);
}

/**
 * Bodies of requests made in the worker whose bytes are already in memory
 * (the parts of a registration batch): read from here rather than streamed
 * through the request again, which cost about as much as their route.
 */
export const bodiesInMemory = new WeakMap<Request, Uint8Array>();

/** Reads the body, refusing more than maxBodyBytes without buffering it all. */
export async function readBoundedBody(request: Request, max: number = limits.maxBodyBytes): Promise<Uint8Array> {
  const tooLarge = (n: number | string) =>
    new ConnectError(`request body is ${n} bytes; the limit is ${max} bytes`, Code.InvalidArgument);
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (declared > max) throw tooLarge(declared);
  const inMemory = bodiesInMemory.get(request);
  if (inMemory) {
    if (inMemory.byteLength > max) throw tooLarge(`more than ${max}`);
    return inMemory;
  }
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel();
      throw tooLarge(`more than ${max}`);
    }
    chunks.push(value);
  }
  if (chunks.length === 1) return chunks[0]!;
  const body = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    body.set(c, offset);
    offset += c.byteLength;
  }
  return body;
}

export function clientIp(request: Request): string {
  // Cloudflare sets CF-Connecting-IP; the self-hosted front sets it from the
  // socket and drops whatever the client sent.
  return request.headers.get("cf-connecting-ip") ?? "";
}
