import { afterEach, describe, expect, it } from "vitest";
import { probeHealth } from "./health.ts";
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
