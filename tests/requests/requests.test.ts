// RED metrics end to end: a real node:http server, a real colony, an agent
// tracing the server's requests with eBPF (bpftrace, as root), the per-minute
// summaries through NATS into the colony, and `coral requests` (the built CLI)
// printing them per route. Counts are exact.
import { spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "@coral/agent";
import { testAgent } from "../helpers/agents.ts";
import { runCoral } from "../helpers/cli.ts";
import { createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { bpfSkipReason } from "../debug/helpers.ts";

const server = fileURLToPath(new URL("../../agent/src/observe/http/testdata/server.mjs", import.meta.url));
const skip = bpfSkipReason([]);
if (skip) console.log(`coral requests end to end skipped: ${skip}`);

interface Row {
  method: string;
  route: string;
  requests: number;
  "4xx": number;
  "5xx": number;
  ratePerSec: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  source: string;
}

function get(port: number, path: string, agent: http.Agent | false): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent, headers: agent === false ? { connection: "close" } : {} }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      })
      .on("error", reject);
  });
}

describe.skipIf(skip !== undefined)("coral requests: RED per route from eBPF, agent to colony to CLI", () => {
  let project: TestProject | undefined;
  let agent: RunningAgent | undefined;
  let target: ChildProcess | undefined;
  let port = 0;
  let remote: string[] = [];

  beforeAll(async () => {
    port = await freePort();
    target = spawn(process.execPath, [server, String(port)], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    target.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    await waitFor("the server listening", () => out.includes("listening"));
    project = await createTestProject();
    const colony = await project.start();
    remote = ["--colony-url", colony.url, "--token", project.localToken];
    agent = await testAgent(project, colony.url, "users-api", port, { healthUrl: undefined, httpTracing: true });
    await waitFor("the request tracer running", () => agent!.httpTracing()?.state === "running", { timeoutMs: 90_000 });
  }, 180_000);

  afterAll(async () => {
    await agent?.close();
    await project?.[Symbol.asyncDispose]();
    target?.kill("SIGKILL");
  });

  it("counts every request per route and status, and prints them as a table and as JSON", async () => {
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 2 });
    try {
      for (let i = 0; i < 50; i++) expect(await get(port, `/users/${i + 1}`, keepAlive)).toBe(200);
      for (let i = 0; i < 20; i++) expect(await get(port, `/users/${900 + i}`, false)).toBe(200);
      for (let i = 0; i < 6; i++) expect(await get(port, `/missing/${i}`, keepAlive)).toBe(404);
      for (let i = 0; i < 4; i++) expect(await get(port, "/boom", false)).toBe(500);
      for (let i = 0; i < 3; i++) expect(await get(port, "/slow", keepAlive)).toBe(200);
    } finally {
      keepAlive.destroy();
    }
    // Everything traced, then summarised and sent (the agent summarises every second in tests).
    await waitFor("the requests traced", () => (agent!.httpTracing()?.counts.requests ?? 0) >= 83, { timeoutMs: 180_000 });
    const env = { CORAL_HOME: project!.home };
    const rows = await waitFor(
      "the summaries in the colony",
      async () => {
        const res = await runCoral(["requests", "users-api", "--since", "10m", "--json", ...remote], { env });
        if (res.code !== 0) throw new Error(res.stderr);
        const rows = JSON.parse(res.stdout) as Row[];
        return rows.reduce((n, r) => n + r.requests, 0) >= 83 ? rows : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    const by = Object.fromEntries(rows.map((r) => [`${r.method} ${r.route}`, r]));
    expect(Object.keys(by).sort()).toEqual(["GET /boom", "GET /missing/{id}", "GET /slow", "GET /users/{id}"]);
    expect(by["GET /users/{id}"]).toMatchObject({ requests: 70, "4xx": 0, "5xx": 0, source: "ebpf" });
    expect(by["GET /missing/{id}"]).toMatchObject({ requests: 6, "4xx": 6, "5xx": 0 });
    expect(by["GET /boom"]).toMatchObject({ requests: 4, "4xx": 0, "5xx": 4 });
    expect(by["GET /slow"]!.requests).toBe(3);
    expect(by["GET /slow"]!.p50Ms).toBeGreaterThanOrEqual(49);
    expect(by["GET /slow"]!.p50Ms).toBeLessThan(1000);
    expect(by["GET /users/{id}"]!.ratePerSec).toBeGreaterThan(0);

    const table = await runCoral(["requests", "users-api", "--since", "10m", ...remote], { env });
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^METHOD\s+ROUTE\s+REQUESTS\s+4XX\s+5XX\s+RATE\/S\s+P50 MS\s+P95 MS\s+P99 MS\s+SOURCE$/);
    expect(lines[1]).toMatch(/^GET\s+\/users\/\{id\}\s+70\s+0\s+0\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+ebpf$/);
    console.log(table.stdout);

    // The same series in coral metrics.
    const metrics = await runCoral(["metrics", "users-api", "--since", "10m", "--json", ...remote], { env });
    expect(metrics.stdout).toContain("http_request_duration_ms:GET:5xx:/boom");
    expect(metrics.stdout).toContain("http_request_duration_ms:GET:2xx:/users/:id");

    // A name that is no component is a usage error.
    const unknown = await runCoral(["requests", "nope", ...remote], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown component "nope"');
  }, 480_000);
});
