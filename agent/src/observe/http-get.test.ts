import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeGetError, httpGet } from "./http-get.ts";

describe("httpGet (node:http, no fetch)", () => {
  let server: http.Server;
  let base = "";
  const seen: { url?: string; connection?: string }[] = [];
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      seen.push({ url: req.url, connection: req.headers.connection });
      if (req.url === "/moved") return void res.writeHead(302, { location: "/metrics" }).end();
      if (req.url === "/loop") return void res.writeHead(302, { location: "/loop" }).end();
      if (req.url === "/hang") return; // never answers
      if (req.url === "/stream") {
        // Chunked, no content-length: the cap is found while reading.
        res.writeHead(200);
        for (let i = 0; i < 100; i++) res.write("y".repeat(100));
        return void res.end();
      }
      res.writeHead(200, { "content-type": "text/plain" }).end("up 1\n");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => void server.close());

  it("reads the body, and closes the connection instead of pooling it", async () => {
    const res = await httpGet(`${base}/metrics`, { timeoutMs: 5000, maxBodyBytes: 1000 });
    expect(res.status).toBe(200);
    expect(res.body?.toString()).toBe("up 1\n");
    expect(seen.at(-1)).toEqual({ url: "/metrics", connection: "close" });
  });

  it("follows redirects only when asked, and only so many", async () => {
    expect((await httpGet(`${base}/moved`, { timeoutMs: 5000 })).status).toBe(302);
    const followed = await httpGet(`${base}/moved`, { timeoutMs: 5000, maxBodyBytes: 1000, followRedirects: 5 });
    expect(followed.status).toBe(200);
    expect(followed.body?.toString()).toBe("up 1\n");
    expect((await httpGet(`${base}/loop`, { timeoutMs: 5000, followRedirects: 3 })).status).toBe(302);
  });

  it("stops reading a body over the cap, declared or not", async () => {
    const res = await httpGet(`${base}/stream`, { timeoutMs: 5000, maxBodyBytes: 1000 });
    expect(res.body).toBeUndefined();
    expect(res.tooLarge).toBeGreaterThan(1000);
  });

  it("times out on a server that never answers, and says so", async () => {
    const err = await httpGet(`${base}/hang`, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(describeGetError(err, 300)).toBe("timeout after 300 ms");
  });
});
