// The colony's Connect API on HTTP/1.1 (or HTTPS with the configured cert).
// Requests go through the front door (intake.ts) first: size caps and the
// caller are checked before a body byte is read; then Connect (its protocol
// only) serves them.
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { createConnectRouter, type ConnectRouter } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { profileService } from "../profile/service.ts";
import { TrafficService } from "@coral/proto/gen/coral/colony/v1/traffic_pb";
import { trafficService } from "../traffic/service.ts";
import { QueryService } from "@coral/proto/gen/coral/colony/v1/query_pb";
import { queryService } from "../query/service.ts";
import { ExecService } from "@coral/proto/gen/coral/colony/v1/exec_pb";
import { execService } from "../exec/service.ts";
import { ShellService } from "@coral/proto/gen/coral/colony/v1/shell_pb";
import { shellService } from "../exec/shell-service.ts";
import { dirname, join } from "node:path";
import { MeshService } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { ControlService } from "@coral/proto/gen/coral/control/v1/control_pb";
import { controlService } from "../control/index.ts";
import { colonyAuthenticator, colonyAuthInterceptor, needsToken, type TokenLookup } from "../auth/index.ts";
import { apiRequestListener } from "./intake.ts";
import { colonyService } from "./colony-service.ts";
import { debugService } from "../debug/service.ts";
import type { ApiDeps } from "./deps.ts";
import { meshService } from "../agents/mesh-service.ts";
import { meshAdminService } from "../mesh/admin-service.ts";
import { MeshAdminService } from "@coral/proto/gen/coral/mesh/v1/peers_pb";
import { IdentityService } from "@coral/proto/gen/coral/colony/v1/identity_pb";
import { identityService } from "../identity/service.ts";
import { dashboardAssetsDir } from "@coral/dashboard/assets";
import { createDashboard } from "../dashboard/index.ts";
import { liveSources } from "../dashboard/sources.ts";

/** The largest request body for token services (and the Connect router's read limit). */
export const apiMaxBodyBytes = 1024 * 1024;
/** MeshService is open to callers without a colony token: a smaller cap. */
export const meshMaxBodyBytes = 256 * 1024;

export interface ApiServerOptions {
  host: string;
  port: number;
  tls?: { cert: string; key: string };
  localToken: string;
  /** Addresses besides loopback that are this machine (the colony's mesh address). */
  localAddresses?: string[];
  /** The built dashboard to serve at / (default: @coral/dashboard's dist). */
  dashboardDir?: string;
}

