// The kernel tracers one agent process shares between its services: one
// bpftrace program each, every request and connection handed to the service
// whose process it was. Real node:http servers, real bpftrace (as root);
// counts asserted exactly.
import http from "node:http";
import { fileURLToPath } from "node:url";
import { pollUntil } from "@coral/common/async";
import { afterEach, describe, expect, it } from "vitest";
import type { ServedRequest } from "./http/pairing.ts";
import { SharedHttpTracer } from "./http/shared-tracer.ts";
import { kernelConnectionsUnavailable } from "./kernel-connections.ts";
import { SharedKernelConnections } from "./shared-kernel-connections.ts";
import { startListeningServer } from "./testing.ts";

const testdata = fileURLToPath(new URL("./http/testdata/", import.meta.url));
const noBpf = kernelConnectionsUnavailable();
if (noBpf) console.log(`shared tracer tests skipped: ${noBpf}`);

const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

const startServer = () => startListeningServer(process.execPath, [`${testdata}server.mjs`, "0"], (child) => cleanup.push(() => void child.kill("SIGKILL")));

/** One GET on a connection of its own. */
function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent: false, headers: { connection: "close" } }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      })
      .on("error", reject);
  });
}

function tally(seen: ServedRequest[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of seen) out[`${r.method} ${r.route} ${r.status}`] = (out[`${r.method} ${r.route} ${r.status}`] ?? 0) + 1;
  return out;
}

const waitFor = (what: string, ok: () => boolean) => pollUntil(() => (ok() ? true : undefined), { timeoutMs: 30_000, intervalMs: 50, what });

describe.skipIf(noBpf !== null)(`kernel tracers shared by the services of one agent (bpftrace, as root)${noBpf ? ` — skipped: ${noBpf}` : ""}`, () => {
  it("one program each for two services: every request and accept goes to its own service, routes capped per service", async () => {
    const a = await startServer();
    const b = await startServer();
    const http = new SharedHttpTracer({ routeCap: 3 });
    const kernel = new SharedKernelConnections({});
    cleanup.push(() => http.close(), () => kernel.close());
    const seenA: ServedRequest[] = [];
    const seenB: ServedRequest[] = [];
    const reqA = http.view(() => [a.child.pid!]);
    const reqB = http.view(() => [b.child.pid!]);
    reqA.on("requests", (l) => seenA.push(...l));
    reqB.on("requests", (l) => seenB.push(...l));
    const connA = kernel.view(() => [a.child.pid!]);
    const connB = kernel.view(() => [b.child.pid!]);
    const [ra, rb, ka, kb] = await Promise.all([reqA.start(), reqB.start(), connA.start(), connB.start()]);
    expect([ra.state, rb.state, ka.state, kb.state], ra.reason ?? ka.reason).toEqual(["running", "running", "running", "running"]);
    // One program for both services, of each kind.
    expect(ra.bpftracePid).toBeDefined();
    expect(rb.bpftracePid).toBe(ra.bpftracePid);
    expect(kb.bpftracePid).toBe(ka.bpftracePid);

    // A: 5 distinct routes (3 kept, the rest `other`), 12 requests; B: 2 routes, 7 requests.
    for (let i = 0; i < 12; i++) expect(await get(a.port, `/r${i % 5}/x`)).toBe(404);
    for (let i = 0; i < 7; i++) expect(await get(b.port, i % 2 ? "/users/7" : "/boom")).toBe(i % 2 ? 200 : 500);
    await waitFor("A's 12 and B's 7 requests", () => seenA.length >= 12 && seenB.length >= 7);
    await waitFor("the accepts", () => connA.status().accepts >= 12 && connB.status().accepts >= 7);
    expect(tally(seenA)).toEqual({ "GET /r0/x 404": 3, "GET /r1/x 404": 3, "GET /r2/x 404": 2, "GET other 404": 4 });
    expect(tally(seenB)).toEqual({ "GET /users/{id} 200": 3, "GET /boom 500": 4 });
    expect(reqA.status()).toMatchObject({ routes: 3, counts: { requests: 12, overflow: 4 } });
    expect(reqB.status()).toMatchObject({ routes: 2, counts: { requests: 7, overflow: 0 } });
    expect([connA.status().accepts, connB.status().accepts]).toEqual([12, 7]);
    expect(connA.counter.take().reduce((n, c) => n + (c.direction === "inbound" ? c.opened : 0), 0)).toBe(12);

    // B stops observing: A's program runs on, the same process.
    await reqB.stop();
    await connB.stop();
    expect(reqB.status().state).toBe("stopped");
    for (let i = 0; i < 4; i++) await get(a.port, "/r0/x");
    await waitFor("A's next 4 requests", () => seenA.length >= 16);
    expect(reqA.status()).toMatchObject({ state: "running", bpftracePid: ra.bpftracePid, restarts: 0 });
    expect(seenB).toHaveLength(7);
    // The last one out stops the program.
    const program = ra.bpftracePid!;
    await reqA.stop();
    expect(() => process.kill(program, 0)).toThrow();
  }, 180_000);

  it("a service whose process restarts is followed by the running program; the other service loses nothing meanwhile", async () => {
    let a = await startServer();
    const b = await startServer();
    const shared = new SharedHttpTracer({});
    cleanup.push(() => shared.close());
    const seenB: ServedRequest[] = [];
    const seenA: ServedRequest[] = [];
    const reqA = shared.view(() => [a.child.pid!]);
    const reqB = shared.view(() => [b.child.pid!]);
    reqA.on("requests", (l) => seenA.push(...l));
    reqB.on("requests", (l) => seenB.push(...l));
    await Promise.all([reqA.start(), reqB.start()]);
    const program = reqB.status().bpftracePid;
    // B answers all along while A's process is replaced.
    let sent = 0;
    let stop = false;
    const traffic = (async () => {
      while (!stop) {
        await get(b.port, "/users/1");
        sent++;
      }
    })();
    const followed = reqA.status().followed;
    a.child.kill("SIGKILL");
    a = await startServer();
    await waitFor("the new process of A followed", () => reqA.status().followed > followed);
    for (let i = 0; i < 5; i++) await get(a.port, "/users/2");
    await waitFor("A's 5 requests", () => seenA.length >= 5);
    stop = true;
    await traffic;
    await waitFor(`B's ${sent} requests`, () => seenB.length >= sent);
    expect(seenB).toHaveLength(sent);
    expect(sent).toBeGreaterThan(0);
    expect(seenA).toHaveLength(5);
    expect(reqB.status()).toMatchObject({ state: "running", bpftracePid: program, restarts: 0 });
  }, 180_000);
});
