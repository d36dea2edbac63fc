// The SDK's Connect server on localhost: CoralAppService for anyone on the
// machine, flag and rollback control only with the token from the
// announcement file.
import { timingSafeEqual } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type Interceptor, type ServiceImpl } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { FeatureFlagControlService } from "@coral/proto/gen/coral/control/v1/flags_pb";
import { RollbackControlService } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { CoralAppService } from "@coral/proto/gen/coral/sdk/v1/sdk_pb";
import { sdkTokenHeader } from "./announce.ts";

export interface SdkServerHandlers {
  app: ServiceImpl<typeof CoralAppService>;
  flags: ServiceImpl<typeof FeatureFlagControlService>;
  rollback: ServiceImpl<typeof RollbackControlService>;
}

function tokenInterceptor(token: string): Interceptor {
  const expected = Buffer.from(token);
  return (next) => async (req) => {
    if (req.service.typeName === CoralAppService.typeName) return next(req);
    const given = Buffer.from(req.header.get(sdkTokenHeader) ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new ConnectError(`missing or wrong ${sdkTokenHeader}: the token is in the SDK's announcement file`, Code.Unauthenticated);
    return next(req);
  };
}

export interface SdkServer {
  port: number;
  close(): Promise<void>;
}

export async function startSdkServer(handlers: SdkServerHandlers, options: { host: string; port: number; token: string }): Promise<SdkServer> {
  const handler = connectNodeAdapter({
    routes: (router) => {
      router.service(CoralAppService, handlers.app);
      router.service(FeatureFlagControlService, handlers.flags);
      router.service(RollbackControlService, handlers.rollback);
    },
    interceptors: [tokenInterceptor(options.token)],
    readMaxBytes: 4 * 1024 * 1024,
  });
  const server = http.createServer(handler);
  server.listen(options.port, options.host);
  await Promise.race([
    once(server, "listening"),
    once(server, "error").then(([err]) => {
      throw err;
    }),
  ]);
  // The app's own lifetime decides; the SDK never keeps it running.
  server.unref();
  let closing: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
