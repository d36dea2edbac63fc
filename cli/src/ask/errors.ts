// Anthropic API failures as messages a person can act on. The SDK has already
// retried what is worth retrying (429 after retry-after, 5xx, connection
// errors: max_retries times) by the time one of these reaches us.
import {
  APIConnectionError,
  APIConnectionTimeoutError,
  APIError,
  APIUserAbortError,
  AuthenticationError,
  BadRequestError,
  NotFoundError,
  PermissionDeniedError,
  RateLimitError,
} from "@anthropic-ai/sdk";

/** A failure of `coral ask` with a message meant for the user; the CLI exits 1. */
export class AskError extends Error {
  override name = "AskError";
  constructor(
    message: string,
    readonly kind: "auth" | "rate_limit" | "server" | "network" | "request" | "aborted" | "config" | "other",
    readonly status?: number,
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** Seconds to wait from retry-after-ms / retry-after (seconds or an HTTP date), else the rate limit reset headers. */
export function retryAfterSeconds(headers: Headers | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const ms = Number(headers.get("retry-after-ms"));
  if (headers.get("retry-after-ms") && Number.isFinite(ms) && ms >= 0) return Math.ceil(ms / 1000);
  const ra = headers.get("retry-after");
  if (ra) {
    const s = Number(ra);
    if (Number.isFinite(s) && s >= 0) return Math.ceil(s);
    const at = Date.parse(ra);
    if (!Number.isNaN(at)) return Math.max(0, Math.ceil((at - now) / 1000));
  }
  // anthropic-ratelimit-*-reset: RFC 3339 times when the limit replenishes.
  let latest: number | undefined;
  headers.forEach((value, name) => {
    if (/^anthropic-ratelimit-.*-reset$/.test(name)) {
      const at = Date.parse(value);
      if (!Number.isNaN(at)) latest = Math.max(latest ?? 0, at);
    }
  });
  return latest === undefined ? undefined : Math.max(0, Math.ceil((latest - now) / 1000));
}

function apiMessage(err: APIError): string {
  const body = err.error as { error?: { message?: unknown } } | undefined;
  const m = err.apiMessage ?? (typeof body?.error?.message === "string" ? body.error.message : undefined);
  return m ?? err.message;
}

function requestId(err: APIError): string {
  return err.requestID ? ` (request ${err.requestID})` : "";
}

export interface ExplainContext {
  baseURL: string;
  model: string;
  maxRetries: number;
}

export function explainAnthropicError(err: unknown, ctx: ExplainContext): AskError {
  if (err instanceof AskError) return err;
  if (err instanceof APIUserAbortError) return new AskError("cancelled", "aborted");
  if (err instanceof APIConnectionTimeoutError)
    return new AskError(`the Anthropic API at ${ctx.baseURL} did not answer in time; check your network and try again`, "network");
  if (err instanceof APIConnectionError) {
    const cause = err.cause instanceof Error ? ((err.cause as Error & { cause?: unknown }).cause ?? err.cause) : undefined;
    const detail = cause instanceof Error ? cause.message : err.message;
    return new AskError(
      `cannot reach the Anthropic API at ${ctx.baseURL} (${detail}); check your network, proxy or base URL (coral ask config --base-url)`,
      "network",
    );
  }
  if (err instanceof AuthenticationError)
    return new AskError("the Anthropic API key was refused: set it with coral ask config --api-key-stdin", "auth", 401);
  if (err instanceof RateLimitError) {
    const wait = retryAfterSeconds(err.headers);
    const retries = ctx.maxRetries > 0 ? ` (after ${ctx.maxRetries} ${ctx.maxRetries === 1 ? "retry" : "retries"}; more with --max-retries)` : "";
    return new AskError(
      `rate limited; retry in ${wait ?? 60} s${retries}: ${apiMessage(err)}`,
      "rate_limit",
      429,
      wait,
    );
  }
  if (err instanceof PermissionDeniedError)
    return new AskError(`the Anthropic API key may not do this (403): ${apiMessage(err)}${requestId(err)}`, "auth", 403);
  if (err instanceof NotFoundError)
    return new AskError(
      `the Anthropic API does not know model "${ctx.model}" (404): ${apiMessage(err)}; pick another with coral ask config --model`,
      "request",
      404,
    );
  if (err instanceof BadRequestError)
    return new AskError(`the Anthropic API rejected the request (400): ${apiMessage(err)}${requestId(err)}`, "request", 400);
  if (err instanceof APIError) {
    const status = err.status;
    const type = err.type ?? "";
    if (status === 529 || type === "overloaded_error")
      return new AskError(`the Anthropic API is overloaded${status ? ` (${status})` : ""}; try again in a minute${requestId(err)}`, "server", status);
    if (status !== undefined && status >= 500)
      return new AskError(
        `the Anthropic API failed (${status}: ${apiMessage(err)}); the problem is on Anthropic's side, try again later${requestId(err)}`,
        "server",
        status,
      );
    if (status === undefined)
      // An error event in the middle of a stream.
      return new AskError(`the Anthropic API stopped the answer with an error: ${type ? `${type}: ` : ""}${apiMessage(err)}`, "server");
    return new AskError(`the Anthropic API answered ${status}: ${apiMessage(err)}${requestId(err)}`, "request", status);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new AskError(message, "other");
}
