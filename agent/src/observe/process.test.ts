/**
 * findListeningProcess, sampleProcess and tcpConnections against real child
 * Node processes.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ProcessSocketsReader, classifySockets, tcpConnections } from "./connections.ts";
import net from "node:net";
import { findListeningProcess } from "./listener.ts";
import type { ProcNetTcpEntry } from "./procnet.ts";
import { sampleProcess } from "./sample.ts";
import { HTTP_SERVER_SCRIPT, freePort, killAllChildren, killChild, spawnNode, waitFor } from "./testing.ts";

afterEach(killAllChildren);

describe("findListeningProcess", () => {
  it("finds the pid of a dual-stack server (tcp6, [::])", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT);
    const found = await findListeningProcess(child.port);
    expect(found).not.toBeNull();
    expect(found?.pid).toBe(child.pid);
    expect(found?.address).toBe(`[::]:${child.port}`);
    expect(found?.inode).toBeGreaterThan(0);
  });

  it("finds the pid of an IPv4-only server (tcp, 127.0.0.1)", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT, { HOST: "127.0.0.1" });
    const found = await findListeningProcess(child.port);
    expect(found).toMatchObject({ pid: child.pid, address: `127.0.0.1:${child.port}` });
  });

  it("returns null when nothing listens, including after the listener died", async () => {
    expect(await findListeningProcess(await freePort())).toBeNull();
    const child = await spawnNode(HTTP_SERVER_SCRIPT);
    await killChild(child);
    await waitFor("the port to be free", async () => (await findListeningProcess(child.port)) === null);
  });

  it("rejects invalid ports", async () => {
    await expect(findListeningProcess(0)).rejects.toThrow(RangeError);
    await expect(findListeningProcess(70000)).rejects.toThrow(RangeError);
  });
});

describe("sampleProcess", () => {
  it("returns plausible values for a live server, and interval CPU with a previous state", async () => {
    const before = Date.now();
    const child = await spawnNode(HTTP_SERVER_SCRIPT);
    const first = await sampleProcess(child.pid);
    expect(first).not.toBeNull();
    const s = first!.snapshot;
    expect(s.pid).toBe(child.pid);
    expect(s.comm).toBe("node");
    expect(s.rssBytes).toBeGreaterThan(1024 * 1024);
    expect(s.rssBytes).toBeLessThan(2 * 1024 * 1024 * 1024);
    expect(s.threads).toBeGreaterThanOrEqual(1);
    // stdin, stdout, stderr and the listening socket at least
    expect(s.fdCount).toBeGreaterThanOrEqual(4);
    // btime has whole-second precision: allow a couple of seconds of slack
    expect(s.startTime.getTime()).toBeGreaterThanOrEqual(before - 2_000);
    expect(s.startTime.getTime()).toBeLessThanOrEqual(Date.now() + 2_000);
    expect(Date.now() - s.startTime.getTime()).toBeLessThan(60_000);
    expect(s.cpuBasis).toBe("lifetime");
    expect(s.cpuPercent).toBeGreaterThanOrEqual(0);
    expect(s.cpuTimeMs).toBeGreaterThan(0); // starting node costs some CPU

    const second = await waitFor("a later sample", async () => {
      const next = await sampleProcess(child.pid, first!.state);
      return next && next.state.monotonicMs - first!.state.monotonicMs >= 50 ? next : null;
    });
    expect(second.snapshot.cpuBasis).toBe("interval");
    expect(second.snapshot.cpuPercent).toBeGreaterThanOrEqual(0);
    expect(second.snapshot.cpuPercent).toBeLessThan(400); // 2 cores, generous
    expect(second.snapshot.cpuTimeMs).toBeGreaterThanOrEqual(s.cpuTimeMs);
    expect(second.snapshot.startTime.getTime()).toBe(s.startTime.getTime());
  });

  it("measures a spinning process at a substantial share of one core", async () => {
    // Spins forever once listening: always runnable, so CFS gives it a fair share
    // of a core even on this small shared machine.
    const child = await spawnNode(HTTP_SERVER_SCRIPT.replace('console.log("PORT " + srv.address().port)', '{ console.log("PORT " + srv.address().port); setImmediate(() => { for (;;); }); }'));
    const first = await sampleProcess(child.pid);
    const later = await waitFor("a sample 1 s later", async () => {
      const next = await sampleProcess(child.pid, first!.state);
      return next && next.state.monotonicMs - first!.state.monotonicMs >= 1000 ? next : null;
    });
    // ~100% of one core when it has a core to itself; single-threaded JS plus
    // a little GC cannot use much more. On a box loaded 10× over its 2 cores it
    // still gets a few percent, where an idle server shows ~0.
    expect(later.snapshot.cpuBasis).toBe("interval");
    expect(later.snapshot.cpuPercent).toBeGreaterThan(2);
    expect(later.snapshot.cpuPercent).toBeLessThan(150);
    const elapsedMs = later.state.monotonicMs - first!.state.monotonicMs;
    expect(later.snapshot.cpuPercent).toBeCloseTo(((later.snapshot.cpuTimeMs - first!.snapshot.cpuTimeMs) / elapsedMs) * 100, 6);
  });

  it("ignores a previous state from another process", async () => {
    const a = await spawnNode(HTTP_SERVER_SCRIPT);
    const b = await spawnNode(HTTP_SERVER_SCRIPT);
    const sa = await sampleProcess(a.pid);
    const sb = await sampleProcess(b.pid, sa!.state);
    expect(sb?.snapshot.cpuBasis).toBe("lifetime");
  });

  it("returns null for a process that is gone", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT);
    await killChild(child);
    expect(await sampleProcess(child.pid)).toBeNull();
  });
});

describe("tcpConnections", () => {
  it("shows an outbound keep-alive connection with the right remote port, and the inbound side on the target", async () => {
    const target = await spawnNode(HTTP_SERVER_SCRIPT);
    // The client serves HTTP too, so it has a listening port of its own, and
    // keeps one keep-alive connection to the target open.
    const client = await spawnNode(
      `
      const http = require("node:http");
      const agent = new http.Agent({ keepAlive: true });
      const srv = http.createServer((q, r) => r.end("client")).listen(0, () => {
        http.get({ host: "127.0.0.1", port: Number(process.env.TARGET_PORT), path: "/", agent }, (res) => {
          const localPort = res.socket.localPort;
          res.resume();
          res.on("end", () => console.log("PORT " + srv.address().port + " " + localPort));
        });
      });
      setInterval(() => {}, 1 << 30);
      `,
      { TARGET_PORT: String(target.port) },
    );
    const clientLocalPort = Number(client.extra[0]);
    expect(clientLocalPort).toBeGreaterThan(0);

    const out = await tcpConnections(client.pid);
    expect(out).not.toBeNull();
    expect(out!.every((c) => (c.state as string) !== "LISTEN")).toBe(true);
    const toTarget = out!.filter((c) => c.remotePort === target.port);
    expect(toTarget).toHaveLength(1);
    expect(toTarget[0]).toMatchObject({
      localAddr: `127.0.0.1:${clientLocalPort}`,
      remoteAddr: `127.0.0.1:${target.port}`,
      state: "ESTABLISHED",
      direction: "outbound",
    });

    // The target accepted it on its dual-stack socket: an IPv4-mapped row in tcp6.
    const inbound = await tcpConnections(target.pid);
    const fromClient = inbound!.filter((c) => c.remotePort === clientLocalPort);
    expect(fromClient).toHaveLength(1);
    expect(fromClient[0]).toMatchObject({
      localAddr: `127.0.0.1:${target.port}`,
      remoteAddr: `127.0.0.1:${clientLocalPort}`,
      state: "ESTABLISHED",
      direction: "inbound",
    });
  });

  it("returns an empty list for an idle server and null for a gone process", async () => {
    const child = await spawnNode(HTTP_SERVER_SCRIPT);
    expect(await tcpConnections(child.pid)).toEqual([]);
    await killChild(child);
    expect(await tcpConnections(child.pid)).toBeNull();
  });
});

describe("ProcessSocketsReader", () => {
  it("re-reads the TCP tables when the socket set changes or the last read is too old, and not otherwise", async () => {
    const server = await spawnNode(HTTP_SERVER_SCRIPT);
    let clock = 0;
    const reader = new ProcessSocketsReader(10_000, () => clock, 0);
    const idle = await reader.read(server.pid, [server.port]);
    expect(idle!.connections).toEqual([]);
    expect(idle!.listening.map((l) => l.port)).toContain(server.port);
    // Same sockets, within maxAge: the cached answer.
    expect(await reader.read(server.pid, [server.port])).toBe(idle);

    // A new connection is a new socket inode in the server: read again at once.
    const socket = net.connect(server.port, "127.0.0.1");
    try {
      const localPort = await new Promise<number>((resolve, reject) => socket.once("connect", () => resolve(socket.localPort!)).once("error", reject));
      const busy = await waitFor("the inbound connection", async () => {
        const r = await reader.read(server.pid, [server.port]);
        return r!.connections.some((c) => c.remotePort === localPort) ? r : null;
      });
      expect(busy!.connections.find((c) => c.remotePort === localPort)).toMatchObject({ direction: "inbound", state: "ESTABLISHED" });
      expect(await reader.read(server.pid, [server.port])).toBe(busy);
      clock += 10_001;
      const fresh = await reader.read(server.pid, [server.port]);
      expect(fresh).not.toBe(busy);
      expect(fresh).toEqual(busy);
    } finally {
      socket.destroy();
    }
    await killChild(server);
    expect(await reader.read(server.pid, [server.port])).toBeNull();
  });
});

describe("classifySockets", () => {
  const row = (p: Partial<ProcNetTcpEntry>): ProcNetTcpEntry => ({
    family: 4,
    localIp: "127.0.0.1",
    localPort: 0,
    remoteIp: "0.0.0.0",
    remotePort: 0,
    stateCode: 1,
    state: "ESTABLISHED",
    uid: 0,
    inode: 0,
    ...p,
  });
  const rows = [
    row({ inode: 1, localPort: 8080, stateCode: 0x0a, state: "LISTEN" }),
    row({ inode: 2, localPort: 8080, remoteIp: "10.0.0.5", remotePort: 40000 }), // a client of ours
    row({ inode: 3, localPort: 40001, remoteIp: "10.0.0.9", remotePort: 5432 }), // we call a database
    row({ inode: 4, localPort: 9090, remoteIp: "10.0.0.6", remotePort: 41000, stateCode: 8, state: "CLOSE_WAIT" }),
    row({ inode: 5, localPort: 40002, remotePort: 6379 }), // another process's socket
    row({ inode: 0, localPort: 8080, remotePort: 40003, stateCode: 6, state: "TIME_WAIT" }), // nobody's
  ];

  it.each([
    { extra: [], want: [[2, "inbound"], [3, "outbound"], [4, "outbound"]] },
    { extra: [9090], want: [[2, "inbound"], [3, "outbound"], [4, "inbound"]] },
  ])("classifies with extra listen ports $extra", ({ extra, want }) => {
    const { listening, connections } = classifySockets(rows, new Set([1, 2, 3, 4, 0]), extra);
    expect(listening).toEqual([{ address: "127.0.0.1:8080", port: 8080, inode: 1 }]);
    expect(connections.map((c) => [c.inode, c.direction])).toEqual(want);
    expect(connections.find((c) => c.inode === 3)).toMatchObject({ localAddr: "127.0.0.1:40001", remoteAddr: "10.0.0.9:5432" });
  });
});
