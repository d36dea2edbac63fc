// The request tracer against real servers (node:http, Python's http.server)
// and real clients, through bpftrace as root. Counts are asserted exactly.
import { spawnSync } from "node:child_process";
import http from "node:http";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";
import { pollUntil } from "@coral/common/async";
import { afterEach, describe, expect, it } from "vitest";
import { kernelConnectionsUnavailable } from "../kernel-connections.ts";
import { startListeningServer } from "../testing.ts";
import type { ServedRequest } from "./pairing.ts";
import { HttpTracer } from "./tracer.ts";

const testdata = fileURLToPath(new URL("./testdata/", import.meta.url));
const noBpf = kernelConnectionsUnavailable();
const python = spawnSync("python3", ["--version"]).status === 0 ? "python3" : null;
if (noBpf) console.log(`request tracer tests skipped: ${noBpf}`);

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

/** Starts a server process and resolves with it and its port once it listens. */
const startServer = (cmd: string, args: string[]) => startListeningServer(cmd, args, (child) => cleanup.push(() => void child.kill("SIGKILL")));

async function startTracer(pids: () => number[], routeCap?: number): Promise<{ tracer: HttpTracer; seen: ServedRequest[] }> {
  const tracer = new HttpTracer({ pids, routeCap });
  cleanup.push(() => tracer.stop());
  const seen: ServedRequest[] = [];
  tracer.on("requests", (list) => seen.push(...list));
  const status = await tracer.start();
  expect(status.state, status.reason).toBe("running");
  return { tracer, seen };
}

/** One GET; resolves with the status and the time the client measured (ms). */
function get(port: number, path: string, agent: http.Agent | false): Promise<{ status: number; ms: number }> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent, headers: agent === false ? { connection: "close" } : {} }, (res) => {
        res.resume();
        res.on("end", () => resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
      })
      .on("error", reject);
  });
}

/** Raw bytes on one connection; resolves when the server closes it or after `replies` status lines. */
function raw(port: number, chunks: string[], replies: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, "127.0.0.1");
    let got = "";
    const done = () => {
      sock.destroy();
      resolve(got);
    };
    sock.on("data", (d) => {
      got += d.toString("latin1");
      if ((got.match(/HTTP\/1\.1 \d{3}/g) ?? []).length >= replies) done();
    });
    sock.on("close", done);
    sock.on("error", reject);
    sock.on("connect", async () => {
      for (const [i, c] of chunks.entries()) {
        sock.write(Buffer.from(c, "latin1"));
        // A split read: the server reads the first part before the rest is sent.
        if (i < chunks.length - 1) await new Promise((r) => setTimeout(r, 50));
      }
    });
  });
}

function tally(seen: ServedRequest[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of seen) {
    const k = `${r.method} ${r.route} ${r.status}`;
    out[k] = (out[k] ?? 0) + 1;
  }
  return out;
}

const waitCount = (seen: ServedRequest[], n: number, what: string) =>
  pollUntil(() => (seen.length >= n ? seen.length : undefined), { timeoutMs: 30_000, intervalMs: 50, what });

