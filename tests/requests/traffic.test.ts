// Requests and traffic through the Coral SDK's middleware, end to end: a real
// app (tests/requests/traffic-app.ts) serving node:http with keep-alive,
// Express, Fastify and HTTPS through the SDK; a real agent that finds the SDK
// by its announcement and drains it; a real colony; the built CLI. Counts are
// exact: every request reaches the agent's RED series (source sdk) and
// `coral requests`, exactly the share (10 %, every tenth request) plus every
// 5xx become samples, `coral traffic` lists and filters them, `coral traffic
// show` prints one with its secrets redacted, and a sample rate out of range
// is refused with a clear error. The MCP tools (coral_query_requests,
// coral_query_traffic, coral_get_traffic_sample) answer the same, through
// `coral mcp server` over stdio and Streamable HTTP.
import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Code } from "@connectrpc/connect";
import type { RunningAgent } from "@coral/agent";
import type { RunningColony } from "@coral/colony";
import { all } from "@coral/common/duckdb";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { TrafficService } from "@coral/proto/gen/coral/colony/v1/traffic_pb";
import { testAgent } from "../helpers/agents.ts";
import { runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject, serviceApi, type TestProject } from "../helpers/colony.ts";
import { rejection } from "../helpers/errors.ts";
import { waitFor } from "../helpers/wait.ts";
import { freePort } from "../helpers/ports.ts";
import { bpfSkipReason } from "../debug/helpers.ts";
import { startTrafficApp, type TrafficAppPorts } from "./start-traffic-app.ts";
import { callTool, httpClient, startHttpServer, stdioClient, type McpEnv } from "../mcp/helpers.ts";

// Where eBPF runs (root, bpftrace), the agent traces the same plaintext requests too: the SDK's figures must stand alone, not doubled.
const ebpf = bpfSkipReason([]) === undefined;

interface ListedSample {
  id: string;
  method: string;
  path: string;
  route: string;
  status: number;
  durationMs: number;
  reason: string;
}

