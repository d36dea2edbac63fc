// A real Node app using the Coral SDK's request middleware on four servers at
// once, for tests/requests/traffic.test.ts:
//   node --conditions=coral-source --import tsx traffic-app.ts <service> <cert> <key>
// node:http (instrumentServer; the port the agent observes), Express
// (app.use(coral.express())), Fastify (app.register(coral.fastify)) and
// node:https (instrumentServer). Prints one JSON line with the ports.
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import express from "express";
import Fastify from "fastify";
import { coral } from "@coral/sdk";

const [service = "shop-api", cert, key] = process.argv.slice(2);
const init = await coral.init({ serviceName: service, version: "1.0.0", requests: { redactHeaders: ["x-api-key"] } });

const listen = async (server: http.Server | https.Server): Promise<number> => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
};

const plain = coral.instrumentServer(
  http.createServer((req, res) => {
    if (req.url === "/health") return void res.end("ok");
    if (req.url === "/boom") {
      res.writeHead(500, { "content-type": "application/json" });
      return void res.end(JSON.stringify({ error: "payment backend down" }));
    }
    if (req.method === "POST") {
      let body = "";
      req.setEncoding("utf8");
      req.on("data", (d: string) => (body += d));
      req.on("end", () => {
        res.writeHead(201, { "content-type": "application/json", "set-cookie": "cart=1" });
        res.end(JSON.stringify({ order: 7, received: body.length }));
      });
      return;
    }
    res.setHeader("content-type", "text/plain");
    res.end(`hello ${req.url}`);
  }),
);

const app = express();
app.use(coral.express());
app.get("/orders/:orderId", (req, res) => void res.json({ order: req.params.orderId }));
const expressServer = http.createServer(app);

const fastify = Fastify();
await fastify.register(coral.fastify);
fastify.get("/items/:id", async (req) => ({ item: (req.params as { id: string }).id }));

const secure = coral.instrumentServer(https.createServer({ cert: readFileSync(cert!), key: readFileSync(key!) }, (req, res) => res.end(`secure ${req.url}`)));

const ports = { http: await listen(plain), express: await listen(expressServer), https: await listen(secure), fastify: 0 };
await fastify.listen({ port: 0, host: "127.0.0.1" });
ports.fastify = (fastify.server.address() as AddressInfo).port;
console.log(JSON.stringify({ event: "ready", ports, sdkPort: coral.port, announcement: init.announcement ?? null, announceError: init.announceError ?? null }));
process.on("SIGTERM", () => void coral.shutdown().then(() => process.exit(0)));
