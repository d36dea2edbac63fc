// MCP over Streamable HTTP (stateless: one McpServer per request). Every
// request must carry a colony token (`Authorization: Bearer <token>`); the
// server forwards it to the colony on every call, so the colony's own auth
// (read/admin scopes, revocation) decides. No token: 401 with how to get one.
//
// The colony accepts its local token (admin, no scope of its own) from
// loopback only, and this server calls the colony from loopback: relaying
// that token for a remote caller would hand them admin. So the local token
// is refused from any caller that is not itself on loopback; remote
// assistants use a token of their own (coral token create). The server
// listens on loopback unless told otherwise, and caps request bodies before
// reading them (after checking the caller).
import { createHash, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { TrafficService } from "@coral/proto/gen/coral/colony/v1/traffic_pb";
import { QueryService } from "@coral/proto/gen/coral/colony/v1/query_pb";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { bearerToken, relayedForHeader } from "@coral/proto";
import { createCoralMcpServer } from "./server.ts";

type ColonyClient = Client<typeof ColonyService>;

export const mcpPath = "/mcp";

export const mcpTokenHelp =
  "Coral's MCP server needs a colony token: send `Authorization: Bearer <token>`. " +
  "Create one on the colony's machine with: coral token create --name assistant --scope read " +
  "(admin scope only for tools that change something), and put it in your assistant's MCP config (see: coral mcp configure --transport http).";

export interface McpHttpOptions {
  /** The colony API the server forwards to, e.g. http://127.0.0.1:9000. */
  colonyUrl: string;
  host?: string;
  /** 0 picks a free port. Default 3001. */
  port?: number;
  /** A token that passed the colony is trusted this long before it is checked again (default 10 s); every tool call is checked by the colony anyway. */
  verifyTtlMs?: number;
  /** Where one-line notes go (default: stderr). */
  log?: (line: string) => void;
  /** The colony's local token (.coral/local.token), refused from callers not on loopback. */
  localToken?: string;
  /** Largest request body read, in bytes (default 1 MiB). */
  maxBodyBytes?: number;
}

export interface RunningMcpHttpServer {
  /** e.g. http://127.0.0.1:3001/mcp */
  url: string;
  port: number;
  close(): Promise<void>;
}

function sendError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  const body = JSON.stringify({ jsonrpc: "2.0", error: { code: status === 401 ? -32001 : -32000, message }, id: null });
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(body);
}

function sendJsonRpcError(res: ServerResponse, code: number, message: string): void {
  res.writeHead(400, { "content-type": "application/json" }).end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}

const loopbackNames = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

function isLoopbackHost(host: string): boolean {
  return loopbackNames.has(host) || host.startsWith("127.");
}

function isLoopbackPeer(address: string | undefined): boolean {
  const a = (address ?? "").replace(/^::ffff:/, "");
  return a === "::1" || a.startsWith("127.");
}

export const mcpLocalTokenRefusal =
  "the colony's local token works only on the colony's machine, not through this MCP server for a remote caller: " +
  "create a token for the assistant with: coral token create --name assistant --scope read";

class BodyTooLarge extends Error {}

/** Reads the JSON-RPC body, refusing more than `max` bytes without buffering them. */
async function readJsonBody(req: IncomingMessage, max: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > max) throw new BodyTooLarge();
    chunks.push(chunk);
  }
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

function hostName(hostHeader: string): string {
  if (hostHeader.startsWith("[")) return hostHeader.slice(0, hostHeader.indexOf("]") + 1);
  return hostHeader.replace(/:\d+$/, "");
}

