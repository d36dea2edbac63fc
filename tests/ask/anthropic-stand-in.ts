// A STAND-IN for the Anthropic Messages API, for tests only: the real API is
// unreachable here. It is a local HTTP server that speaks the wire format the
// SDK expects (POST /v1/messages; streaming as server-sent events in the
// order the API sends them: message_start, ping, content_block_start /
// content_block_delta / content_block_stop per block, message_delta with
// stop_reason and usage, message_stop; errors as {"type":"error","error":
// {...}} with request-id and retry-after headers) and checks requests the way
// the API does (key and version headers, tool_use / tool_result pairing).
// What it answers is scripted by each test, and the script sees the request,
// so it can read the tool results it receives and echo numbers from them.
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface TextBlock {
  type: "text";
  text: string;
}
export interface ThinkingBlock {
  type: "thinking";
  thinking: string;
  signature: string;
}
export interface ToolUseBlock {
  type: "tool_use";
  id: string;
  name: string;
  input: unknown;
}
export type ResponseBlock = TextBlock | ThinkingBlock | ToolUseBlock;

export interface RequestBlock {
  type: string;
  text?: string;
  id?: string;
  name?: string;
  input?: unknown;
  tool_use_id?: string;
  content?: string | Array<{ type: string; text?: string }>;
  is_error?: boolean;
  thinking?: string;
  signature?: string;
}
export interface RequestMessage {
  role: "user" | "assistant";
  content: string | RequestBlock[];
}
export interface MessagesRequest {
  model: string;
  max_tokens: number;
  messages: RequestMessage[];
  system?: string;
  tools?: Array<{ name: string; description?: string; input_schema: { type: string; properties?: Record<string, unknown> } }>;
  tool_choice?: { type: string };
  stream?: boolean;
}

