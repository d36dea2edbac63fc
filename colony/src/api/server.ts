// The colony's Connect API on HTTP/1.1 (or HTTPS with the configured cert).
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { createContextValues } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { MeshService } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { ControlService } from "@coral/proto/gen/coral/control/v1/control_pb";
import { controlService } from "../control/index.ts";
import { colonyAuthInterceptor, peerAddressKey, type TokenLookup } from "../auth/index.ts";
import { colonyService } from "./colony-service.ts";
import { debugService } from "../debug/service.ts";
import type { ApiDeps } from "./deps.ts";
import { meshService } from "../agents/mesh-service.ts";
import { meshAdminService } from "../mesh/admin-service.ts";
import { MeshAdminService } from "@coral/proto/gen/coral/mesh/v1/peers_pb";

export interface ApiServerOptions {
  host: string;
  port: number;
  tls?: { cert: string; key: string };
  localToken: string;
  /** Addresses besides loopback that are this machine (the colony's mesh address). */
  localAddresses?: string[];
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
  const handler = connectNodeAdapter({
    routes: (router) => {
      router.service(ColonyService, colonyService(deps));
      router.service(MeshService, meshService(deps));
      router.service(MeshAdminService, meshAdminService(deps));
      if (deps.control)
        router.service(
          ControlService,
          controlService(deps.control, (actor, action, target, details) => deps.store.appendAudit({ at: new Date(), actor, action, target, details })),
        );
      if (deps.debug) router.service(DebugService, debugService(deps.debug));
    },
    interceptors: [colonyAuthInterceptor({ localToken: options.localToken, tokens, localAddresses: options.localAddresses })],
    contextValues: (req) => createContextValues().set(peerAddressKey, req.socket.remoteAddress ?? ""),
    readMaxBytes: 1024 * 1024,
    jsonOptions: { ignoreUnknownFields: false },
  });
  const server = options.tls
    ? https.createServer({ cert: await readFile(options.tls.cert), key: await readFile(options.tls.key) }, handler)
    : http.createServer(handler);
  server.listen(options.port, options.host);
  await Promise.race([
    once(server, "listening"),
    once(server, "error").then(([err]) => {
      throw err;
    }),
  ]);
  const port = (server.address() as AddressInfo).port;
  const host = options.host === "0.0.0.0" || options.host === "::" ? "127.0.0.1" : options.host.includes(":") ? `[${options.host}]` : options.host;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }));
  return { url: `${options.tls ? "https" : "http"}://${host}:${port}`, port, close, [Symbol.asyncDispose]: close };
}
