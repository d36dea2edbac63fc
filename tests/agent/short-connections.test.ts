// Short-lived connections and topology attribution (issue 18, items 4 and 5):
// real client and server processes of our own (a new connection per request,
// HTTP/1.0-style Connection: close), real agents, a real colony, real NATS,
// and the real bpftrace (as root; the eBPF tests are skipped otherwise, saying why).
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { RunningAgent } from "@coral/agent";
import { testAgent } from "../helpers/agents.ts";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
const bpfSkip = process.platform !== "linux" ? "needs Linux" : !isRoot ? "needs root for bpftrace" : null;

// A server on `port` answering every request; when `target` is given it is
// also a client that, on "go <n> <ms>" on stdin, makes n requests to target,
// each on a NEW connection (agent: false, Connection: close), one every ms,
// then prints "done <n>". "loop <ms>" requests over one kept-alive connection
// (seen by /proc snapshots too) until "stop".
const script = `
const http = require("node:http");
const [port, target] = process.argv.slice(1).map(Number);
http.createServer((req, res) => res.end("ok\\n")).listen(port, "127.0.0.1", () => console.log("listening"));
const get = () => new Promise((ok, fail) => http.get({ host: "127.0.0.1", port: target, path: "/", agent: false, headers: { connection: "close" } }, (r) => { r.resume(); r.on("end", ok); }).on("error", fail));
const keep = new http.Agent({ keepAlive: true, maxSockets: 1 });
const hold = () => new Promise((ok, fail) => http.get({ host: "127.0.0.1", port: target, path: "/", agent: keep }, (r) => { r.resume(); r.on("end", ok); }).on("error", fail));
let looping = false;
let made = 0;
require("node:readline").createInterface({ input: process.stdin }).on("line", async (line) => {
  const [cmd, a, b] = line.split(" ");
  if (cmd === "go") {
    for (let i = 0; i < Number(a); i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, Number(b)));
      await get();
      made++;
    }
    console.log("done " + made);
  } else if (cmd === "loop") {
    looping = true;
    while (looping) { await hold().then(() => made++, () => undefined); await new Promise((r) => setTimeout(r, Number(a))); }
  } else if (cmd === "stop") {
    looping = false;
    console.log("stopped " + made);
  }
});
`;

interface Proc {
  child: ChildProcessWithoutNullStreams;
  out: string[];
  send(line: string): void;
}

const procs: Proc[] = [];
const agents: RunningAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.close().catch(() => undefined);
  for (const p of procs.splice(0)) p.child.kill("SIGKILL");
});

async function startProc(port: number, target = 0): Promise<Proc> {
  const child = spawn(process.execPath, ["-e", script, String(port), String(target)], { stdio: ["pipe", "pipe", "pipe"] });
  const p: Proc = { child, out: [], send: (line) => child.stdin.write(line + "\n") };
  child.stdout.setEncoding("utf8");
  child.stdout.on("data", (d: string) => p.out.push(...d.split("\n").filter(Boolean)));
  procs.push(p);
  await waitFor(`process on ${port} listening`, () => p.out.includes("listening"));
  return p;
}

async function agent(...[project, url, service, port, extra]: Parameters<typeof testAgent>): Promise<RunningAgent> {
  // testAgent defaults to /proc snapshots; these tests want the kernel tracer unless they say otherwise.
  const a = await testAgent(project, url, service, port, { connectionSource: "auto", ...extra });
  agents.push(a);
  return a;
}