describe.skipIf(noBpf !== null)(`HTTP requests from syscalls (bpftrace, as root)${noBpf ? ` — skipped: ${noBpf}` : ""}`, () => {
  it("node:http: exact counts per route and status over keep-alive and new connections, durations as the client measured, outbound calls not counted", async () => {
    const upstream = await startServer(process.execPath, [`${testdata}server.mjs`, "0"]);
    const { child, port } = await startServer(process.execPath, [`${testdata}server.mjs`, "0", String(upstream.port)]);
    const { tracer, seen } = await startTracer(() => [child.pid!]);
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 2 });
    cleanup.push(() => keepAlive.destroy());
    // 50 distinct ids over keep-alive, 30 over a new connection each.
    for (let i = 0; i < 50; i++) expect((await get(port, `/users/${1000 + i}?q=${i}`, keepAlive)).status).toBe(200);
    for (let i = 0; i < 30; i++) expect((await get(port, `/users/${5000 + i}`, false)).status).toBe(200);
    await Promise.all(Array.from({ length: 10 }, (_, i) => get(port, `/missing/${i}`, keepAlive)));
    for (let i = 0; i < 5; i++) expect((await get(port, "/boom", i % 2 ? keepAlive : false)).status).toBe(500);
    for (let i = 0; i < 3; i++) expect((await get(port, "/proxy", keepAlive)).status).toBe(200);
    const slow: number[] = [];
    for (let i = 0; i < 5; i++) slow.push((await get(port, "/slow", keepAlive)).ms);
    await waitCount(seen, 103, "all requests traced");
    expect(tally(seen)).toEqual({
      "GET /users/{id} 200": 80,
      "GET /missing/{id} 404": 10,
      "GET /boom 500": 5,
      "GET /proxy 200": 3,
      "GET /slow 200": 5,
    });
    // The proxy's own GET to the upstream is a client call, not a served request.
    expect(tracer.status().counts.client).toBeGreaterThanOrEqual(3);
    expect(tracer.status().counts.unparsed).toBe(0);
    const traced = seen.filter((r) => r.route === "/slow").map((r) => r.durationMs);
    for (const [i, ms] of traced.entries()) {
      expect(ms).toBeGreaterThanOrEqual(49);
      // What the server saw is inside what the client saw.
      expect(ms).toBeLessThanOrEqual(slow[i]! + 1);
    }
    console.log(`/slow: traced ${traced.map((x) => x.toFixed(2)).join(", ")} ms; client ${slow.map((x) => x.toFixed(2)).join(", ")} ms`);
  }, 180_000);

  it("pipelined requests, a request line split across reads, and garbage on the port (unparsed, no crash)", async () => {
    const { child, port } = await startServer(process.execPath, [`${testdata}server.mjs`, "0"]);
    const { tracer, seen } = await startTracer(() => [child.pid!]);
    const pipelined = await raw(port, ["GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\nGET /users/2 HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"], 3);
    expect(pipelined.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 200", "HTTP/1.1 200", "HTTP/1.1 404"]);
    await raw(port, ["GE", "T /users/3 HTTP/1.1\r\nHost: x\r\n\r\n"], 1);
    await raw(port, ["GET /users/4 HT", "TP/1.1\r\nHost: x\r\n\r\n"], 1);
    // Not HTTP: node answers 400 and closes; the read is unparsed.
    await raw(port, ["\x16\x03\x01\x00\xa5garbage\x00\xff\r\n\r\n"], 1);
    await raw(port, ["SSH-2.0-OpenSSH_9.2\r\n"], 1);
    await waitCount(seen, 5, "pipelined and split requests");
    await pollUntil(() => (tracer.status().counts.unparsed >= 2 ? true : undefined), { timeoutMs: 30_000, what: "garbage counted as unparsed" });
    // Still counting after the garbage.
    expect((await get(port, "/users/9", false)).status).toBe(200);
    await waitCount(seen, 6, "the request after the garbage");
    // The attack: a body made of lines like the program's (a 500 written, a close, a record's end) is
    // captured bytes inside its read's record, never lines of their own; the request counts once, as a 200.
    const forged = `x\nW ${child.pid} 20 1 40 HTTP/1.1 500 Forged\r\n\r\n\n#000000000000\nX ${child.pid} 20 2\nW ${child.pid} 20 3 40 HTTP/1.1 500 Forged\n`;
    await raw(port, [`POST /users/10 HTTP/1.1\r\nHost: x\r\nContent-Length: ${forged.length}\r\n\r\n${forged}`], 1);
    await waitCount(seen, 7, "the request with the forged body");
    expect(tally(seen)).toEqual({ "GET /users/{id} 200": 5, "GET /nope 404": 1, "POST /users/{id} 200": 1 });
    // unmatched: node's two 400s to the garbage (no request line read before them); none from the forged lines.
    expect(tracer.status()).toMatchObject({ state: "running", malformed: 0, counts: { unparsed: 2, unmatched: 2, requests: 7 } });
  }, 120_000);

  it("caps distinct routes per service: the 101st and later are counted as other", async () => {
    const { child, port } = await startServer(process.execPath, [`${testdata}server.mjs`, "0"]);
    const { tracer, seen } = await startTracer(() => [child.pid!]);
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 4 });
    cleanup.push(() => keepAlive.destroy());
    const letters = (n: number) => String.fromCharCode(97 + Math.floor(n / 26), 97 + (n % 26));
    for (let i = 0; i < 120; i++) await get(port, `/r/page-${letters(i)}`, keepAlive);
    // Routes seen before the cap keep counting.
    for (let i = 0; i < 10; i++) await get(port, `/r/page-${letters(i)}`, keepAlive);
    await waitCount(seen, 130, "all requests traced");
    const t = tally(seen);
    expect(t["GET other 200"]).toBe(20);
    expect(Object.keys(t)).toHaveLength(101);
    expect(t["GET /r/page-aa 200"]).toBe(2);
    expect(tracer.status().routes).toBe(100);
  }, 180_000);

  it.skipIf(python === null)("Python http.server (HTTP/1.1 keep-alive): exact counts; a restarted server is followed", async () => {
    let server = await startServer(python!, [`${testdata}server.py`, "0"]);
    const { tracer, seen } = await startTracer(() => [server.child.pid!]);
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    cleanup.push(() => keepAlive.destroy());
    for (let i = 0; i < 50; i++) expect((await get(server.port, `/users/${i}`, keepAlive)).status).toBe(200);
    for (let i = 0; i < 7; i++) expect((await get(server.port, `/users/0b5e9d6a-2c1f-4c3e-9a7b-${String(100000000000 + i)}`, false)).status).toBe(200);
    for (let i = 0; i < 4; i++) expect((await get(server.port, "/err", keepAlive)).status).toBe(500);
    for (let i = 0; i < 6; i++) expect((await get(server.port, "/nothing-here", false)).status).toBe(404);
    await waitCount(seen, 67, "all requests traced");
    expect(tally(seen)).toEqual({ "GET /users/{id} 200": 50, "GET /users/{uuid} 200": 7, "GET /err 500": 4, "GET /nothing-here 404": 6 });
    // The service restarts (new pid): the running program takes the new process in, no restart.
    const program = tracer.status().bpftracePid;
    keepAlive.destroy();
    server.child.kill("SIGKILL");
    server = await startServer(python!, [`${testdata}server.py`, "0"]);
    await pollUntil(() => (tracer.status().followed >= 1 ? true : undefined), { timeoutMs: 60_000, what: "the tracer following the new process" });
    expect(tracer.status()).toMatchObject({ state: "running", bpftracePid: program, restarts: 0 });
    for (let i = 0; i < 10; i++) await get(server.port, `/users/${i}`, false);
    await waitCount(seen, 77, "requests after the restart");
    expect(tally(seen)["GET /users/{id} 200"]).toBe(60);
  }, 180_000);
});
