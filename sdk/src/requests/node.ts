/**
 * node:http and node:https: watch every request a server serves (its
 * "request" listeners run after ours), or wrap one request listener.
 */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { RequestRecorder, RouteOf } from "./recorder.ts";

const instrumented = Symbol.for("coral.sdk.server");

export function instrumentServer<S extends HttpServer | HttpsServer>(recorder: () => RequestRecorder, server: S): S {
  const marked = server as unknown as Record<symbol, boolean>;
  if (marked[instrumented]) return server;
  marked[instrumented] = true;
  server.prependListener("request", (req: IncomingMessage, res: ServerResponse) => recorder().watch(req, res));
  return server;
}

export function wrapListener<Req extends IncomingMessage, Res extends ServerResponse>(
  recorder: () => RequestRecorder,
  listener: (req: Req, res: Res) => void,
  routeOf?: (req: Req) => string | undefined,
): (req: Req, res: Res) => void {
  // The request the recorder hands back is the one given here.
  const route = routeOf as RouteOf | undefined;
  return (req, res) => {
    recorder().watch(req, res, route);
    listener(req, res);
  };
}
