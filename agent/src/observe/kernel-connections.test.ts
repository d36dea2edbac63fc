import { spawn } from "node:child_process";
import http from "node:http";
import { pollUntil } from "@coral/common/async";
import { afterEach, describe, expect, it } from "vitest";
import { probeHealth } from "./health.ts";
import { httpGet } from "./http-get.ts";
import { KernelConnections, OpenedCounter, kernelConnectionsUnavailable, parseKernelConnectionLine } from "./kernel-connections.ts";

describe("parseKernelConnectionLine", () => {
  it("reads connects and accepts, IPv4, IPv6 and IPv4-mapped", () => {
    expect(parseKernelConnectionLine("C 1234 1 127.0.0.1 40000 127.0.0.1 8080")).toEqual({
      kind: "connect",
      pid: 1234,
      ppid: 1,
      localIp: "127.0.0.1",
      localPort: 40000,
      remoteIp: "127.0.0.1",
      remotePort: 8080,
    });
    expect(parseKernelConnectionLine("A 99 98 ::ffff:127.0.0.1 8080 ::ffff:127.0.0.1 51000")).toMatchObject({ kind: "accept", localIp: "127.0.0.1", remoteIp: "127.0.0.1" });
    expect(parseKernelConnectionLine("C 5 4 ::1 51114 ::1 18765")).toMatchObject({ localIp: "::1", remoteIp: "::1", remotePort: 18765 });
  });

  it("gives null for anything else", () => {
    for (const line of [
      "",
      "T",
      "Attaching 3 probes...",
      "C 1234 1 127.0.0.1 40000 127.0.0.1",
      "C 1234 1 127.0.0.1 40000 127.0.0.1 8080 extra",
      "X 1234 1 127.0.0.1 40000 127.0.0.1 8080",
      "C 0 1 127.0.0.1 40000 127.0.0.1 8080",
      "C -1 1 127.0.0.1 40000 127.0.0.1 8080",
      "C 12 1 127.0.0.1 70000 127.0.0.1 8080",
      "C 12 1 not-an-ip 1 127.0.0.1 8080",
      "C 12 1 127.0.0.1 1 127.0.0.1 99999999999",
      "C 1e3 1 127.0.0.1 1 127.0.0.1 80",
    ])
      expect(parseKernelConnectionLine(line)).toBeNull();
  });
});

describe("OpenedCounter", () => {
  it("counts per remote endpoint (outbound) and per client address (inbound), until taken", () => {
    const c = new OpenedCounter();
    const out = { kind: "connect" as const, pid: 1, ppid: 0, localIp: "127.0.0.1", localPort: 1, remoteIp: "127.0.0.1", remotePort: 80 };
    c.add(out);
    c.add({ ...out, localPort: 2 });
    c.add({ ...out, remoteIp: "::1" });
    c.add({ kind: "accept", pid: 1, ppid: 0, localIp: "127.0.0.1", localPort: 80, remoteIp: "10.0.0.1", remotePort: 5000 });
    c.add({ kind: "accept", pid: 1, ppid: 0, localIp: "127.0.0.1", localPort: 80, remoteIp: "10.0.0.1", remotePort: 5001 });
    expect(c.take()).toEqual([
      { direction: "outbound", remote: "127.0.0.1:80", localAddr: "127.0.0.1:2", opened: 2 },
      { direction: "outbound", remote: "[::1]:80", localAddr: "127.0.0.1:1", opened: 1 },
      { direction: "inbound", remote: "10.0.0.1", localAddr: "127.0.0.1:80", opened: 2 },
    ]);
    expect(c.take()).toEqual([]);
  });
});

const noBpf = kernelConnectionsUnavailable();

