// A service is a set of processes: debug sessions with the real bpftrace on
// our own C servers whose work runs in child processes (a child per
// connection; a pool of workers sharing the listening socket), driven over
// AgentDebugService as the colony drives it. Calls are counted exactly.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AgentClientPool } from "@coral/colony/testing";
import { testAgent } from "../helpers/agents.ts";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { bpfSkipReason, compileWorkers, onPath, request, startObservedTarget, startTarget, targetListening, type ObservedTarget } from "./helpers.ts";

const skip = bpfSkipReason();
if (skip) console.log(`process-set.test: SKIPPING real bpftrace tests: ${skip}`);

/** The children of `pid` now, from /proc/<pid>/task/<pid>/children. */
function childrenOf(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
}

type Client = ReturnType<AgentClientPool["get"]>;

function agentClient(fixture: ObservedTarget): Client {
  return new AgentClientPool(fixture.project.colonyKey).get(fixture.agent.agentId, fixture.agent.apiUrl);
}

/** K requests of `calls` calls each, `parallel` at a time; resolves with the pids that answered. */
async function drive(port: number, k: number, calls: number, parallel = 4): Promise<number[]> {
  const pids: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < k) {
        next++;
        const answer = await request(port, `${calls} 1`);
        const m = /^ok (\d+) (\d+)$/.exec(answer);
        expect(m, `answer ${JSON.stringify(answer)}`).not.toBeNull();
        expect(Number(m![1])).toBe(calls * 2);
        pids.push(Number(m![2]));
      }
    }),
  );
  return pids;
}

