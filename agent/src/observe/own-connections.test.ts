import { connect, createServer, type AddressInfo } from "node:net";
import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { isOwnConnection, markOwnConnection } from "./own-connections.ts";

describe("own connections", () => {
  it("knows a socket's local endpoint on the tick after it is created, before it is connected, in both spellings of a v4 address", async () => {
    const server = createServer((s) => s.destroy());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const socket = connect({ host: "127.0.0.1", port: (server.address() as AddressInfo).port });
      let connected = false;
      socket.once("connect", () => (connected = true));
      markOwnConnection(socket);
      // A tick queued after the mark's: the endpoint is bound and remembered, the 'connect' event not yet in.
      const local = await new Promise<AddressInfo>((resolve) => process.nextTick(() => resolve(socket.address() as AddressInfo)));
      expect(connected).toBe(false);
      expect(local.port).toBeGreaterThan(0);
      expect(isOwnConnection("127.0.0.1", local.port)).toBe(true);
      expect(isOwnConnection("::ffff:127.0.0.1", local.port)).toBe(true);
      expect(isOwnConnection("127.0.0.2", local.port)).toBe(false);
      expect(isOwnConnection("127.0.0.1", local.port === 65535 ? 1 : local.port + 1)).toBe(false);
      await once(socket, "close");
    } finally {
      server.close();
    }
  });
});
