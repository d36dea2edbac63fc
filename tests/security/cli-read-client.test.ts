// The read commands' client against a hostile or broken "colony" (whatever
// answers at the address: a stalled proxy, a server sending without end). It
// must give up with a clear error instead of hanging or filling the CLI's
// memory. The servers here are the attackers, not stand-ins for Coral parts.
import { once } from "node:events";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { unaryClient } from "@coral/cli/testing";
import { describe, expect, it } from "vitest";

async function hostile(handler: http.RequestListener): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(handler);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function failure(promise: Promise<unknown>): Promise<ConnectError> {
  try {
    await promise;
  } catch (err) {
    return ConnectError.from(err);
  }
  throw new Error("the call succeeded");
}

describe("the read client's limits", () => {
  it("gives up on a colony that never answers, naming it and the deadline", async () => {
    const server = await hostile(() => undefined); // takes the request, never answers
    try {
      const started = Date.now();
      const err = await failure(unaryClient(ColonyService, { url: server.url, token: "t", source: "--colony-url" }, { timeoutMs: 500 }).getStatus({}));
      expect(err.code).toBe(Code.DeadlineExceeded);
      expect(err.rawMessage).toBe(`the colony at ${server.url} did not answer within 0.5s; is it overloaded, or the address wrong?`);
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await server.close();
    }
  });

  it("refuses an answer declared larger than the cap without reading it", async () => {
    const server = await hostile((_req, res) => {
      res.writeHead(200, { "content-type": "application/proto", "content-length": String(10 * 1024 * 1024 * 1024) });
      res.write(Buffer.alloc(1024));
    });
    try {
      const err = await failure(unaryClient(ColonyService, { url: server.url, token: "t", source: "--colony-url" }).getStatus({}));
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toBe("the colony's answer is larger than 64 MiB; ask for less (e.g. --since, --limit)");
    } finally {
      await server.close();
    }
  });

  it("stops reading an answer that goes on without end at the cap", async () => {
    let sent = 0;
    const server = await hostile((_req, res) => {
      res.writeHead(200, { "content-type": "application/proto" }); // chunked, no length
      const chunk = Buffer.alloc(64 * 1024);
      const pump = () => {
        while (!res.destroyed && sent < 512 * 1024 * 1024) {
          sent += chunk.byteLength;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
      };
      pump();
    });
    try {
      const err = await failure(unaryClient(ColonyService, { url: server.url, token: "t", source: "--colony-url" }, { maxResponseBytes: 1024 * 1024 }).getStatus({}));
      expect(err.code).toBe(Code.ResourceExhausted);
      expect(err.rawMessage).toMatch(/^the colony's answer is larger than 1 MiB/);
      // The client hung up: the server could not push the 512 MiB it meant to.
      expect(sent).toBeLessThan(64 * 1024 * 1024);
    } finally {
      await server.close();
    }
  });
});
