import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { httpStatus, statusRequest } from "./http-status.ts";

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A TCP server on loopback that hands each connection, and what it was sent up to the blank line, to `answer`. */
async function rawServer(answer: (socket: Socket, request: string) => void, host = "127.0.0.1"): Promise<number> {
  const server = createServer((socket) => {
    let request = "";
    socket.setEncoding("latin1");
    socket.on("data", (chunk: string) => {
      request += chunk;
      if (request.includes("\r\n\r\n")) answer(socket, request);
    });
    socket.on("error", () => undefined);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return (server.address() as AddressInfo).port;
}

describe("httpStatus", () => {
  it("sends a GET with the path, Host, the URL's credentials, the headers given and Connection: close", async () => {
    let seen = "";
    const port = await rawServer((socket, request) => {
      seen = request;
      socket.end("HTTP/1.1 204 No Content\r\n\r\n");
    });
    const result = await httpStatus(new URL(`http://probe:s%3Acret@127.0.0.1:${port}/health?deep=1`), { timeoutMs: 5000, headers: { "user-agent": "coral-agent/health" } });
    expect(result).toEqual({ status: 204, statusText: "No Content" });
    expect(seen).toBe(
      `GET /health?deep=1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Basic ${Buffer.from("probe:s:cret").toString("base64")}\r\nuser-agent: coral-agent/health\r\nConnection: close\r\n\r\n`,
    );
  });

  it("reads a status line that arrives in pieces, and one without a reason", async () => {
    const port = await rawServer((socket) => {
      socket.write("HTTP/1.");
      setImmediate(() => socket.end("0 503\r\nContent-Length: 0\r\n\r\n"));
    });
    expect(await httpStatus(new URL(`http://127.0.0.1:${port}/`), { timeoutMs: 5000 })).toEqual({ status: 503, statusText: "" });
  });

  it("reads the rest of a large answer instead of resetting the server mid-write", async () => {
    const body = "x".repeat(48 * 1024);
    const serverSide = new Promise<{ error?: string; finished: boolean }>((resolve) => {
      void rawServer((socket) => {
        socket.on("error", (err: NodeJS.ErrnoException) => resolve({ error: err.code, finished: false }));
        socket.end(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`, () => resolve({ finished: true }));
      }).then((port) => httpStatus(new URL(`http://127.0.0.1:${port}/`), { timeoutMs: 5000 }).then((r) => expect(r.status).toBe(200)));
    });
    expect(await serverSide).toEqual({ finished: true });
  });

  it("rejects an answer that is not HTTP, a connection closed before an answer, and a status line that never ends", async () => {
    const smtp = await rawServer((socket) => socket.end("220 mail.example ESMTP\r\n"));
    await expect(httpStatus(new URL(`http://127.0.0.1:${smtp}/`), { timeoutMs: 5000 })).rejects.toThrow('not an HTTP answer: "220 mail.example ESMTP"');
    const closing = await rawServer((socket) => socket.end());
    await expect(httpStatus(new URL(`http://127.0.0.1:${closing}/`), { timeoutMs: 5000 })).rejects.toThrow("the connection closed before an answer");
    const endless = await rawServer((socket) => socket.write("HTTP/1.1 200 " + "a".repeat(10_000)));
    await expect(httpStatus(new URL(`http://127.0.0.1:${endless}/`), { timeoutMs: 5000 })).rejects.toThrow("no status line in its first 8192 bytes");
  });

  it("times out on a server that takes the request and never answers", async () => {
    const silent = await rawServer(() => undefined);
    const t0 = performance.now();
    await expect(httpStatus(new URL(`http://127.0.0.1:${silent}/`), { timeoutMs: 300 })).rejects.toMatchObject({ name: "TimeoutError", message: "timeout after 300 ms" });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(250);
  });

  it("refuses headers that would split the request, and URLs that are not http:", async () => {
    expect(() => statusRequest(new URL("http://127.0.0.1/"), { "x-a": "1\r\nx-b: 2" })).toThrow("holds a line break");
    await expect(httpStatus(new URL("https://127.0.0.1/"), { timeoutMs: 100 })).rejects.toThrow("http: only");
  });

  it("connects to an IPv6 literal", async (ctx) => {
    let port: number;
    try {
      port = await rawServer((socket) => socket.end("HTTP/1.1 200 OK\r\n\r\n"), "::1");
    } catch {
      ctx.skip(); // no IPv6 loopback on this machine
      return;
    }
    expect((await httpStatus(new URL(`http://[::1]:${port}/`), { timeoutMs: 5000 })).status).toBe(200);
  });
});
