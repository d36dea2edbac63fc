/**
 * Express (4 and 5) middleware: `app.use(coral.express())`, first. The route
 * is the matched route's pattern under its router's mount path
 * (`/api` + `/users/:id`), read when the response ends; unmatched requests
 * are counted under their normalised path.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestRecorder } from "./recorder.ts";

interface ExpressRequest extends IncomingMessage {
  baseUrl?: string;
  route?: { path?: unknown };
}

export type ExpressMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

export function expressRoute(req: ExpressRequest): string | undefined {
  const path = req.route?.path;
  if (typeof path !== "string") return undefined;
  const joined = `${req.baseUrl ?? ""}${path}`;
  return joined.length > 1 && joined.endsWith("/") ? joined.slice(0, -1) : joined || "/";
}

export function expressMiddleware(recorder: () => RequestRecorder): ExpressMiddleware {
  return (req, res, next) => {
    recorder().watch(req, res, expressRoute);
    next();
  };
}