describe.skipIf(noBpf !== null)(`every connect and accept from the kernel (bpftrace, as root)${noBpf ? ` — skipped: ${noBpf}` : ""}`, () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f();
  });

  /** A local server (this process) and a client process that opens one new connection per request, `fork`ing a child to make them when asked. */
  async function serverAndClient(requests: number, opts: { fork?: boolean } = {}) {
    const server = http.createServer((_req, res) => res.end("ok"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanup.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as { port: number }).port;
    const requestsCode = `const http = require("node:http");
      (async () => {
        for (let i = 0; i < ${requests}; i++) await new Promise((ok, fail) => http.get({ host: "127.0.0.1", port: ${port}, agent: false, headers: { connection: "close" } }, (r) => { r.resume(); r.on("end", ok); }).on("error", fail));
        console.log("done");
      })();`;
    // After a go line on stdin: the requests themselves, or a child process (forked then) that makes them.
    const code = opts.fork
      ? `process.stdin.once("data", () => require("node:child_process").spawn(process.execPath, ["-e", ${JSON.stringify(requestsCode)}], { stdio: ["ignore", "inherit", "inherit"] }));`
      : `process.stdin.once("data", () => { ${requestsCode} });`;
    const client = spawn(process.execPath, ["-e", code], { stdio: ["pipe", "pipe", "inherit"] });
    cleanup.push(() => void client.kill("SIGKILL"));
    let done = false;
    client.stdout.on("data", (d: Buffer) => (done ||= d.toString().includes("done")));
    const run = async () => {
      client.stdin.write("go\n");
      await pollUntil(() => (done ? true : undefined), { timeoutMs: 30_000, intervalMs: 50, what: "the client's requests" });
    };
    return { port, client, run };
  }

  it("counts each short connection of the given processes exactly, and the kernel prints nothing of others", async () => {
    const requests = 5;
    // The server is this process: its accepts are not followed, so they are never printed.
    const { port, client, run } = await serverAndClient(requests);
    const kc = new KernelConnections({ pids: () => [client.pid!] });
    cleanup.push(() => kc.stop());
    const status = await kc.start();
    expect(status).toMatchObject({ source: "ebpf", state: "running" });
    await run();
    // Lines arrive a moment after the connects: poll for the count, then check it is exact.
    const counted = await pollUntil(() => (kc.status().matched >= requests ? kc.status().matched : undefined), { timeoutMs: 30_000, intervalMs: 50, what: "the connections counted" });
    expect(counted).toBe(requests);
    expect(kc.counter.take()).toEqual([{ direction: "outbound", remote: `127.0.0.1:${port}`, localAddr: expect.stringMatching(/^127\.0\.0\.1:\d+$/), opened: requests }]);
    // Filtered in the kernel: the server's accepts (and every other connection on the host) were not even read.
    expect(kc.status().events).toBe(requests);
  }, 120_000);

  it("follows a process that joins the set while the program runs, and the children it forks", async () => {
    const requests = 4;
    const { client, run } = await serverAndClient(requests, { fork: true });
    const set: number[] = [];
    const forks: [number, number][] = [];
    const kc = new KernelConnections({ pids: () => set, onFork: (child, parent) => forks.push([child, parent]) });
    cleanup.push(() => kc.stop());
    expect((await kc.start()).state).toBe("running");
    // Seeded with nobody; the client is named to the running program (no restart).
    const bpftracePid = kc.status().bpftracePid;
    set.push(client.pid!);
    kc.refresh();
    await run();
    const counted = await pollUntil(() => (kc.status().matched >= requests ? kc.status().matched : undefined), { timeoutMs: 30_000, intervalMs: 50, what: "the forked child's connections counted" });
    expect(counted).toBe(requests);
    expect(kc.status()).toMatchObject({ bpftracePid, restarts: 0, events: requests });
    // The child the client forked, seen by the kernel as it started.
    expect(forks).toEqual([[expect.any(Number), client.pid]]);
    // What the samplers watch to know the set or its sockets changed: every connection and fork.
    expect(kc.changes()).toBe(requests + 1);
    await kc.stop();
    expect(kc.changes()).toBeNull();
  }, 120_000);

  it("leaves out a service's accepts of the agent's own health probes and scrapes, and counts its clients'", async () => {
    // The service: a server process of its own, followed; the agent's probes come from this process.
    const server = spawn(process.execPath, ["-e", `require("node:http").createServer((q, s) => s.end("ok")).listen(0, "127.0.0.1", function () { console.log(this.address().port); })`], { stdio: ["ignore", "pipe", "inherit"] });
    cleanup.push(() => void server.kill("SIGKILL"));
    const port = await new Promise<number>((resolve) => server.stdout.once("data", (d: Buffer) => resolve(Number(String(d).trim()))));
    const kc = new KernelConnections({ pids: () => [server.pid!] });
    cleanup.push(() => kc.stop());
    expect((await kc.start()).state).toBe("running");
    const connectOnce = () =>
      new Promise<void>((ok, fail) => {
        const child = spawn(process.execPath, ["-e", `require("node:http").get({ host: "127.0.0.1", port: ${port}, agent: false }, (r) => r.resume())`], { stdio: "ignore" });
        child.once("exit", (code) => (code === 0 ? ok() : fail(new Error(`client exited ${code}`))));
      });
    await connectOnce();
    await connectOnce();
    // Three HTTP health probes (status line), a TCP probe and a scrape (node:http), then one more client as the last word.
    for (let i = 0; i < 3; i++) expect(await probeHealth({ url: `http://127.0.0.1:${port}/health` }, 5000)).toMatchObject({ healthy: true });
    expect(await probeHealth({ tcp: { host: "127.0.0.1", port } }, 5000)).toMatchObject({ healthy: true });
    expect((await httpGet(`http://127.0.0.1:${port}/metrics`, { timeoutMs: 5000, maxBodyBytes: 1024 })).status).toBe(200);
    await connectOnce();
    // The last client's accept is printed after the probes': once it is counted, so would they be.
    const counted = await pollUntil(() => (kc.status().matched >= 3 ? kc.status().matched : undefined), { timeoutMs: 30_000, intervalMs: 50, what: "the clients' accepts counted" });
    expect(counted).toBe(3);
    expect(kc.counter.take()).toEqual([{ direction: "inbound", remote: "127.0.0.1", localAddr: `127.0.0.1:${port}`, opened: 3 }]);
  }, 120_000);

  it("restarts bpftrace when it dies, and keeps counting", async () => {
    const kc = new KernelConnections({ pids: () => [process.pid + 1_000_000], restartDelayMs: 100 });
    cleanup.push(() => kc.stop());
    expect((await kc.start()).state).toBe("running");
    const first = kc.status().bpftracePid!;
    process.kill(first, "SIGKILL");
    const restarted = await pollUntil(() => {
      const s = kc.status();
      return s.state === "running" && s.bpftracePid !== first ? s : undefined;
    }, { timeoutMs: 90_000, intervalMs: 100, what: "bpftrace restarted" });
    expect(restarted).toMatchObject({ source: "ebpf", restarts: 1 });
  }, 120_000);

  it("attaches several tracers started together in one process (each agent of a process has its own attach check)", async () => {
    // Each program prints this process's connections until its own tracer has seen its check: one tracer
    // switching that off must not silence another's check while it still waits (the second would never attach).
    const tracers = [0, 1, 2].map(() => new KernelConnections({ pids: () => [process.pid + 1_000_000], attachTimeoutMs: 60_000 }));
    for (const kc of tracers) cleanup.push(() => kc.stop());
    const started = await Promise.all(tracers.map((kc) => kc.start()));
    expect(started.map((s) => [s.state, s.reason])).toEqual(tracers.map(() => ["running", undefined]));
  }, 120_000);
});

describe("without bpftrace", () => {
  it("says it cannot run and why, and the source is procfs", async () => {
    const kc = new KernelConnections({ pids: () => [], bpftracePath: "/nonexistent/bpftrace" });
    const status = await kc.start();
    expect(status.source).toBe("procfs");
    expect(status.state).toBe("unavailable");
    expect(status.reason).toMatch(/bpftrace is not installed|needs root|needs Linux/);
  });
});
