// The discovery worker's entry point: it only routes.
import { Code, ConnectError } from "@connectrpc/connect";
import { Router, type IRequest } from "itty-router";
import { jwks } from "./bootstrap.ts";
import { connectPathPrefix, serveConnect } from "./connect-routes.ts";
import { refuseUnlessFromFront } from "./front-guard.ts";
import { errorResponse, toConnectError } from "./http.ts";
import { serveRegistrationBatch } from "./registration-batch.ts";
import { registrationBatchPath } from "./registration-batch-wire.ts";
import type { Registrar } from "./registry-batch.ts";
import { restHealth, restLookupAgent, restLookupColony, restRegister } from "./rest-routes.ts";

export { Directory } from "./directory.ts";
export { MeshRegistry } from "./mesh-registry.ts";
export { RateLimiter } from "./rate-limiter.ts";

/** `register`: set for the registrations of a batch (registration-batch.ts). */
type Args = [env: DiscoveryEnv, ctx: ExecutionContext, register?: Registrar];

/** A path parameter, percent-decoded; a malformed escape is the caller's mistake. */
function param(req: IRequest, name: string): string {
  try {
    return decodeURIComponent(req.params[name] ?? "");
  } catch {
    throw new ConnectError(`${name}: ${JSON.stringify(req.params[name])} is not valid percent-encoding`, Code.InvalidArgument);
  }
}

const router = Router<IRequest, Args>({
  catch: (err: unknown) => errorResponse(toConnectError(err)),
});

router
  .get("/health", (req, env) => restHealth(req, env))
  .get("/.well-known/jwks.json", async (_req, env) =>
    Response.json(await jwks(env), { headers: { "cache-control": "public, max-age=300" } }),
  )
  .all(registrationBatchPath, (req, env, ctx) => serveRegistrationBatch(req, env, (item, register) => router.fetch(item, env, ctx, register)))
  .post("/v1/mesh/:mesh_id/register", (req, env, _ctx, register) => restRegister(req, env, param(req, "mesh_id"), register))
  .get("/v1/mesh/:mesh_id/colony", (req, env) => restLookupColony(req, env, param(req, "mesh_id")))
  .get("/v1/mesh/:mesh_id/agents/:agent_id", (req, env) => restLookupAgent(req, env, param(req, "mesh_id"), param(req, "agent_id")))
  .all(`${connectPathPrefix}*`, (req, env, _ctx, register) => serveConnect(req, env, register))
  .all("*", (req) => {
    throw new ConnectError(`no route for ${req.method} ${new URL(req.url).pathname}`, Code.NotFound);
  });

export default {
  fetch: (request, env, ctx) => refuseUnlessFromFront(request, env) ?? router.fetch(request, env, ctx),
} satisfies ExportedHandler<DiscoveryEnv>;
