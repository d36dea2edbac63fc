// The dashboard on the colony's API port: its static files, the sign-in
// exchange, browser sessions and live updates. Connect calls keep going
// through the API's front door (../api/intake.ts); a browser's calls there
// are authenticated by the session cookie (authenticateCall below).
//
//   POST /dashboard/api/sign-in-code  bearer token (any scope) → a one-time code
//   POST /dashboard/api/sign-in       {"code"} → HttpOnly, SameSite=Strict session cookie
//   GET  /dashboard/api/session       who the cookie signs in as ({signedIn: false} without one)
//   POST /dashboard/api/sign-out      ends the session
//   GET  /dashboard/api/live          server-sent events (live.ts)
//   GET  /, /components/api, …         the single-page app (static.ts)
import type { IncomingMessage, ServerResponse } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { bearerToken } from "@coral/proto";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { authorize, hashToken, isLoopback, type Caller, type CallHead, type TokenLookup } from "../auth/index.ts";
import { cookieValue, DashboardSessions, type Grant, type Session } from "./sessions.ts";
import { LiveFeed, type LiveSources } from "./live.ts";
import { securityHeaders, staticFiles } from "./static.ts";

export { DashboardSessions, cookieValue } from "./sessions.ts";
export { LiveFeed } from "./live.ts";
export { staticFiles, staticKey, contentSecurityPolicy } from "./static.ts";

export const sessionCookie = "coral_session";
/** Cookie-authenticated API calls must carry this header (a cross-site page cannot add it without CORS, which the colony never grants). */
export const csrfHeader = "x-coral-csrf";
/** The path prefix of the dashboard's own endpoints. */
export const dashboardApiPrefix = "/dashboard/api/";

export interface DashboardOptions {
  /** dashboard/dist: the built single-page app. */
  assetsDir: string;
  /** Served over TLS: the cookie is Secure. */
  tls: boolean;
  /** Checks a bearer token for a token service method (the API's authenticator). */
  authenticateBearer(head: CallHead): Promise<Caller>;
  tokens: TokenLookup;
  /** Addresses besides loopback that are this machine. */
  localAddresses?: string[];
  live: LiveSources;
  audit(actor: string, action: string, target: string, details: Record<string, unknown>): Promise<void>;
  log: { warn(obj: object, msg?: string): void };
  sessions?: DashboardSessions;
}

export interface Dashboard {
  /** Answers every request that is not a Connect call (`expectsContinue`: the client waits for 100 Continue before its body). */
  handle(req: IncomingMessage, res: ServerResponse, expectsContinue?: boolean): void;
  /**
   * The caller of a Connect call that carries no bearer token but the
   * session cookie; undefined when it has no session cookie (the bearer
   * check then answers). Throws a ConnectError to refuse.
   */
  authenticateCall(head: CallHead): Promise<Caller | undefined>;
  sessions: DashboardSessions;
  close(): void;
}

const maxSignInBody = 1024;

