// The middleware on real servers started here: node:http with keep-alive,
// Express, Fastify and HTTPS (a self-signed certificate made with openssl).
// Counts are exact; samples are checked for redaction, cut bodies and routes.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import express from "express";
import Fastify from "fastify";
import { afterAll, describe, expect, it } from "vitest";
import { expressMiddleware } from "./express.ts";
import { fastifyPlugin } from "./fastify.ts";
import { instrumentServer } from "./node.ts";
import { resolveRequestOptions, type RequestOptions } from "./options.ts";
import { RequestRecorder, type TrafficSampleData } from "./recorder.ts";

interface Reply {
  status: number;
  body: string;
}

function call(
  mod: typeof http | typeof https,
  port: number,
  path: string,
  options: { method?: string; body?: string; headers?: Record<string, string>; agent?: http.Agent | https.Agent } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = mod.request(
      { host: "127.0.0.1", port, path, method: options.method ?? "GET", agent: options.agent, headers: options.headers, rejectUnauthorized: false } as https.RequestOptions,
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => (body += d));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

function recorder(options: RequestOptions = {}): RequestRecorder {
  return new RequestRecorder(resolveRequestOptions(options));
}

/** Drains until the series add up to `total` requests (the server's 'finish' may come after the client's 'end'). */
async function drained(rec: RequestRecorder, total: number): Promise<Record<string, number>> {
  const sums: Record<string, number> = {};
  let n = 0;
  const deadline = Date.now() + 10_000;
  for (;;) {
    for (const s of rec.red.drain().series) {
      const key = `${s.method} ${s.statusClass} ${s.route}`;
      sums[key] = (sums[key] ?? 0) + s.count;
      n += s.count;
      expect(s.buckets.reduce((a, b) => a + b.count, 0)).toBe(s.count);
    }
    if (n >= total) return sums;
    if (Date.now() > deadline) throw new Error(`${n} of ${total} requests drained in 10 s: ${JSON.stringify(sums)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function listen(server: http.Server | https.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return (server.address() as AddressInfo).port;
}

const closers: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const c of closers) await c();
});

function byId(samples: TrafficSampleData[], path: string): TrafficSampleData {
  const s = samples.find((x) => x.path === path);
  if (!s) throw new Error(`no sample of ${path} among ${samples.map((x) => x.path).join(", ")}`);
  return s;
}

describe("node:http", () => {
  it("counts every request over keep-alive exactly, keeps exactly the share plus every 5xx", async () => {
    const rec = recorder({ sampleRate: 0.1 });
    const server = http.createServer((req, res) => {
      if (req.url === "/boom") {
        res.writeHead(500, { "content-type": "text/plain" });
        res.end("failed");
        return;
      }
      if (req.method === "POST") {
        req.resume();
        req.on("end", () => res.writeHead(201).end("made"));
        return;
      }
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ url: req.url }));
    });
    instrumentServer(() => rec, server);
    const port = await listen(server);
    closers.push(() => new Promise((r) => server.close(r)));
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 1; i <= 30; i++) expect((await call(http, port, `/users/${i}`, { agent })).status).toBe(200);
    expect((await call(http, port, "/orders", { method: "POST", body: "x".repeat(100), agent })).status).toBe(201);
    for (let i = 0; i < 3; i++) expect((await call(http, port, "/boom", { agent })).status).toBe(500);
    agent.destroy();
    expect(await drained(rec, 34)).toEqual({ "GET 2xx /users/{id}": 30, "POST 2xx /orders": 1, "GET 5xx /boom": 3 });
    const samples = rec.takeSamples(100);
    // Requests 10, 20 and 30 are the share (0.1); the three 5xx are kept whatever the share.
    expect(samples.map((s) => [s.path, s.reason])).toEqual([
      ["/users/10", "sampled"],
      ["/users/20", "sampled"],
      ["/users/30", "sampled"],
      ["/boom", "error"],
      ["/boom", "error"],
      ["/boom", "error"],
    ]);
    const boom = samples[3]!;
    expect(boom.status).toBe(500);
    expect(boom.responseBody.toString()).toBe("failed");
    expect(boom.responseHeaders).toContainEqual({ name: "content-type", value: "text/plain" });
    expect(boom.route).toBe("/boom");
    expect(boom.durationMs).toBeGreaterThan(0);
  });

  it("redacts secrets, cuts long bodies, and captures the query", async () => {
    const rec = recorder({ sampleRate: 1, maxBodyBytes: 4096, redactHeaders: ["x-api-key"] });
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        res.setHeader("set-cookie", ["session=abc", "theme=dark"]);
        res.setHeader("x-request-id", "r-1");
        res.write(Buffer.concat(chunks));
        res.end("-tail");
      });
    });
    instrumentServer(() => rec, server);
    const port = await listen(server);
    closers.push(() => new Promise((r) => server.close(r)));
    const big = "a".repeat(6000);
    const reply = await call(http, port, "/echo?x=1&y=2", {
      method: "PUT",
      body: big,
      headers: { authorization: "Bearer s3cret", cookie: "sid=42", "proxy-authorization": "Basic eA==", "x-api-key": "k-1", "x-trace": "t-9" },
    });
    expect(reply.body).toBe(`${big}-tail`);
    await drained(rec, 1);
    const s = byId(rec.takeSamples(10), "/echo?x=1&y=2");
    expect(s.method).toBe("PUT");
    expect(s.route).toBe("/echo");
    const reqHeaders = Object.fromEntries(s.requestHeaders.map((h) => [h.name.toLowerCase(), h.value]));
    expect(reqHeaders).toMatchObject({ authorization: "[redacted]", cookie: "[redacted]", "proxy-authorization": "[redacted]", "x-api-key": "[redacted]", "x-trace": "t-9" });
    expect(s.responseHeaders.filter((h) => h.name.toLowerCase() === "set-cookie")).toEqual([
      { name: "set-cookie", value: "[redacted]" },
      { name: "set-cookie", value: "[redacted]" },
    ]);
    expect(s.responseHeaders).toContainEqual({ name: "x-request-id", value: "r-1" });
    expect(s.requestBody.byteLength).toBe(4096);
    expect(s.requestBodyTruncated).toBe(true);
    expect(s.requestBodySize).toBe(6000);
    expect(s.responseBody.byteLength).toBe(4096);
    expect(s.responseBodyTruncated).toBe(true);
    expect(s.responseBodySize).toBe(6005);
    expect(JSON.stringify(s)).not.toContain("s3cret");
  });
});

describe("Express", () => {
  it("counts per route pattern (mounted routers too), unmatched requests under their normalised path", async () => {
    const rec = recorder({ sampleRate: 1 });
    const app = express();
    app.use(expressMiddleware(() => rec));
    app.use(express.json());
    app.get("/users/:id", (req, res) => void res.json({ id: req.params.id }));
    const api = express.Router();
    api.post("/items/:itemId", (req, res) => void res.status(201).json({ got: req.body as unknown }));
    app.use("/api", api);
    app.get("/fail", () => {
      throw new Error("boom");
    });
    const server = http.createServer(app);
    const port = await listen(server);
    closers.push(() => new Promise((r) => server.close(r)));
    const agent = new http.Agent({ keepAlive: true });
    for (let i = 0; i < 12; i++) expect((await call(http, port, `/users/${i}`, { agent })).status).toBe(200);
    for (let i = 0; i < 5; i++)
      expect((await call(http, port, `/api/items/${i}`, { method: "POST", body: JSON.stringify({ n: i }), headers: { "content-type": "application/json" }, agent })).status).toBe(201);
    for (let i = 0; i < 2; i++) expect((await call(http, port, `/nope/${i}`, { agent })).status).toBe(404);
    expect((await call(http, port, "/fail", { agent })).status).toBe(500);
    agent.destroy();
    expect(await drained(rec, 20)).toEqual({ "GET 2xx /users/{id}": 12, "POST 2xx /api/items/{itemid}": 5, "GET 4xx /nope/{id}": 2, "GET 5xx /fail": 1 });
    const post = byId(rec.takeSamples(100), "/api/items/4");
    expect(post.requestBody.toString()).toBe('{"n":4}');
    expect(post.responseBody.toString()).toBe('{"got":{"n":4}}');
  });
});

describe("Fastify", () => {
  it("counts per route pattern and captures the body Fastify parses", async () => {
    const rec = recorder({ sampleRate: 1 });
    const app = Fastify();
    await app.register(fastifyPlugin(() => rec));
    app.get("/items/:id", async (req) => ({ id: (req.params as { id: string }).id }));
    app.post("/items", async (req, reply) => reply.code(201).send({ made: req.body }));
    app.get("/teapot", async (_req, reply) => reply.code(503).send("later"));
    await app.listen({ port: 0, host: "127.0.0.1" });
    closers.push(() => app.close());
    const port = (app.server.address() as AddressInfo).port;
    const agent = new http.Agent({ keepAlive: true });
    for (let i = 0; i < 9; i++) expect((await call(http, port, `/items/${i}`, { agent })).status).toBe(200);
    for (let i = 0; i < 4; i++)
      expect((await call(http, port, "/items", { method: "POST", body: JSON.stringify({ i }), headers: { "content-type": "application/json" }, agent })).status).toBe(201);
    expect((await call(http, port, "/teapot", { agent })).status).toBe(503);
    expect((await call(http, port, "/missing/7", { agent })).status).toBe(404);
    agent.destroy();
    expect(await drained(rec, 15)).toEqual({ "GET 2xx /items/{id}": 9, "POST 2xx /items": 4, "GET 5xx /teapot": 1, "GET 4xx /missing/{id}": 1 });
    const samples = rec.takeSamples(100);
    const post = samples.filter((s) => s.method === "POST").at(-1)!;
    expect(post.requestBody.toString()).toBe('{"i":3}');
    expect(post.responseBody.toString()).toBe('{"made":{"i":3}}');
    expect(post.route).toBe("/items");
  });
});

describe("HTTPS", () => {
  it("sees what eBPF on syscalls cannot: requests over TLS, counted exactly", async () => {
    const dir = mkdtempSync(join(tmpdir(), "coral-sdk-tls-"));
    closers.push(async () => rmSync(dir, { recursive: true, force: true }));
    const cert = join(dir, "c.crt");
    const key = join(dir, "c.key");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert], { stdio: "ignore" });
    const rec = recorder({ sampleRate: 0.5 });
    const server = https.createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
      res.statusCode = req.url === "/pay" ? 402 : 200;
      res.end("secure");
    });
    instrumentServer(() => rec, server);
    const port = await listen(server);
    closers.push(() => new Promise((r) => server.close(r)));
    const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false });
    for (let i = 0; i < 10; i++) expect((await call(https, port, `/accounts/${i}`, { agent })).status).toBe(200);
    for (let i = 0; i < 4; i++) expect((await call(https, port, "/pay", { agent, headers: { authorization: "Bearer tls-secret" } })).status).toBe(402);
    agent.destroy();
    expect(await drained(rec, 14)).toEqual({ "GET 2xx /accounts/{id}": 10, "GET 4xx /pay": 4 });
    const samples = rec.takeSamples(100);
    expect(samples).toHaveLength(7);
    const pay = byId(samples, "/pay");
    expect(pay.requestHeaders).toContainEqual({ name: "authorization", value: "[redacted]" });
    expect(pay.responseBody.toString()).toBe("secure");
  });
});