export interface StandInRequest {
  headers: IncomingHttpHeaders;
  body: MessagesRequest;
  at: number;
  index: number;
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

export type Reply =
  | {
      kind: "message";
      content: ResponseBlock[];
      stop_reason: "end_turn" | "tool_use" | "max_tokens" | "pause_turn" | "refusal" | "stop_sequence";
      /** Defaults: input from the request's size, output from the content's. */
      usage?: Partial<Usage>;
      /** For max_tokens: cut the last tool_use's JSON after this many characters. */
      cutToolJsonAt?: number;
    }
  | { kind: "error"; status: number; type: string; message: string; headers?: Record<string, string> }
  /** A stream that starts, then fails with an `event: error` (as the API does when overloaded mid-answer). */
  | { kind: "stream-error"; text: string; type: string; message: string };

export type Script = (request: StandInRequest) => Reply | Promise<Reply>;

/** A tool_result's text, whichever form its content takes. */
export function toolResultText(block: RequestBlock): string {
  if (typeof block.content === "string") return block.content;
  return (block.content ?? []).map((c) => c.text ?? "").join("");
}

/** All tool results of the conversation, by the tool name of their tool_use. */
export function toolResults(body: MessagesRequest): Array<{ name: string; input: unknown; text: string; isError: boolean }> {
  const names = new Map<string, { name: string; input: unknown }>();
  const out: Array<{ name: string; input: unknown; text: string; isError: boolean }> = [];
  for (const m of body.messages) {
    if (typeof m.content === "string") continue;
    for (const b of m.content) {
      if (b.type === "tool_use" && b.id) names.set(b.id, { name: b.name ?? "", input: b.input });
      if (b.type === "tool_result") {
        const use = names.get(b.tool_use_id ?? "");
        out.push({ name: use?.name ?? "?", input: use?.input, text: toolResultText(b), isError: b.is_error === true });
      }
    }
  }
  return out;
}

export function lastUserText(body: MessagesRequest): string {
  const last = body.messages[body.messages.length - 1];
  if (!last || last.role !== "user") return "";
  if (typeof last.content === "string") return last.content;
  return last.content.map((b) => (b.type === "text" ? (b.text ?? "") : "")).join("\n");
}

/** The API key a request carries: SDK 1.x sends it as `Authorization: Bearer`, older clients as x-api-key. */
export function apiKeyOf(headers: IncomingHttpHeaders): string | undefined {
  const bearer = /^Bearer (.+)$/.exec(headers.authorization ?? "")?.[1];
  const key = headers["x-api-key"];
  return bearer ?? (typeof key === "string" ? key : undefined);
}

const tokens = (chars: number) => Math.max(1, Math.ceil(chars / 4));

/** The checks the real API makes that a tool loop can get wrong; a message means a 400. */
export function validate(body: MessagesRequest): string | undefined {
  if (!body || typeof body !== "object") return "request body must be a JSON object";
  if (typeof body.model !== "string" || !body.model) return "model: Field required";
  if (!Number.isInteger(body.max_tokens) || body.max_tokens < 1) return "max_tokens: Field required";
  if (!Array.isArray(body.messages) || body.messages.length === 0) return "messages: at least one message is required";
  if (body.messages[0]!.role !== "user") return "messages: first message must use the \"user\" role";
  let usesTools = false;
  for (const [i, m] of body.messages.entries()) {
    if (m.role !== "user" && m.role !== "assistant") return `messages.${i}.role: Input should be 'user' or 'assistant'`;
    if (typeof m.content === "string") {
      if (m.content === "") return `messages.${i}: all messages must have non-empty content`;
      continue;
    }
    if (m.content.length === 0) return `messages.${i}: all messages must have non-empty content except for the optional final assistant message`;
    for (const [j, b] of m.content.entries()) {
      if (b.type === "text" && !b.text) return `messages.${i}.content.${j}.text: text content blocks must be non-empty`;
      if (b.type === "thinking" && !b.signature) return `messages.${i}.content.${j}.thinking.signature: Field required`;
      if (b.type === "tool_use" || b.type === "tool_result") usesTools = true;
      if (b.type === "tool_use" && m.role !== "assistant") return `messages.${i}: tool_use blocks may only be in assistant messages`;
      if (b.type === "tool_result" && m.role !== "user") return `messages.${i}: tool_result blocks may only be in user messages`;
    }
    const prev = body.messages[i - 1];
    const prevUses = prev && typeof prev.content !== "string" ? prev.content.filter((b) => b.type === "tool_use").map((b) => b.id) : [];
    const results = m.content.filter((b) => b.type === "tool_result");
    if (m.role === "user" && results.length > 0) {
      const firstNonResult = m.content.findIndex((b) => b.type !== "tool_result");
      if (firstNonResult !== -1 && m.content.slice(firstNonResult).some((b) => b.type === "tool_result"))
        return `messages.${i}: tool_result blocks must come first in the message`;
      for (const r of results)
        if (!prevUses.includes(r.tool_use_id))
          return `messages.${i}.content: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${r.tool_use_id}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`;
    }
    if (m.role === "assistant" && typeof m.content !== "string") {
      const ids = m.content.filter((b) => b.type === "tool_use").map((b) => b.id!);
      if (ids.length > 0) {
        const next = body.messages[i + 1];
        const answered = next && typeof next.content !== "string" ? next.content.filter((b) => b.type === "tool_result").map((b) => b.tool_use_id) : [];
        const missing = ids.filter((id) => !answered.includes(id));
        if (missing.length > 0)
          return `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(", ")}. Each \`tool_use\` block must have a corresponding \`tool_result\` block in the next message.`;
      }
    }
  }
  if (usesTools && !(body.tools && body.tools.length > 0)) return "Requests which include `tool_use` or `tool_result` blocks must define tools.";
  return undefined;
}

function chunks(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length > 0 ? out : [""];
}

export class AnthropicStandIn {
  readonly requests: StandInRequest[] = [];
  /** The usage reported for each successful message, in order. */
  readonly reported: Usage[] = [];
  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(script: Script): Promise<AnthropicStandIn> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const standIn = new AnthropicStandIn(server, `http://127.0.0.1:${port}`);
    server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const parts: Buffer[] = [];
      req.on("data", (c: Buffer) => parts.push(c));
      req.on("end", () => {
        void standIn.handle(req.method ?? "", req.url ?? "", req.headers, Buffer.concat(parts).toString("utf8"), res, script).catch((err: unknown) => {
          if (!res.headersSent) sendError(res, 500, "api_error", `stand-in failure: ${String(err)}`);
          else res.end();
        });
      });
    });
    return standIn;
  }

  private async handle(method: string, path: string, headers: IncomingHttpHeaders, raw: string, res: ServerResponse, script: Script) {
    if (method !== "POST" || path.split("?")[0] !== "/v1/messages") return sendError(res, 404, "not_found_error", `Not found: ${method} ${path}`);
    if (!apiKeyOf(headers)) return sendError(res, 401, "authentication_error", "x-api-key or Authorization: Bearer header is required");
    if (!headers["anthropic-version"]) return sendError(res, 400, "invalid_request_error", "anthropic-version: header is required");
    let body: MessagesRequest;
    try {
      body = JSON.parse(raw) as MessagesRequest;
    } catch {
      return sendError(res, 400, "invalid_request_error", "The request body is not valid JSON.");
    }
    const request: StandInRequest = { headers, body, at: Date.now(), index: this.requests.length };
    this.requests.push(request);
    const invalid = validate(body);
    if (invalid) return sendError(res, 400, "invalid_request_error", invalid);
    const reply = await script(request);
    const id = `msg_standin_${request.index}`;
    const requestId = `req_standin_${request.index}`;
    if (reply.kind === "error") return sendError(res, reply.status, reply.type, reply.message, { "request-id": requestId, ...reply.headers });

    const inputTokens = tokens(raw.length);
    if (reply.kind === "stream-error") {
      res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "request-id": requestId });
      sse(res, "message_start", { type: "message_start", message: messageShell(id, body.model, { input_tokens: inputTokens, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }) });
      sse(res, "content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } });
      sse(res, "content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: reply.text } });
      sse(res, "error", { type: "error", error: { type: reply.type, message: reply.message } });
      res.end();
      return;
    }

    const outputChars = reply.content.reduce((n, b) => n + (b.type === "text" ? b.text.length : b.type === "thinking" ? b.thinking.length : JSON.stringify(b.input).length), 0);
    const usage: Usage = {
      input_tokens: inputTokens,
      output_tokens: tokens(outputChars),
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      ...reply.usage,
    };
    this.reported.push(usage);

    if (!body.stream) {
      res.writeHead(200, { "content-type": "application/json", "request-id": requestId });
      res.end(JSON.stringify({ ...messageShell(id, body.model, usage), content: reply.content, stop_reason: reply.stop_reason }));
      return;
    }

    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", "request-id": requestId });
    sse(res, "message_start", {
      type: "message_start",
      message: messageShell(id, body.model, { input_tokens: usage.input_tokens, output_tokens: 1, cache_creation_input_tokens: usage.cache_creation_input_tokens, cache_read_input_tokens: usage.cache_read_input_tokens }),
    });
    sse(res, "ping", { type: "ping" });
    for (const [index, block] of reply.content.entries()) {
      const last = index === reply.content.length - 1;
      if (block.type === "text") {
        sse(res, "content_block_start", { type: "content_block_start", index, content_block: { type: "text", text: "" } });
        for (const piece of chunks(block.text, 7)) sse(res, "content_block_delta", { type: "content_block_delta", index, delta: { type: "text_delta", text: piece } });
      } else if (block.type === "thinking") {
        sse(res, "content_block_start", { type: "content_block_start", index, content_block: { type: "thinking", thinking: "", signature: "" } });
        for (const piece of chunks(block.thinking, 11)) sse(res, "content_block_delta", { type: "content_block_delta", index, delta: { type: "thinking_delta", thinking: piece } });
        sse(res, "content_block_delta", { type: "content_block_delta", index, delta: { type: "signature_delta", signature: block.signature } });
      } else {
        sse(res, "content_block_start", { type: "content_block_start", index, content_block: { type: "tool_use", id: block.id, name: block.name, input: {} } });
        let json = JSON.stringify(block.input);
        if (last && reply.stop_reason === "max_tokens" && reply.cutToolJsonAt !== undefined) json = json.slice(0, reply.cutToolJsonAt);
        sse(res, "content_block_delta", { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: "" } });
        for (const piece of chunks(json, 9)) sse(res, "content_block_delta", { type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: piece } });
      }
      sse(res, "content_block_stop", { type: "content_block_stop", index });
    }
    sse(res, "message_delta", {
      type: "message_delta",
      delta: { stop_reason: reply.stop_reason, stop_sequence: null },
      usage: {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
      },
    });
    sse(res, "message_stop", { type: "message_stop" });
    res.end();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function messageShell(id: string, model: string, usage: Usage) {
  return { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage };
}

function sse(res: ServerResponse, event: string, data: unknown): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

function sendError(res: ServerResponse, status: number, type: string, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ type: "error", error: { type, message }, request_id: headers["request-id"] ?? null }));
}