export function createDashboard(options: DashboardOptions): Dashboard {
  const sessions = options.sessions ?? new DashboardSessions();
  const files = staticFiles(options.assetsDir);
  const feed = new LiveFeed(options.live, { onError: (err) => options.log.warn({ err: String(err) }, "dashboard live update failed") });
  const local = new Set(options.localAddresses ?? []);
  const openStreams = new Set<ServerResponse>();

  const isLocalPeer = (peer: string) => {
    const p = peer.replace(/^::ffff:/, "");
    return isLoopback(p) || local.has(p);
  };

  /** The session behind a request's cookie, checked against its token; throws when it no longer holds. */
  async function sessionOf(cookie: string | null | undefined, peer: string): Promise<{ id: string; session: Session } | undefined> {
    const id = cookieValue(cookie, sessionCookie);
    if (!id) return undefined;
    const session = sessions.lookup(id);
    if (!session) throw new ConnectError("the dashboard session has ended: sign in again with `coral dashboard`", Code.Unauthenticated);
    const { grant } = session;
    if (grant.local) {
      if (!isLocalPeer(peer)) throw new ConnectError("this session was opened with the local token and works only on the colony's own machine", Code.Unauthenticated);
    } else if (grant.tokenHash) {
      const row = await options.tokens.findTokenByHash(grant.tokenHash);
      if (!row || row.revokedAt || (row.expiresAt && row.expiresAt.getTime() <= Date.now())) {
        sessions.end(id);
        throw new ConnectError(`token "${grant.name}" that opened this session no longer works: sign in again with \`coral dashboard\``, Code.Unauthenticated);
      }
    }
    return { id, session };
  }

  const callerOf = (grant: Grant): Caller => ({ name: grant.name === "local" ? "dashboard:local" : `dashboard:${grant.name}`, scope: grant.scope });

  async function authenticateCall(head: CallHead): Promise<Caller | undefined> {
    if (!cookieValue(head.cookie, sessionCookie)) return undefined;
    // CSRF: the custom header (never sent cross-site without CORS) and, when the browser says it, the origin.
    if (head.csrf !== "1") throw new ConnectError(`a call authenticated by the dashboard cookie needs the ${csrfHeader} header`, Code.PermissionDenied);
    if (!sameOrigin(head.origin, head.host, options.tls)) throw new ConnectError("cross-origin call refused", Code.PermissionDenied);
    const found = await sessionOf(head.cookie, head.peer);
    if (!found) return undefined;
    const caller = callerOf(found.session.grant);
    try {
      authorize(head.method, caller);
    } catch (err) {
      await options.audit(caller.name, "denied", head.method, { scope: caller.scope, message: (err as ConnectError).rawMessage });
      throw err;
    }
    return caller;
  }

  async function route(req: IncomingMessage, res: ServerResponse, path: string, expectsContinue: boolean): Promise<void> {
    const peer = req.socket.remoteAddress ?? "";
    const method = req.method ?? "GET";
    switch (path) {
      case `${dashboardApiPrefix}sign-in-code`: {
        if (method !== "POST") return sendJson(res, 405, { code: "unimplemented", message: "sign-in-code takes POST" }, { allow: "POST" });
        // Only a bearer token may ask: a browser session cannot mint more sessions.
        const authorization = req.headers.authorization ?? null;
        const caller = await options.authenticateBearer({ service: ColonyService.typeName, method: "CreateDashboardSignInCode", authorization, peer });
        const token = bearerToken(authorization)!;
        const local = caller.name === "local";
        const row = local ? null : await options.tokens.findTokenByHash(hashToken(token));
        const grant: Grant = { name: caller.name, scope: caller.scope, tokenHash: local ? null : hashToken(token), local, tokenExpiresAt: row?.expiresAt ?? null };
        const { code, expiresAt } = sessions.issueCode(grant);
        await options.audit(caller.name, "dashboard.sign_in_code", caller.name, { scope: caller.scope });
        return sendJson(res, 200, { code, expiresAt: expiresAt.toISOString(), scope: caller.scope, path: `/login#code=${code}` });
      }
      case `${dashboardApiPrefix}sign-in`: {
        if (method !== "POST") return sendJson(res, 405, { code: "unimplemented", message: "sign-in takes POST" }, { allow: "POST" });
        if (!sameOrigin(req.headers.origin ?? null, req.headers.host ?? null, options.tls)) return sendJson(res, 403, { code: "permission_denied", message: "cross-origin sign-in refused" });
        if (!/^application\/json\b/i.test(req.headers["content-type"] ?? ""))
          return sendJson(res, 415, { code: "invalid_argument", message: "sign-in takes application/json: {\"code\": \"…\"}" });
        if (expectsContinue) res.writeContinue();
        const body = await readSmallBody(req, maxSignInBody);
        let code: unknown;
        try {
          code = (JSON.parse(body) as { code?: unknown }).code;
        } catch {
          code = undefined;
        }
        if (typeof code !== "string" || !/^[A-Za-z0-9_-]{16,64}$/.test(code)) return sendJson(res, 400, { code: "invalid_argument", message: "code: missing or malformed" });
        const redeemed = sessions.redeem(code);
        if (!redeemed) return sendJson(res, 401, { code: "unauthenticated", message: "this sign-in code is unknown, already used or expired: run `coral dashboard` again" });
        const { grant } = redeemed.session;
        if (grant.local && !isLocalPeer(peer)) {
          sessions.end(redeemed.sessionId);
          return sendJson(res, 401, { code: "unauthenticated", message: "a code asked for with the local token works only on the colony's own machine" });
        }
        await options.audit(callerOf(grant).name, "dashboard.sign_in", grant.name, { scope: grant.scope, peer });
        const maxAge = Math.max(1, Math.floor((redeemed.session.expiresAt.getTime() - Date.now()) / 1000));
        const cookie = `${sessionCookie}=${redeemed.sessionId}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${options.tls ? "; Secure" : ""}`;
        return sendJson(res, 200, sessionJson(redeemed.session), { "set-cookie": cookie });
      }
      case `${dashboardApiPrefix}session`: {
        // 200 either way: the page asks before it knows, and a signed-out page is no error.
        const found = await sessionOf(req.headers.cookie, peer).catch(() => undefined);
        if (!found) return sendJson(res, 200, { signedIn: false, message: "not signed in: run `coral dashboard` for a sign-in link" });
        return sendJson(res, 200, { signedIn: true, ...sessionJson(found.session) });
      }
      case `${dashboardApiPrefix}sign-out`: {
        if (method !== "POST") return sendJson(res, 405, { code: "unimplemented", message: "sign-out takes POST" }, { allow: "POST" });
        if (req.headers[csrfHeader] !== "1") return sendJson(res, 403, { code: "permission_denied", message: `sign-out needs the ${csrfHeader} header` });
        const id = cookieValue(req.headers.cookie, sessionCookie);
        if (id) sessions.end(id);
        return sendJson(res, 200, { signedOut: true }, { "set-cookie": `${sessionCookie}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${options.tls ? "; Secure" : ""}` });
      }
      case `${dashboardApiPrefix}live`: {
        if (method !== "GET") return sendJson(res, 405, { code: "unimplemented", message: "live takes GET" }, { allow: "GET" });
        const site = req.headers["sec-fetch-site"];
        if ((site && site !== "same-origin" && site !== "none") || !sameOrigin(req.headers.origin ?? null, req.headers.host ?? null, options.tls))
          return sendJson(res, 403, { code: "permission_denied", message: "cross-origin request refused" });
        const found = await sessionOf(req.headers.cookie, peer);
        if (!found) return sendJson(res, 401, { code: "unauthenticated", message: "not signed in: run `coral dashboard` for a sign-in link" });
        return openLive(req, res, found.session);
      }
    }
    if (path.startsWith(dashboardApiPrefix)) return sendJson(res, 404, { code: "unimplemented", message: "no such dashboard endpoint" });
    if (method !== "GET" && method !== "HEAD") return sendJson(res, 405, { code: "unimplemented", message: `${method} is not served here` }, { allow: "GET, HEAD" });
    files.serve(req, res, path);
  }

  function openLive(req: IncomingMessage, res: ServerResponse, session: Session): void {
    res.writeHead(200, { ...securityHeaders, "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no" });
    res.write("retry: 2000\n\n");
    openStreams.add(res);
    const unsubscribe = feed.subscribe((event, data) => res.write(`event: ${event}\ndata: ${data}\n\n`));
    // A comment now and then keeps proxies from closing an idle stream; the session's end closes it.
    const keepAlive = setInterval(() => {
      if (session.expiresAt.getTime() <= Date.now()) res.end();
      else res.write(": keep-alive\n\n");
    }, 15_000);
    keepAlive.unref();
    const done = () => {
      clearInterval(keepAlive);
      unsubscribe();
      openStreams.delete(res);
    };
    res.once("close", done);
    req.socket.setTimeout(0);
  }

  return {
    sessions,
    authenticateCall,
    handle(req, res, expectsContinue = false) {
      const path = (req.url ?? "/").split("?", 1)[0]!;
      route(req, res, path, expectsContinue).catch((err: unknown) => {
        if (res.headersSent) return void res.destroy();
        if (err instanceof ConnectError) {
          const status = err.code === Code.Unauthenticated ? 401 : err.code === Code.PermissionDenied ? 403 : err.code === Code.ResourceExhausted ? 413 : 400;
          return sendJson(res, status, { code: codeToString(err.code), message: err.rawMessage });
        }
        options.log.warn({ err: String(err), path: path.slice(0, 200) }, "dashboard request failed");
        sendJson(res, 500, { code: "internal", message: "internal error" });
      });
    },
    close() {
      feed.close();
      for (const res of openStreams) res.end();
      openStreams.clear();
    },
  };
}

function sessionJson(session: Session) {
  return { name: session.grant.name, scope: session.grant.scope, expiresAt: session.expiresAt.toISOString() };
}

/** A request's Origin (when the browser sends one) must be the colony's own. */
export function sameOrigin(origin: string | null | undefined, host: string | null | undefined, tls: boolean): boolean {
  if (!origin) return true; // not a browser's cross-origin request (the custom header or SameSite covers the rest)
  if (!host) return false;
  return origin === `${tls ? "https" : "http"}://${host}`;
}

function readSmallBody(req: IncomingMessage, max: number): Promise<string> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > max) return Promise.reject(new ConnectError(`body is ${declared} bytes; at most ${max}`, Code.ResourceExhausted));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    req.on("data", (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > max) {
        req.pause();
        reject(new ConnectError(`body is more than ${max} bytes`, Code.ResourceExhausted));
      } else chunks.push(chunk);
    });
    req.once("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.once("error", reject);
  });
}

function sendJson(res: ServerResponse, status: number, body: object, extra: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...securityHeaders, ...extra, "content-type": "application/json", "content-length": Buffer.byteLength(text), "cache-control": "no-store" });
  res.end(text);
}