export interface ApiServer extends AsyncDisposable {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startApiServer(deps: ApiDeps, options: ApiServerOptions): Promise<ApiServer> {
  const tokens: TokenLookup = {
    findTokenByHash: (hash) => deps.store.findTokenByHash(hash),
    touchToken: (name, at) => deps.store.touchToken(name, at),
  };
  const routes = (router: ConnectRouter) => {
    router.service(ColonyService, colonyService(deps));
    router.service(MeshService, meshService(deps));
    router.service(MeshAdminService, meshAdminService(deps));
    if (deps.control)
      router.service(
        ControlService,
        controlService(deps.control, (actor, action, target, details) => deps.store.appendAudit({ at: new Date(), actor, action, target, details })),
      );
    if (deps.debug) {
      router.service(DebugService, debugService(deps.debug));
      router.service(ProfileService, profileService({ debug: deps.debug, identity: deps.identity, store: deps.store, audit: (actor, action, target, details) => deps.store.appendAudit({ at: new Date(), actor, action, target, details }) }));
      router.service(TrafficService, trafficService({ debug: deps.debug, identity: deps.identity, audit: (actor, action, target, details) => deps.store.appendAudit({ at: new Date(), actor, action, target, details }) }));
    }
    router.service(IdentityService, identityService(deps));
    router.service(ExecService, execService({ store: deps.store, debug: deps.debug, identity: deps.identity }));
    router.service(ShellService, shellService({ store: deps.store, debug: deps.debug, identity: deps.identity, recordingsDir: join(dirname(deps.store.path), "recordings") }));
    router.service(QueryService, queryService({ store: deps.store, debug: deps.debug, identity: deps.identity, audit: (actor, action, target, details) => deps.store.appendAudit({ at: new Date(), actor, action, target, details }) }));
  };
  // A refusal by scope is on record (who tried what), as the actions themselves are.
  const onDenied = (caller: { name: string; scope: string }, method: string, message: string) =>
    void deps.store.appendAudit({ at: new Date(), actor: caller.name, action: "denied", target: method, details: { scope: caller.scope, message } }).catch(() => undefined);
  const auth = { localToken: options.localToken, tokens, localAddresses: options.localAddresses, onDenied };
  const compressions = [compressionGzip, compressionBrotli];
  const router = createConnectRouter({
    interceptors: [colonyAuthInterceptor(auth)],
    readMaxBytes: apiMaxBodyBytes,
    jsonOptions: { ignoreUnknownFields: false },
    acceptCompression: compressions,
    // The Connect protocol only: the front door knows its framing.
    grpc: false,
    grpcWeb: false,
  });
  routes(router);
  const authenticate = colonyAuthenticator(auth);
  // The dashboard: static files, sign-in and live updates on the same port; its cookie authenticates browser calls.
  const dashboard = createDashboard({
    assetsDir: options.dashboardDir ?? dashboardAssetsDir,
    tls: Boolean(options.tls),
    authenticateBearer: authenticate,
    tokens,
    localAddresses: options.localAddresses,
    live: liveSources(deps),
    audit: (actor, action, target, details) => deps.store.appendAudit({ at: new Date(), actor, action, target, details }),
    log: deps.log,
  });
  const connect = apiRequestListener({
    handlers: router.handlers,
    maxBodyBytes: (service) => (service === MeshService.typeName ? meshMaxBodyBytes : apiMaxBodyBytes),
    authenticate: async (head) => (needsToken(head.service) ? ((!head.authorization && (await dashboard.authenticateCall(head))) || authenticate(head)) : undefined),
    compressions,
    onInternalError: (err, { path }) => deps.log.warn({ err: String(err), path }, "API request failed"),
  });
  // Connect methods are /<package>.<Service>/<Method>: those (and unknown ones) go through the front door; the rest is the dashboard's.
  const handler: typeof connect = (req, res, expectsContinue) =>
    (req.url ?? "/").startsWith("/coral.") ? connect(req, res, expectsContinue) : dashboard.handle(req, res, expectsContinue);
  // A slow client cannot hold a request open: headers within 10 s, the whole request within 30 s.
  const limits = { headersTimeout: 10_000, requestTimeout: 30_000 };
  const server = options.tls
    ? https.createServer({ ...limits, cert: await readFile(options.tls.cert), key: await readFile(options.tls.key) }, handler)
    : http.createServer(limits, handler);
  // Without this listener Node answers `Expect: 100-continue` itself, inviting the body before the checks.
  server.on("checkContinue", (req, res) => handler(req, res, true));
  server.listen(options.port, options.host);
  // events.once rejects on "error" too: a taken port is the error below, with what to do.
  await once(server, "listening").catch((err: unknown) => {
    throw listenError(err as NodeJS.ErrnoException, options.host, options.port);
  });
  const port = (server.address() as AddressInfo).port;
  const host = options.host === "0.0.0.0" || options.host === "::" ? "127.0.0.1" : options.host.includes(":") ? `[${options.host}]` : options.host;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= new Promise<void>((resolve) => {
      dashboard.close();
      server.close(() => resolve());
      server.closeAllConnections();
    }));
  return { url: `${options.tls ? "https" : "http"}://${host}:${port}`, port, close, [Symbol.asyncDispose]: close };
}

/** The API port is taken (or may not be used): which port, and how to pick another. */
export class ApiPortError extends Error {
  override name = "ApiPortError";
  constructor(
    message: string,
    readonly code: string,
    readonly port: number,
  ) {
    super(message);
  }
}

const changePort = "set colony.api.port in .coral/config.yaml or the CORAL_API_PORT environment variable to a free port";

function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  if (err.code === "EADDRINUSE")
    return new ApiPortError(`the colony API cannot listen on ${where}: port ${port} is already in use (another colony or program listens there); ${changePort}`, err.code, port);
  if (err.code === "EACCES")
    return new ApiPortError(`the colony API may not listen on ${where} (port ${port} needs privileges); ${changePort}`, err.code, port);
  if (err.code === "EADDRNOTAVAIL")
    return new ApiPortError(`the colony API cannot listen on ${where}: ${host} is not an address of this machine; set colony.api.host (CORAL_API_HOST)`, err.code, port);
  return err;
}
