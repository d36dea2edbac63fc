/**
 * A Fastify (4 and 5) plugin: `await app.register(coral.fastify)`. Its
 * onRequest hook watches the raw request and response for every route of
 * the instance (the plugin skips Fastify's encapsulation, as fastify-plugin
 * does, without depending on it); the route is the matched pattern
 * (routeOptions.url), unmatched requests count under their normalised path.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestRecorder } from "./recorder.ts";

interface FastifyRequestLike {
  raw: IncomingMessage;
  routeOptions?: { url?: string };
  routerPath?: string;
}

interface FastifyReplyLike {
  raw: ServerResponse;
}

interface FastifyLike {
  addHook(name: "onRequest", hook: (request: FastifyRequestLike, reply: FastifyReplyLike, done: () => void) => void): unknown;
}

export type FastifyPlugin = ((instance: FastifyLike, options: unknown, done: () => void) => void) & { [key: symbol]: unknown };

export function fastifyPlugin(recorder: () => RequestRecorder, onInstall?: () => void): FastifyPlugin {
  const plugin = ((instance: FastifyLike, _options: unknown, done: () => void) => {
    onInstall?.();
    instance.addHook("onRequest", (request, reply, hookDone) => {
      recorder().watch(request.raw, reply.raw, () => request.routeOptions?.url ?? request.routerPath);
      hookDone();
    });
    done();
  }) as FastifyPlugin;
  plugin[Symbol.for("skip-override")] = true;
  plugin[Symbol.for("fastify.display-name")] = "coral";
  plugin[Symbol.for("plugin-meta")] = { name: "coral", fastify: ">=4" };
  return plugin;
}
