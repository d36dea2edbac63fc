// A plain Connect unary request: POST, JSON or binary, uncompressed, no
// timeout. The worker answers plain registrations on its own path
// (connect-routes.ts) and the self-hosted front batches them
// (../self-hosted/registration-batcher.ts): both decide with this one test.
// Runtime-neutral: each side hands in its own header lookup.
import { contentTypeUnaryRegExp } from "@connectrpc/connect/protocol-connect";

/** `header`: the request header's value, null or undefined when absent. */
export function isPlainUnary(method: string, header: (name: string) => string | null | undefined): boolean {
  const encoding = header("content-encoding") ?? null;
  return (
    method === "POST" &&
    contentTypeUnaryRegExp.test(header("content-type") ?? "") &&
    (encoding === null || encoding === "identity") &&
    (header("connect-timeout-ms") ?? null) === null
  );
}