export async function startMcpHttpServer(options: McpHttpOptions): Promise<RunningMcpHttpServer> {
  const host = options.host ?? "127.0.0.1";
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const ttl = options.verifyTtlMs ?? 10_000;
  const maxBody = options.maxBodyBytes ?? 1024 * 1024;
  const localTokenHash = options.localToken ? createHash("sha256").update(options.localToken).digest() : undefined;
  const isLocalToken = (token: string) => localTokenHash !== undefined && timingSafeEqual(createHash("sha256").update(token).digest(), localTokenHash);
  const clients = new Map<string, { colony: ColonyClient; debug: Client<typeof DebugService>; profile: Client<typeof ProfileService>; traffic: Client<typeof TrafficService>; query: Client<typeof QueryService> }>();
  /** sha256(token) → until when the colony's last yes counts. */
  const verified = new Map<string, number>();
  const keyOf = (token: string) => createHash("sha256").update(token).digest("hex");
  // A caller on another machine is named to the colony (x-coral-relayed-for),
  // which then refuses its local token even when this server does not know it.
  const clientsFor = (token: string, relayedFor: string | undefined) => {
    const clientKey = `${relayedFor ?? ""}\n${token}`;
    let client = clients.get(clientKey);
    if (!client) {
      if (clients.size >= 100) clients.delete(clients.keys().next().value!);
      const key = `${relayedFor ?? ""}\n${keyOf(token)}`;
      // The caller's token on every call; a refusal (e.g. just revoked) also ends the HTTP layer's trust.
      const forward: Interceptor = (next) => async (req) => {
        req.header.set("authorization", `Bearer ${token}`);
        if (relayedFor !== undefined) req.header.set(relayedForHeader, relayedFor);
        try {
          return await next(req);
        } catch (err) {
          if (ConnectError.from(err).code === Code.Unauthenticated) verified.delete(key);
          throw err;
        }
      };
      const transport = createConnectTransport({ baseUrl: options.colonyUrl, httpVersion: "1.1", interceptors: [forward] });
      client = {
        colony: createClient(ColonyService, transport),
        debug: createClient(DebugService, transport),
        profile: createClient(ProfileService, transport),
        traffic: createClient(TrafficService, transport),
        query: createClient(QueryService, transport),
      };
      clients.set(clientKey, client);
    }
    return client;
  };

  /** Asks the colony whether it accepts the token; undefined when it does, else the refusal. */
  async function refusal(token: string, relayedFor: string | undefined): Promise<{ status: number; message: string } | undefined> {
    const key = `${relayedFor ?? ""}\n${keyOf(token)}`;
    if ((verified.get(key) ?? 0) > Date.now()) return undefined;
    try {
      await clientsFor(token, relayedFor).colony.getStatus({}, { timeoutMs: 10_000 });
      verified.set(key, Date.now() + ttl);
      return undefined;
    } catch (err) {
      verified.delete(key);
      const ce = ConnectError.from(err);
      if (ce.code === Code.Unauthenticated) return { status: 401, message: `the colony refused the token: ${ce.rawMessage}. ${mcpTokenHelp}` };
      if (ce.code === Code.PermissionDenied) return { status: 403, message: `the colony refused the token: ${ce.rawMessage}` };
      return { status: 502, message: `colony not reachable at ${options.colonyUrl}: ${ce.rawMessage} (is it running? coral colony start)` };
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== mcpPath && url.pathname !== "/") return sendError(res, 404, `not found: the MCP endpoint is ${mcpPath}`);
    // DNS rebinding: when listening on loopback, only loopback names may address us.
    if (isLoopbackHost(host)) {
      const name = hostName(req.headers.host ?? "");
      if (!isLoopbackHost(name)) return sendError(res, 403, `host ${JSON.stringify(req.headers.host ?? "")} not allowed`);
      const origin = req.headers.origin;
      if (origin) {
        let originHost = "";
        try {
          originHost = new URL(origin).hostname;
        } catch {
          // not a URL: refused below
        }
        if (!isLoopbackHost(originHost) && !isLoopbackHost(`[${originHost}]`)) return sendError(res, 403, `origin ${origin} not allowed`);
      }
    }
    const token = bearerToken(req.headers.authorization ?? null);
    if (!token) return sendError(res, 401, mcpTokenHelp, { "www-authenticate": 'Bearer realm="coral"' });
    if (isLocalToken(token) && !isLoopbackPeer(req.socket.remoteAddress)) return sendError(res, 403, mcpLocalTokenRefusal, { connection: "close" });
    if (req.method !== "POST")
      return sendError(res, 405, "this MCP server is stateless: send JSON-RPC with POST (no GET stream, no session to DELETE)", { allow: "POST" });
    const tooLarge = `the request body is larger than ${maxBody} bytes`;
    if (Number(req.headers["content-length"] ?? 0) > maxBody) return sendError(res, 413, tooLarge, { connection: "close" });
    const relayedFor = isLoopbackPeer(req.socket.remoteAddress) ? undefined : (req.socket.remoteAddress ?? "unknown").replace(/^::ffff:/, "");
    const refused = await refusal(token, relayedFor);
    if (refused) return sendError(res, refused.status, refused.message, refused.status === 401 ? { "www-authenticate": 'Bearer realm="coral", error="invalid_token"' } : {});
    let body: unknown;
    try {
      body = await readJsonBody(req, maxBody);
    } catch (err) {
      if (err instanceof BodyTooLarge) return sendError(res, 413, tooLarge, { connection: "close" });
      return sendJsonRpcError(res, -32700, "parse error: the body is not JSON");
    }

    const server = createCoralMcpServer(clientsFor(token, relayedFor));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on("close", () => {
      void transport.close().catch(() => undefined);
      void server.close().catch(() => undefined);
    });
    await server.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  const http = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log(`mcp http: ${err instanceof Error ? err.message : String(err)}`);
      if (!res.headersSent) sendError(res, 500, "internal error");
      else res.end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    http.once("error", (err: NodeJS.ErrnoException) =>
      reject(err.code === "EADDRINUSE" ? new Error(`${host}:${options.port ?? 3001} is in use: pick another port with --port`) : err),
    );
    http.listen(options.port ?? 3001, host, () => {
      http.removeAllListeners("error");
      http.on("error", (err) => log(`mcp http: ${err.message}`));
      resolve();
    });
  });
  const port = (http.address() as AddressInfo).port;
  if (!isLoopbackHost(host))
    log(`mcp http: listening on ${host}, beyond loopback: callers need a colony token of their own (the local token is refused), and without TLS it travels in clear text`);
  const shownHost = host.includes(":") ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}${mcpPath}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      }),
  };
}
