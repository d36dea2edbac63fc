// A ControlService client for the flags and rollback commands, found like
// every read command's colony (flags, env, the local colony).
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ControlService } from "@coral/proto/gen/coral/control/v1/control_pb";
import { explainError, resolveTarget, type ColonyTarget, type RemoteOptions } from "./remote.ts";

export type ControlClient = Client<typeof ControlService>;

export function controlClient(target: ColonyTarget): ControlClient {
  const bearer: Interceptor = (next) => (req) => {
    if (target.token) req.header.set("authorization", `Bearer ${target.token}`);
    return next(req);
  };
  return createClient(ControlService, createConnectTransport({ baseUrl: target.url, httpVersion: "1.1", interceptors: [bearer] }));
}

export async function withControl<T>(options: RemoteOptions, run: (client: ControlClient, target: ColonyTarget) => Promise<T>): Promise<T> {
  const target = await resolveTarget(options);
  try {
    return await run(controlClient(target), target);
  } catch (err) {
    throw explainError(err, target);
  }
}