describe.skipIf(skip !== undefined)("debug sessions on a process set (real bpftrace)", () => {
  let bin: string;
  beforeAll(() => {
    bin = compileWorkers();
  });

  describe("a server that forks a child per connection", () => {
    let fixture: ObservedTarget | undefined;
    let client: Client;
    beforeAll(async () => {
      fixture = await startObservedTarget(bin, "forker", { pattern: "handle", args: ["fork"] });
      client = agentClient(fixture);
    }, 120_000);
    afterAll(async () => {
      await fixture?.[Symbol.asyncDispose]();
    });

    it("counts exactly every call made in the children, none of which existed at the start", async () => {
      const { port } = fixture!;
      const start = await client.startUprobeCollector({ functionName: "handle_request", durationMs: 120_000 });
      const k = 40;
      const answered = await drive(port, k, 3);
      // Every request was served by a child of its own, never by the listener.
      expect(new Set(answered).size).toBe(k);
      expect(answered).not.toContain(fixture!.target.pid);
      const stop = await client.stopUprobeCollector({ collectorId: start.collectorId });
      expect(Number(stop.summary?.calls)).toBe(3 * k);
      expect(Number(stop.summary?.entries)).toBe(3 * k);
      // The listener, every child that served a request, and any the health check made.
      expect(stop.summary?.processCount).toBeGreaterThanOrEqual(1 + k);
      const events = await client.queryUprobeEvents({ collectorId: start.collectorId, limit: 1000 });
      expect(new Set(events.events.map((e) => e.pid))).toEqual(new Set(answered));
    }, 120_000);
  });

  describe("a worker pool sharing the listening socket", () => {
    const workers = 4;
    let fixture: ObservedTarget | undefined;
    let client: Client;
    let other: ChildProcess | undefined;
    beforeAll(async () => {
      fixture = await startObservedTarget(bin, "pool", { pattern: "handle", args: ["pool", String(workers), "8"] });
      client = agentClient(fixture);
    }, 120_000);
    afterAll(async () => {
      other?.kill("SIGKILL");
      await fixture?.[Symbol.asyncDispose]();
    });

    it("counts exactly every call across the workers and reports the set in status", async () => {
      const { port, target } = fixture!;
      const set = [target.pid!, ...childrenOf(target.pid!)];
      expect(set).toHaveLength(1 + workers);
      const start = await client.startUprobeCollector({ functionName: "handle_request", durationMs: 120_000 });
      const k = 60;
      const answered = await drive(port, k, 5);
      for (const pid of answered) expect(set.slice(1)).toContain(pid);
      const stop = await client.stopUprobeCollector({ collectorId: start.collectorId });
      expect(Number(stop.summary?.calls)).toBe(5 * k);
      expect(stop.summary?.processCount).toBe(1 + workers);

      // The colony's status: the set's process count (and its memory, at least the workers' 8 MB each).
      const api = colonyApi(fixture!.colony.url, fixture!.project.localToken);
      const svc = await waitFor("the colony to report the process set", async () => {
        const s = (await api.getStatus({})).services.find((x) => x.name === "pool");
        return s && s.processCount === 1 + workers ? s : undefined;
      });
      expect(Number(svc.memoryBytes)).toBeGreaterThan(workers * 8 * 1024 * 1024);
    }, 120_000);

    it("an early stop loses no return: every recorded entry has its return", async () => {
      const { port } = fixture!;
      const start = await client.startUprobeCollector({ functionName: "handle_request", durationMs: 120_000 });
      // Calls of 2 ms each, four at a time: at any moment some are in flight.
      let driving = true;
      const load = Promise.all(
        Array.from({ length: 4 }, async () => {
          while (driving) await request(port, "50 20");
        }),
      );
      await waitFor("calls to be recorded", async () => {
        const q = await client.queryUprobeEvents({ collectorId: start.collectorId, limit: 1 });
        return Number(q.summary?.entries) >= 200 ? true : undefined;
      });
      const stop = await client.stopUprobeCollector({ collectorId: start.collectorId });
      driving = false;
      await load;
      expect(Number(stop.summary?.entries)).toBeGreaterThanOrEqual(200);
      expect(Number(stop.summary?.calls)).toBe(Number(stop.summary?.entries));
    }, 120_000);

    it("says where calls happen when none happen in the service's processes", async () => {
      // The same binary, run apart from the service (not in its process tree), gets the calls.
      const otherPort = await freePort();
      const children: ChildProcess[] = [];
      other = startTarget(bin, otherPort, ["plain"], children);
      await targetListening(otherPort);
      const start = await client.startUprobeCollector({ functionName: "handle_request", durationMs: 120_000 });
      let driving = true;
      const load = (async () => {
        while (driving) await request(otherPort, "2 1");
      })();
      const note = await waitFor(
        "the session to say where the calls are",
        async () => {
          const q = await client.queryUprobeEvents({ collectorId: start.collectorId, limit: 1 });
          return q.summary?.note || undefined;
        },
        { timeoutMs: 30_000 },
      );
      driving = false;
      await load;
      expect(note).toContain(`no calls yet in ${1 + workers} processes`);
      expect(note).toContain(`outside the service's process tree: pids ${other.pid}`);
      const stop = await client.stopUprobeCollector({ collectorId: start.collectorId });
      expect(Number(stop.summary?.calls)).toBe(0);
    }, 120_000);
  });

  // A real third-party forking server: Debian's nginx (apt-get install -y
  // --no-install-recommends nginx-light), a master and 3 workers; the
  // requests are handled in the workers only.
  describe.skipIf(!onPath("nginx"))("nginx (master + 3 workers), when installed", () => {
    let project: TestProject | undefined;
    let agent: Awaited<ReturnType<typeof testAgent>> | undefined;
    let master: ChildProcess | undefined;
    let workerPids: number[] = [];
    let port: number;
    beforeAll(async () => {
      port = await freePort();
      const dir = mkdtempSync(join(tmpdir(), "coral-nginx-"));
      mkdirSync(join(dir, "logs"));
      const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `${t}_temp_path ${join(dir, t)};`).join(" ");
      writeFileSync(
        join(dir, "nginx.conf"),
        `worker_processes 3; daemon off; pid ${join(dir, "nginx.pid")}; error_log ${join(dir, "logs/error.log")};
events { worker_connections 64; }
http { access_log off; ${temp} server { listen 127.0.0.1:${port}; location / { return 200 "ok\\n"; } } }`,
      );
      master = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: "ignore" });
      await targetListening(port);
      workerPids = await waitFor("nginx's 3 workers", () => {
        const c = childrenOf(master!.pid!);
        return c.length === 3 ? c : undefined;
      });
      project = await createTestProject();
      const colony = await project.start();
      agent = await testAgent(project, colony.url, "nginx", port, { healthUrl: undefined });
    }, 120_000);
    afterAll(async () => {
      await agent?.close();
      await project?.[Symbol.asyncDispose]();
      // SIGTERM: the master stops its workers (SIGKILL would leave them running).
      master?.kill("SIGTERM");
      await waitFor("nginx's workers to exit", () => workerPids.every((p) => !existsSync(`/proc/${p}`)) || undefined, { timeoutMs: 30_000 });
    });

    it("counts exactly every request handled in the workers", async () => {
      const client = new AgentClientPool(project!.colonyKey).get(agent!.agentId, agent!.apiUrl);
      await waitFor("the agent to observe nginx", async () => (await client.listFunctions({ pattern: "ngx_http_process_request" })).pid === master!.pid);
      const start = await client.startUprobeCollector({ functionName: "ngx_http_process_request", durationMs: 120_000 });
      const k = 30;
      for (let i = 0; i < k; i++) {
        const status = await new Promise<number>((resolve, reject) =>
          http
            .get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
              res.resume();
              res.on("end", () => resolve(res.statusCode ?? 0));
            })
            .on("error", reject),
        );
        expect(status).toBe(200);
      }
      const stop = await client.stopUprobeCollector({ collectorId: start.collectorId });
      expect(Number(stop.summary?.calls)).toBe(k);
      expect(stop.summary?.processCount).toBe(4);
      const events = await client.queryUprobeEvents({ collectorId: start.collectorId, limit: 1000 });
      for (const e of events.events) expect(workerPids).toContain(e.pid);
    }, 120_000);
  });
});
