// Clients that find their colony on first use (and again after a failure), so
// an MCP server started before `coral init` or `coral colony start` still
// answers each tool call with what to do.
import type { DescService } from "@bufbuild/protobuf";
import type { Client } from "@connectrpc/connect";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";

type AnyMethod = (req: unknown, options?: unknown) => unknown;

export function lazyClient<S extends DescService>(service: S, resolve: () => Promise<Client<S>>): Client<S> {
  let pending: Promise<Client<S>> | undefined;
  const get = async () => {
    pending ??= resolve().catch((err: unknown) => {
      pending = undefined;
      throw err;
    });
    return (await pending) as unknown as Record<string, AnyMethod>;
  };
  const client: Record<string, AnyMethod> = {};
  for (const [name, method] of Object.entries(service.method)) {
    client[name] =
      method.methodKind === "unary"
        ? async (req, options) => (await get())[name]!(req, options)
        : // Streaming methods return an async iterable, not a promise.
          async function* (req, options) {
            yield* (await get())[name]!(req, options) as AsyncIterable<unknown>;
          };
  }
  return client as unknown as Client<S>;
}

export function lazyColonyClient(resolve: () => Promise<Client<typeof ColonyService>>): Client<typeof ColonyService> {
  return lazyClient(ColonyService, resolve);
}