describe.skipIf(bpfSkip !== null)(`short-lived connections seen from the kernel (eBPF)${bpfSkip ? ` — skipped: ${bpfSkip}` : ""}`, () => {
  it("shows the edge of a client opening a new connection per request within one summary interval, with the exact opened count", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const api = colonyApi(colony.url, project.localToken);
    const [apiPort, webPort] = [await freePort(), await freePort()];
    await startProc(apiPort);
    const web = await startProc(webPort, apiPort);
    const summaryIntervalMs = 10_000;
    await agent(project, colony.url, "api", apiPort, { summaryIntervalMs });
    const webAgent = await agent(project, colony.url, "web", webPort, { summaryIntervalMs });
    await waitFor("the kernel source running", () => webAgent.connectionSource().state === "running", { timeoutMs: 90_000 });
    await waitFor("both processes observed", async () => {
      const s = await api.getStatus({});
      return s.services.length === 2 && s.services.every((x) => x.pid > 0);
    });

    // Six requests, two a second, each on its own short connection.
    const requests = 6;
    const started = Date.now();
    web.send(`go ${requests} 500`);
    const first = await waitFor(
      "the web → api edge",
      async () => (await api.getTopology({})).edges.find((e) => e.fromService === "web" && e.toService === "api"),
      { timeoutMs: summaryIntervalMs },
    );
    const appearedMs = Date.now() - started;
    expect(first.external).toBe(false);
    expect(Number(first.openedTotal)).toBeGreaterThanOrEqual(1);
    await waitFor("the client done", () => web.out.includes(`done ${requests}`));

    // The next summary carries the rest: exactly one opened connection per request.
    await webAgent.flushSummary();
    const edge = await waitFor("every request counted", async () => {
      const e = (await api.getTopology({})).edges.find((x) => x.fromService === "web" && x.toService === "api");
      return e && Number(e.openedTotal) >= requests ? e : undefined;
    });
    expect(Number(edge.openedTotal)).toBe(requests);
    expect(Number(edge.openedLastMinute)).toBe(requests);
    // None of them open when the agent looks (the server closes each one).
    expect(Number(edge.connectionCount)).toBeLessThanOrEqual(1);
    // Counted once: another summary adds nothing.
    await webAgent.flushSummary();
    const again = (await api.getTopology({})).edges.find((x) => x.fromService === "web" && x.toService === "api")!;
    expect(Number(again.openedTotal)).toBe(requests);

    const source = webAgent.connectionSource();
    expect(source).toMatchObject({ source: "ebpf", state: "running" });
    // Every connect of the client, and nothing else outbound (the agent's health probes come in as accepts).
    expect(source.connects).toBe(requests);
    const events = await waitFor("the source reported", async () => {
      const r = await api.queryEvents({ service: "web", eventType: "connection_source" });
      return r.events.length > 0 ? r.events : undefined;
    });
    expect(JSON.parse(events[0]!.detailsJson)).toMatchObject({ source: "ebpf" });
    console.log(`edge appeared ${appearedMs} ms after the first request (summary interval ${summaryIntervalMs} ms)`);
  }, 240_000);

  it("counts every connection of a Debian client (curl --http1.0, one connection per run) started by the observed process", async () => {
    // curl runs as a child of the observed "web" process: a process of the set
    // (its parent is), though it lives for a few milliseconds only.
    await using project = await createTestProject();
    const colony = await project.start();
    const api = colonyApi(colony.url, project.localToken);
    const [apiPort, webPort] = [await freePort(), await freePort()];
    await startProc(apiPort);
    const shell = `
      const http = require("node:http");
      const { execFileSync } = require("node:child_process");
      const [port, target] = process.argv.slice(1).map(Number);
      http.createServer((q, s) => s.end("ok")).listen(port, "127.0.0.1", () => console.log("listening"));
      process.stdin.once("data", () => {
        for (let i = 0; i < 4; i++) execFileSync("curl", ["-s", "-o", "/dev/null", "--http1.0", "http://127.0.0.1:" + target + "/"]);
        console.log("done");
      });`;
    const child = spawn(process.execPath, ["-e", shell, String(webPort), String(apiPort)], { stdio: ["pipe", "pipe", "pipe"] });
    const p: Proc = { child, out: [], send: (l) => child.stdin.write(l + "\n") };
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => p.out.push(...d.split("\n").filter(Boolean)));
    procs.push(p);
    await waitFor("web listening", () => p.out.includes("listening"));
    await agent(project, colony.url, "api", apiPort, { summaryIntervalMs: 60_000 });
    const webAgent = await agent(project, colony.url, "web", webPort, { summaryIntervalMs: 60_000 });
    await waitFor("the kernel source running", () => webAgent.connectionSource().state === "running", { timeoutMs: 90_000 });
    await waitFor("web observed", async () => (await api.getStatus({})).services.some((s) => s.name === "web" && s.pid === child.pid));
    p.send("go");
    await waitFor("curl done", () => p.out.includes("done"));
    await waitFor("four connections seen", () => webAgent.connectionSource().matched >= 4);
    await webAgent.flushSummary();
    const edge = await waitFor("web → api from curl", async () => {
      const e = (await api.getTopology({})).edges.find((x) => x.fromService === "web" && x.toService === "api");
      return e && Number(e.openedTotal) >= 4 ? e : undefined;
    });
    expect(Number(edge.openedTotal)).toBe(4);
  }, 240_000);
});

