// The read commands' client: unary calls in the Connect protocol (binary
// messages) over node:http, or node:https for an https:// colony, and nothing
// else. The CLI's general client (@connectrpc/connect-node) loads Node's fetch
// implementation (undici, for its Headers), http2, https and zlib before its
// first call: about a third of what `coral status` spent starting up, for a
// command that makes one call and exits. Failures are the same ConnectErrors:
// the code and message of the colony's Connect error body, Unavailable when
// the colony cannot be reached (explainError turns them into advice).
// An answer has a deadline and a size cap: a colony (or something posing as
// one) that stalls or sends without end cannot hang the CLI or fill its memory.
import { create, fromBinary, toBinary, type DescMethodUnary, type DescService, type MessageInitShape, type MessageShape } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeFromHttpStatus, errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import type { IncomingMessage, RequestOptions } from "node:http";
import type { ColonyTarget } from "./remote.ts";

/** The unary methods of a service, called with a request (no call options). */
export type UnaryClient<S extends DescService> = {
  [P in keyof S["method"]]: S["method"][P] extends DescMethodUnary<infer I, infer O> ? (request: MessageInitShape<I>) => Promise<MessageShape<O>> : never;
};

export interface ReadClientOptions {
  /** The whole call, connect to last byte (default 30 s). */
  timeoutMs?: number;
  /** The largest answer accepted (default 64 MiB). */
  maxResponseBytes?: number;
}

export const defaultReadTimeoutMs = 30_000;
export const defaultMaxResponseBytes = 64 * 1024 * 1024;

/** A client of `service`'s unary methods at the target, sending the target's token. */
export function unaryClient<S extends DescService>(service: S, target: ColonyTarget, options: ReadClientOptions = {}): UnaryClient<S> {
  const limits = { timeoutMs: options.timeoutMs ?? defaultReadTimeoutMs, maxBytes: options.maxResponseBytes ?? defaultMaxResponseBytes };
  const client: Record<string, unknown> = {};
  for (const method of service.methods) {
    if (method.methodKind === "unary") {
      const unary = method as DescMethodUnary;
      client[method.localName] = (request: MessageInitShape<typeof unary.input>) => call(target, unary, request, limits);
    } else {
      client[method.localName] = () => Promise.reject(new ConnectError(`${method.name} streams; the read client makes unary calls only`, Code.Unimplemented));
    }
  }
  return client as UnaryClient<S>;
}

interface Limits {
  timeoutMs: number;
  maxBytes: number;
}

async function call<M extends DescMethodUnary>(target: ColonyTarget, method: M, request: MessageInitShape<M["input"]>, limits: Limits): Promise<MessageShape<M["output"]>> {
  const url = new URL(`${target.url}/${method.parent.typeName}/${method.name}`);
  const body = toBinary(method.input, create(method.input, request));
  const headers: Record<string, string> = {
    "content-type": "application/proto",
    "connect-protocol-version": "1",
    "content-length": String(body.byteLength),
    // The colony gives up when the CLI does.
    "connect-timeout-ms": String(limits.timeoutMs),
  };
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  const res = await post(url, { method: "POST", headers, agent: false }, body, limits);
  const contentType = res.headers["content-type"] ?? "";
  if (res.status === 200 && /^application\/proto(;|$)/.test(contentType)) return fromBinary(method.output, res.body) as MessageShape<M["output"]>;
  const fallback = new ConnectError(`HTTP ${res.status}`, codeFromHttpStatus(res.status));
  if (/^application\/json(;|$)/.test(contentType)) throw errorFromJsonBytes(res.body, undefined, fallback);
  throw fallback;
}

interface Response {
  status: number;
  headers: IncomingMessage["headers"];
  body: Uint8Array;
}

async function post(url: URL, options: RequestOptions, body: Uint8Array, limits: Limits): Promise<Response> {
  // https (and the TLS stack) only for an https:// colony.
  const { request } = url.protocol === "https:" ? await import("node:https") : await import("node:http");
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: ConnectError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new ConnectError(`the colony at ${url.origin} did not answer within ${limits.timeoutMs / 1000}s; is it overloaded, or the address wrong?`, Code.DeadlineExceeded)),
      limits.timeoutMs,
    );
    const tooLarge = () =>
      new ConnectError(`the colony's answer is larger than ${limits.maxBytes / (1024 * 1024)} MiB; ask for less (e.g. --since, --limit)`, Code.ResourceExhausted);
    const req = request(url, options, (res) => {
      if (Number(res.headers["content-length"] ?? 0) > limits.maxBytes) return fail(tooLarge());
      const chunks: Buffer[] = [];
      let total = 0;
      res.on("data", (chunk: Buffer) => {
        total += chunk.byteLength;
        if (total > limits.maxBytes) return fail(tooLarge());
        chunks.push(chunk);
      });
      res.on("end", () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
      res.on("error", (err) => fail(transportError(err)));
    });
    req.on("error", (err) => fail(transportError(err)));
    req.end(body);
  });
}

/** Like connect-node: an unreachable colony is Unavailable, a dropped connection Aborted. */
function transportError(err: Error): ConnectError {
  const code = (err as NodeJS.ErrnoException).code ?? "";
  const connectCode = ["ECONNREFUSED", "ETIMEDOUT", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"].includes(code)
    ? Code.Unavailable
    : code === "ECONNRESET"
      ? Code.Aborted
      : Code.Internal;
  return new ConnectError(err.message, connectCode, undefined, undefined, err);
}
