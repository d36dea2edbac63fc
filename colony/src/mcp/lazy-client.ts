// A colony client that finds its colony on first use (and again after a
// failure), so an MCP server started before `coral init` or `coral colony
// start` still answers each tool call with what to do.
import type { Client } from "@connectrpc/connect";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";

type ColonyClient = Client<typeof ColonyService>;

export function lazyColonyClient(resolve: () => Promise<ColonyClient>): ColonyClient {
  let pending: Promise<ColonyClient> | undefined;
  const get = () => {
    pending ??= resolve().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
  const client: Record<string, (req: unknown, options?: unknown) => Promise<unknown>> = {};
  for (const name of Object.keys(ColonyService.method)) {
    client[name] = async (req, options) => {
      const real = (await get()) as unknown as Record<string, (req: unknown, options?: unknown) => Promise<unknown>>;
      return real[name]!(req, options);
    };
  }
  return client as unknown as ColonyClient;
}