describe("without eBPF", () => {
  it("falls back to /proc snapshots and says so, to the log, the agent and the colony", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const api = colonyApi(colony.url, project.localToken);
    const [apiPort, webPort] = [await freePort(), await freePort()];
    await startProc(apiPort);
    await startProc(webPort, apiPort);
    const webAgent = await agent(project, colony.url, "web", webPort, { connectionSource: "procfs" });
    expect(webAgent.connectionSource()).toMatchObject({ source: "procfs", state: "unavailable" });
    expect(webAgent.connectionSource().reason).toMatch(/turned off/);
    const events = await waitFor("the source reported", async () => {
      const r = await api.queryEvents({ service: "web", eventType: "connection_source" });
      return r.events.length > 0 ? r.events : undefined;
    });
    expect(events).toHaveLength(1);
    expect(JSON.parse(events[0]!.detailsJson)).toMatchObject({ source: "procfs", reason: expect.stringMatching(/turned off/) });
  }, 120_000);
});

describe("topology after an agent is replaced", () => {
  it("resolves the endpoint to the online agent observing it now; the old edge stays as history", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const api = colonyApi(colony.url, project.localToken);
    const [dbPort, webPort] = [await freePort(), await freePort()];
    await startProc(dbPort);
    const web = await startProc(webPort, dbPort);
    // One kept-alive connection: seen by either source (this test needs no eBPF).
    const opts = { summaryIntervalMs: 1000 };
    await agent(project, colony.url, "web", webPort, opts);
    // "billing-v1" sorts before "billing-v2": the old rule kept picking it.
    const v1 = await agent(project, colony.url, "billing-v1", dbPort, opts);
    web.send("loop 100");
    await waitFor("web → billing-v1", async () => (await api.getTopology({})).edges.some((e) => e.fromService === "web" && e.toService === "billing-v1"), {
      timeoutMs: 60_000,
    });
    await v1.close();
    agents.splice(agents.indexOf(v1), 1);
    await waitFor("billing-v1 offline", async () => (await api.getStatus({})).services.find((s) => s.name === "billing-v1")?.status === "offline");
    const v2Start = Date.now();
    await agent(project, colony.url, "billing-v2", dbPort, opts);
    const edges = await waitFor(
      "web → billing-v2 updating",
      async () => {
        const t = await api.getTopology({});
        const now = t.edges.find((e) => e.fromService === "web" && e.toService === "billing-v2");
        return now && timestampDate(now.lastObserved!).getTime() > v2Start + 2000 ? t.edges : undefined;
      },
      { timeoutMs: 60_000 },
    );
    web.send("stop");
    const old = edges.find((e) => e.fromService === "web" && e.toService === "billing-v1");
    const cur = edges.find((e) => e.fromService === "web" && e.toService === "billing-v2")!;
    // History: what was observed until billing-v2 took the port over stays
    // billing-v1's edge, and stops where billing-v2's starts.
    expect(old).toBeDefined();
    expect(timestampDate(old!.lastObserved!).getTime()).toBeLessThan(timestampDate(cur.firstObserved!).getTime());
    expect(timestampDate(cur.firstObserved!).getTime()).toBeGreaterThanOrEqual(v2Start - 1000);
    expect(edges.filter((e) => e.fromService === "web").map((e) => e.toService).sort()).toEqual(["billing-v1", "billing-v2"]);
  }, 240_000);
});