function call(mod: typeof http | typeof https, port: number, path: string, agent: http.Agent, options: { method?: string; body?: string; headers?: Record<string, string> } = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = mod.request({ host: "127.0.0.1", port, path, method: options.method ?? "GET", agent, headers: options.headers, rejectUnauthorized: false } as https.RequestOptions, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

describe("coral traffic: SDK middleware → agent → colony → CLI", () => {
  let project: TestProject | undefined;
  let colony: RunningColony;
  let agent: RunningAgent | undefined;
  let app: ChildProcess | undefined;
  let dir = "";
  let ports: TrafficAppPorts;
  let remote: string[] = [];
  let env: Record<string, string> = {};
  const coral = async (args: string[]) => runCoral([...args, ...remote], { env });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "coral-traffic-"));
    const started = await startTrafficApp("shop-api", dir);
    app = started.app;
    const { announce } = started;
    const ready = { ports: started.ports, announcement: started.announcement };
    expect(ready.announcement).not.toBeNull();
    ports = ready.ports;
    project = await createTestProject();
    colony = await project.start();
    remote = ["--colony-url", colony.url, "--token", project.localToken];
    env = { CORAL_HOME: project.home };
    // No HTTP health probe: it would be a request of the app's own.
    agent = await testAgent(project, colony.url, "shop-api", ports.http, { healthUrl: undefined, sdkAnnounceDir: announce, httpTracing: ebpf });
    await waitFor("the agent to reach the SDK's middleware", () => agent!.traffic().sampleRate === 0.1 && agent!.traffic().sdkInstrumented, { timeoutMs: 60_000 });
    if (ebpf) await waitFor("the request tracer running", () => agent!.httpTracing()?.state === "running", { timeoutMs: 90_000 });
  }, 180_000);

  afterAll(async () => {
    await agent?.close();
    await project?.[Symbol.asyncDispose]();
    app?.kill("SIGKILL");
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("counts every request exactly (HTTPS too), keeps exactly the share plus every 5xx, lists and shows them, refuses a bad rate", async () => {
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const tls = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    try {
      // The SDK samples every tenth request (requests 10, 20, … 60) and keeps every 5xx (46-48).
      for (let i = 1; i <= 40; i++) expect(await call(http, ports.http, `/users/${i}`, keepAlive)).toBe(200);
      for (let i = 0; i < 5; i++) expect(await call(http, ports.http, "/checkout", keepAlive, { method: "POST", body: '{"sku":"A1"}' })).toBe(201);
      for (let i = 0; i < 3; i++) expect(await call(http, ports.http, "/boom", keepAlive)).toBe(500);
      for (let i = 0; i < 7; i++) expect(await call(http, ports.express, `/orders/${i}`, keepAlive)).toBe(200);
      for (let i = 0; i < 6; i++) expect(await call(http, ports.fastify, `/items/${i}`, keepAlive)).toBe(200);
      for (let i = 0; i < 4; i++) expect(await call(https, ports.https, `/secure/${i}`, tls)).toBe(200);
    } finally {
      keepAlive.destroy();
      tls.destroy();
    }
    await waitFor("65 requests drained by the agent", () => agent!.traffic().requests >= 65, { timeoutMs: 60_000 });
    expect(agent!.traffic().requests).toBe(65);
    // eBPF saw the 61 plaintext ones as well (and the agent's own calls to the SDK); none of them is counted again below.
    if (ebpf) await waitFor("the tracer to see the plaintext requests", () => (agent!.httpTracing()?.counts.requests ?? 0) >= 61, { timeoutMs: 60_000 });

    // RED per route in the colony, counted by the SDK (the agent summarises every second here).
    interface Row {
      method: string;
      route: string;
      requests: number;
      "5xx": number;
      source: string;
    }
    const rows = await waitFor(
      "the summaries in the colony",
      async () => {
        const res = await coral(["requests", "shop-api", "--json"]);
        if (res.code !== 0) throw new Error(res.stderr);
        const list = JSON.parse(res.stdout) as Row[];
        return list.reduce((n, r) => n + r.requests, 0) >= 65 ? list : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );
    const red = Object.fromEntries(rows.map((r) => [`${r.method} ${r.route}`, [r.requests, r["5xx"], r.source]]));
    expect(red).toEqual({
      "GET /users/{id}": [40, 0, "sdk"],
      "POST /checkout": [5, 0, "sdk"],
      "GET /boom": [3, 3, "sdk"],
      "GET /orders/{orderid}": [7, 0, "sdk"],
      "GET /items/{id}": [6, 0, "sdk"],
      "GET /secure/{id}": [4, 0, "sdk"],
    });

    // Samples: the share (every tenth request) and every 5xx, newest first.
    const listed = await waitFor(
      "the samples at the agent",
      async () => {
        const res = await coral(["traffic", "shop-api", "--json", "--limit", "100"]);
        if (res.code !== 0) throw new Error(res.stderr);
        const list = JSON.parse(res.stdout) as ListedSample[];
        return list.length >= 9 ? list : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(listed.map((s) => [s.method, s.path, s.status, s.reason]).reverse()).toEqual([
      ["GET", "/users/10", 200, "sampled"],
      ["GET", "/users/20", 200, "sampled"],
      ["GET", "/users/30", 200, "sampled"],
      ["GET", "/users/40", 200, "sampled"],
      ["GET", "/boom", 500, "error"],
      ["GET", "/boom", 500, "error"],
      ["GET", "/boom", 500, "error"],
      ["GET", "/orders/1", 200, "sampled"],
      ["GET", "/items/4", 200, "sampled"],
    ]);
    expect(listed.find((s) => s.path === "/orders/1")!.route).toBe("/orders/{orderid}");

    const errors = await coral(["traffic", "shop-api", "--status", "5xx", "--json"]);
    expect(errors.code, errors.stderr).toBe(0);
    expect((JSON.parse(errors.stdout) as ListedSample[]).map((s) => s.path)).toEqual(["/boom", "/boom", "/boom"]);
    const table = await coral(["traffic", "shop-api", "--path", "/users", "--limit", "2"]);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^TIME\s+METHOD\s+PATH\s+STATUS\s+DURATION\s+ID$/);
    expect(lines[1]).toMatch(/^\S+ \S+\s+GET\s+\/users\/40\s+200\s+[\d.]+ ms\s+shop-api\.[0-9a-f]+$/);
    expect(lines[2]).toMatch(/\/users\/30/);
    expect(lines[3]).toMatch(/more samples match/);

    // A rate out of range is refused at the edge, with what is allowed.
    for (const bad of ["1.5", "-0.1"]) {
      const res = await coral(["traffic", "configure", "shop-api", "--sample-rate", bad]);
      expect(res.code).toBe(2);
      expect(res.stderr).toContain("sample_rate: must be from 0 to 1");
    }
    const bogus = await coral(["traffic", "shop-api", "--limit", "5000"]);
    expect(bogus.code).not.toBe(0);

    // Every request now: a POST with secrets, shown in full with them redacted.
    const configured = await coral(["traffic", "configure", "shop-api", "--sample-rate", "1", "--json"]);
    expect(configured.code, configured.stderr).toBe(0);
    expect(JSON.parse(configured.stdout)).toMatchObject({ sampleRate: 1, deliveredToSdk: true });
    const again = new http.Agent({ keepAlive: false });
    expect(
      await call(http, ports.http, "/checkout?coupon=SPRING", again, {
        method: "POST",
        body: '{"sku":"B2","qty":3}',
        headers: { authorization: "Bearer live-secret-token", cookie: "session=s3cr3t", "x-api-key": "key-123", "content-type": "application/json" },
      }),
    ).toBe(201);
    const post = await waitFor(
      "the POST sample",
      async () => {
        const res = await coral(["traffic", "shop-api", "--method", "post", "--path", "/checkout", "--json"]);
        if (res.code !== 0) throw new Error(res.stderr);
        return (JSON.parse(res.stdout) as ListedSample[]).find((s) => s.path === "/checkout?coupon=SPRING");
      },
      { timeoutMs: 60_000 },
    );
    const shown = await coral(["traffic", "show", post.id]);
    expect(shown.code, shown.stderr).toBe(0);
    console.log(shown.stdout);
    expect(shown.stdout).toContain("POST /checkout?coupon=SPRING");
    expect(shown.stdout).toMatch(/^authorization: \[redacted\]$/m);
    expect(shown.stdout).toMatch(/^cookie: \[redacted\]$/m);
    expect(shown.stdout).toMatch(/^x-api-key: \[redacted\]$/m);
    expect(shown.stdout).toMatch(/^Set-Cookie: \[redacted\]$/im);
    expect(shown.stdout).toContain('{"sku":"B2","qty":3}');
    expect(shown.stdout).toContain('{"order":7,"received":20}');
    expect(shown.stdout).toContain("Response 201");
    for (const secret of ["live-secret-token", "s3cr3t", "key-123", "cart=1"]) expect(shown.stdout).not.toContain(secret);
    const json = await coral(["traffic", "show", post.id, "--json"]);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ service: "shop-api", method: "POST", status: 201, requestBody: '{"sku":"B2","qty":3}', requestBodyTruncated: false });

    const missing = await coral(["traffic", "show", "shop-api.00000000deadbeef"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("no traffic sample shop-api.00000000deadbeef");
  }, 480_000);

  it("checks every field at the colony's edge, lets a read token query but not configure, and audits configure", async () => {
    const admin = serviceApi(TrafficService, colony.url, project!.localToken);
    const refused: [Promise<unknown>, string][] = [
      [admin.queryTraffic({ serviceName: "shop-api", limit: 5000 }), "limit: must be from 1 to 1000 samples, got 5000"],
      [admin.queryTraffic({ serviceName: "shop-api", status: "7xx" }), 'status: must be a status code from 100 to 599 ("404") or a class ("5xx"), got "7xx"'],
      [admin.queryTraffic({ serviceName: "shop-api", pathPrefix: "checkout" }), 'path_prefix: must start with "/" and be at most 2048 characters, got "checkout"'],
      [admin.queryTraffic({ serviceName: "shop-api", method: "GET /" }), 'method: must be an HTTP method such as GET or POST, got "GET /"'],
      [admin.queryTraffic({ serviceName: "" }), "service_name: required (a component name from coral status)"],
      [admin.configureTraffic({ serviceName: "shop-api", sampleRate: Number.NaN }), "sample_rate: must be from 0 to 1 (0.05 keeps 5 % of requests; 5xx are always kept), got NaN"],
      [admin.configureTraffic({ serviceName: "shop-api", sampleRate: 2 }), "sample_rate: must be from 0 to 1 (0.05 keeps 5 % of requests; 5xx are always kept), got 2"],
      [admin.getTrafficSample({ id: "no-dot" }), 'id: not a traffic sample id (<service>.<hex>, as coral traffic lists it), got "no-dot"'],
    ];
    for (const [call, message] of refused) {
      const err = await rejection(call);
      expect([err.code, err.rawMessage]).toEqual([Code.InvalidArgument, message]);
    }
    const unknown = await rejection(admin.queryTraffic({ serviceName: "nope" }));
    expect(unknown.code).toBe(Code.NotFound);

    const { token } = await colonyApi(colony.url, project!.localToken).createToken({ name: "viewer", scope: TokenScope.READ });
    const viewer = serviceApi(TrafficService, colony.url, token);
    const listed = await viewer.queryTraffic({ serviceName: "shop-api", status: "500" });
    expect(listed.samples.map((s) => s.status)).toEqual([500, 500, 500]);
    expect(listed.agentId).toBe(agent!.agentId);
    const denied = await rejection(viewer.configureTraffic({ serviceName: "shop-api", sampleRate: 0.5 }));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.rawMessage).toMatch(/ConfigureTraffic needs an admin token; "viewer" has scope read/);

    const audit = await colony.store.read((c) => all(c, "SELECT actor, action, target FROM audit_log WHERE action LIKE 'traffic.%' ORDER BY \"at\""));
    expect(audit.map((r) => [r.actor, r.action, r.target])).toEqual([
      ["local", "traffic.configure", "shop-api"],
      ["local", "traffic.configure.done", "shop-api"],
    ]);
  }, 120_000);

  // What the first test left: its 65 requests and the POST with secrets (66), the 9 samples of 10 % and the POST's (rate 1 since).
  it("answers the MCP tools over stdio and HTTP: RED per route, sampled requests with filters, one sample in full; bad arguments refused with what is allowed", async () => {
    const where: McpEnv = { cwd: project!.dir, env: { CORAL_HOME: project!.home, CORAL_API_PORT: String(new URL(colony.url).port) } };
    const { client } = await stdioClient(where);
    const call = callTool;
    const rows = (text: string) => text.split("\n").filter((l) => l.startsWith("- "));
    try {
      // The POST the first test made last reaches the colony's summaries within seconds.
      let last = "";
      const red = await waitFor(
        "the 66th request in the colony's RED series",
        async () => {
          const r = await call(client, "coral_query_requests", { service: "shop-api", since: "1h" });
          last = r.text;
          if (r.isError) throw new Error(r.text);
          return /: 66 requests on /.test(r.text) ? r : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 1000 },
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}; the last answer:\n${last}`);
      });
      expect(red.text).toMatch(/^shop-api: requests \S+Z → \S+Z: 66 requests on 6 route\(s\), 0 4xx, 3 5xx \(4\.545% errors\), busiest first\./);
      const routes = rows(red.text).map((l) => /^- (\S+ \S+): (\d+) requests, 0 4xx, (\d+) 5xx \(\d+(?:\.\d+)?% errors\), [\d.]+\/s, p50 [\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms \((\w+)\)$/.exec(l)?.slice(1));
      expect(routes).toEqual([
        ["GET /users/{id}", "40", "0", "sdk"],
        ["GET /orders/{orderid}", "7", "0", "sdk"],
        ["POST /checkout", "6", "0", "sdk"],
        ["GET /items/{id}", "6", "0", "sdk"],
        ["GET /secure/{id}", "4", "0", "sdk"],
        ["GET /boom", "3", "3", "sdk"],
      ]);
      expect(rows((await call(client, "coral_query_requests", { service: "shop-api", since: "1h", route: "boom" })).text)).toEqual([expect.stringMatching(/^- GET \/boom: 3 requests, 0 4xx, 3 5xx \(100% errors\), /)]);
      const unknown = await call(client, "coral_query_requests", { service: "nope" });
      expect(unknown.isError).toBe(true);
      expect(unknown.text).toMatch(/no component named "nope": the colony knows shop-api/);

      const errors = await call(client, "coral_query_traffic", { service: "shop-api", status: "5xx", since: "1h" });
      expect(errors.isError, errors.text).toBe(false);
      expect(errors.text).toMatch(/^shop-api: 3 sampled request\(s\) since \S+Z \(status=5xx\), newest first; the SDK keeps 100 % of requests and every 5xx\.\n/);
      expect(rows(errors.text)).toEqual(Array.from({ length: 3 }, () => expect.stringMatching(/^- \S+Z GET \/boom → 500 in [\d.]+ ms \(error\) id=shop-api\.[0-9a-f]+$/)));
      const users = await call(client, "coral_query_traffic", { service: "shop-api", path: "/users", limit: 2, since: "1h" });
      expect(users.text).toMatch(/^shop-api: 2\+ sampled request\(s\) since \S+ \(path=\/users\)/);
      expect(rows(users.text).map((l) => / GET (\S+) → 200 /.exec(l)?.[1])).toEqual(["/users/40", "/users/30"]);
      expect(users.text).toContain("More samples match: narrow path/method/status or since, or lower limit.");

      const posts = await call(client, "coral_query_traffic", { service: "shop-api", method: "post", path: "/checkout", since: "1h" });
      expect(posts.text).toContain("(path=/checkout, method=POST)");
      const id = / POST \/checkout\?coupon=SPRING → 201 in [\d.]+ ms \(sampled\) id=(\S+)$/m.exec(posts.text)?.[1];
      expect(id, posts.text).toBeDefined();
      const shown = await call(client, "coral_get_traffic_sample", { id });
      expect(shown.isError, shown.text).toBe(false);
      expect(shown.text).toMatch(new RegExp(`^POST /checkout\\?coupon=SPRING \\(route /checkout\\) → 201 in [\\d.]+ ms at \\S+Z, service shop-api, kept because it was sampled; id ${id}\\.\\nRequest headers:\\n`));
      for (const header of ["authorization", "cookie", "x-api-key", "set-cookie"]) expect(shown.text).toMatch(new RegExp(`^ {2}${header}: \\[redacted\\]$`, "im"));
      expect(shown.text).toContain('Request body (20 bytes):\n{"sku":"B2","qty":3}\nResponse headers:');
      expect(shown.text).toMatch(/\nResponse body \(\d+ bytes\):\n\{"order":7,"received":20\}$/);
      for (const secret of ["live-secret-token", "s3cr3t", "key-123", "cart=1"]) expect(shown.text).not.toContain(secret);
      const missing = await call(client, "coral_get_traffic_sample", { id: "shop-api.00000000deadbeef" });
      expect(missing.isError).toBe(true);
      expect(missing.text).toContain("no traffic sample shop-api.00000000deadbeef");

      const refused: [string, Record<string, unknown>, RegExp][] = [
        ["coral_query_traffic", { service: "shop-api", status: "7xx" }, /must be a status code from 100 to 599 \("404"\) or a class \("5xx"\), got "7xx"/],
        ["coral_query_traffic", { service: "shop-api", path: "checkout" }, /must start with "\/" and be at most 2048 characters, got "checkout"/],
        ["coral_query_traffic", { service: "shop-api", method: "GET /" }, /must be an HTTP method such as GET or POST/],
        ["coral_query_traffic", { service: "shop-api", limit: 5000 }, /limit/],
        ["coral_query_traffic", { service: "shop-api", path_prefix: "/x" }, /unknown argument "path_prefix" \(accepted: service, path, method, status, since, limit\)/],
        ["coral_get_traffic_sample", { id: "no-dot" }, /Must be a sample id "<service>\.<hex>", as coral_query_traffic lists it/],
        ["coral_query_requests", { service: "shop-api", since: "soon" }, /Must be an ISO time like/],
      ];
      for (const [name, args, message] of refused) {
        const r = await call(client, name, args);
        expect(r.isError, `${name} ${JSON.stringify(args)}: ${r.text}`).toBe(true);
        expect(r.text).toMatch(message);
      }
    } finally {
      await client.close();
    }

    // Over Streamable HTTP, with a read token the server forwards to the colony's TrafficService and ColonyService.
    const { token } = await colonyApi(colony.url, project!.localToken).createToken({ name: "assistant", scope: TokenScope.READ });
    await using server = await startHttpServer(where, await freePort());
    const remote = await httpClient(server.url, token);
    try {
      expect(rows((await call(remote, "coral_query_traffic", { service: "shop-api", status: "500", since: "1h" })).text)).toHaveLength(3);
      expect((await call(remote, "coral_query_requests", { service: "shop-api", since: "1h" })).text).toMatch(/: 66 requests on 6 route\(s\)/);
    } finally {
      await remote.close();
    }
  }, 240_000);
});
