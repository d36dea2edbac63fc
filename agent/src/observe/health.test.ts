import { afterEach, describe, expect, it } from "vitest";
import { healthTargetFor, probeHealth } from "./health.ts";
import { HTTP_SERVER_SCRIPT, freePort, killAllChildren, spawnNode } from "./testing.ts";

afterEach(killAllChildren);

describe("probeHealth", () => {
  it("is healthy on HTTP 200", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT, { STATUS: "200" });
    const r = await probeHealth({ url: `http://127.0.0.1:${child.port}/health` }, 5000);
    expect(r).toMatchObject({ healthy: true, kind: "http", status: 200 });
    expect(r.error).toBeUndefined();
    expect(r.latencyMs).toBeGreaterThan(0);
    expect(r.latencyMs).toBeLessThan(5000);
  });

  it("is healthy on a redirect, which it does not follow", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT, { STATUS: "302" });
    const r = await probeHealth({ url: `http://127.0.0.1:${child.port}/` }, 5000);
    expect(r).toMatchObject({ healthy: true, status: 302 });
  });

  it("is unhealthy on HTTP 503, with the status", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT, { STATUS: "503" });
    const r = await probeHealth({ url: `http://127.0.0.1:${child.port}/health` }, 5000);
    expect(r).toMatchObject({ healthy: false, kind: "http", status: 503, error: "HTTP 503 Service Unavailable" });
  });

  it("reports a closed port as a result, not an exception", async () => {
    const port = await freePort();
    const r = await probeHealth({ url: `http://127.0.0.1:${port}/health` }, 5000);
    expect(r.healthy).toBe(false);
    expect(r.status).toBeUndefined();
    expect(r.error).toMatch(/^ECONNREFUSED/);
  });

  it("times out on a server that never answers", async () => {
    const child = await spawnNode(`
      const srv = require("node:net").createServer(() => {}).listen(0, () => console.log("PORT " + srv.address().port));
    `);
    const r = await probeHealth({ url: `http://127.0.0.1:${child.port}/` }, 300);
    expect(r).toMatchObject({ healthy: false, error: "timeout after 300 ms" });
    expect(r.latencyMs).toBeGreaterThanOrEqual(250);
  });

  it("probes TCP: open and closed ports", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT);
    const open = await probeHealth({ tcp: { host: "127.0.0.1", port: child.port } }, 5000);
    expect(open).toMatchObject({ healthy: true, kind: "tcp" });
    const closed = await probeHealth({ tcp: { host: "127.0.0.1", port: await freePort() } }, 5000);
    expect(closed).toMatchObject({ healthy: false, kind: "tcp" });
    expect(closed.error).toMatch(/^ECONNREFUSED/);
  });

  it("answers bad targets with an error result", async () => {
    expect(await probeHealth({ url: "not a url" })).toMatchObject({ healthy: false, error: "invalid URL: not a url" });
    expect(await probeHealth({ tcp: { host: "127.0.0.1", port: 0 } })).toMatchObject({ healthy: false, error: "invalid TCP port: 0" });
    expect((await probeHealth({})).healthy).toBe(false);
  });
});

describe("probeHealth: is the port listening (the default, from /proc)", () => {
  it("is healthy while the process listens, in its own network namespace, and opens no connection", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT, { STATUS: "200" });
    const r = await probeHealth({ listening: { port: child.port, pid: child.proc.pid } });
    expect(r).toMatchObject({ healthy: true, kind: "listen" });
    expect(r.error).toBeUndefined();
    expect(await probeHealth({ listening: { port: child.port } })).toMatchObject({ healthy: true, kind: "listen" });
  });

  it("is unhealthy when nothing listens, or the process is gone", async () => {
    const port = await freePort();
    expect(await probeHealth({ listening: { port } })).toMatchObject({ healthy: false, kind: "listen", error: `nothing listens on port ${port}` });
    const gone = await probeHealth({ listening: { port, pid: 2 ** 22 + 1 } });
    expect(gone).toMatchObject({ healthy: false, kind: "listen", error: `nothing listens on port ${port} (process ${2 ** 22 + 1} is gone)` });
  });

  it("picks the check from --health: a URL, tcp://host:port, or none (listening)", () => {
    expect(healthTargetFor("http://127.0.0.1:8080/health", 8080, 7)).toEqual({ url: "http://127.0.0.1:8080/health" });
    expect(healthTargetFor("tcp://127.0.0.1:5432", 8080, 7)).toEqual({ tcp: { host: "127.0.0.1", port: 5432 } });
    expect(healthTargetFor("tcp://[::1]:5432", 8080, 7)).toEqual({ tcp: { host: "::1", port: 5432 } });
    expect(healthTargetFor(undefined, 8080, 7)).toEqual({ listening: { port: 8080, pid: 7 } });
  });
});
