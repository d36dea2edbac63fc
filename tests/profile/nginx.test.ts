// `coral profile cpu` on software we did not write: Debian's nginx as the
// distribution ships it (apt-get install -y --no-install-recommends
// nginx-light): a stripped binary (only .dynsym, no .symtab, no DWARF), a
// master that forks 2 workers, and clients that open a connection per
// request. The profile must cover the whole process set, find the requests'
// CPU in the workers, and name nginx's own functions from the dynamic symbols.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testAgent } from "../helpers/agents.ts";
import { runCoral } from "../helpers/cli.ts";
import { createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { bpfSkipReason, onPath, targetListening } from "../debug/helpers.ts";

const skip = bpfSkipReason([]) ?? (onPath("nginx") ? undefined : "nginx not installed (apt-get install -y --no-install-recommends nginx-light)");
if (skip) console.log(`profile nginx.test: SKIPPING the nginx CPU profile: ${skip}`);

const childrenOf = (pid: number) => readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);

/** GETs `/` on a new connection each time (agent: false) until `stop` is aborted; resolves with the count of 200s. */
async function loadUntil(port: number, stop: AbortSignal, parallel = 2): Promise<number> {
  let ok = 0;
  const one = () =>
    new Promise<void>((resolve) => {
      http
        .get({ host: "127.0.0.1", port, path: "/", agent: false }, (res) => {
          if (res.statusCode === 200) ok++;
          res.resume();
          res.on("end", resolve);
        })
        .on("error", () => resolve());
    });
  await Promise.all(Array.from({ length: parallel }, async () => { while (!stop.aborted) await one(); }));
  return ok;
}

interface JsonProfile {
  profile: { method: string; pids: number[]; processNames: Record<string, string>; frames: { function: string; module: string; kernel: boolean }[]; stacks: { frameIds: number[]; samples: string; pid: number }[] };
}

describe.skipIf(skip !== undefined)("coral profile cpu on Debian's nginx (master + 2 workers)", () => {
  let project: TestProject | undefined;
  let agent: Awaited<ReturnType<typeof testAgent>> | undefined;
  let master: ChildProcess | undefined;
  let workers: number[] = [];
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "coral-nginx-profile-"));
    mkdirSync(join(dir, "logs"));
    const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `${t}_temp_path ${join(dir, t)};`).join(" ");
    writeFileSync(
      join(dir, "nginx.conf"),
      `worker_processes 2; daemon off; pid ${join(dir, "nginx.pid")}; error_log ${join(dir, "logs/error.log")};
events { worker_connections 256; }
http { access_log off; ${temp} server { listen 127.0.0.1:${port}; location / { return 200 "ok\\n"; } } }`,
    );
    master = spawn("nginx", ["-p", dir, "-c", join(dir, "nginx.conf")], { stdio: "ignore" });
    await targetListening(port);
    workers = await waitFor("nginx's 2 workers", () => {
      const c = childrenOf(master!.pid!);
      return c.length === 2 ? c : undefined;
    });
    project = await createTestProject();
    const colony = await project.start();
    agent = await testAgent(project, colony.url, "nginx", port, { healthUrl: undefined });
  }, 180_000);
  afterAll(async () => {
    await agent?.close();
    await project?.[Symbol.asyncDispose]();
    // SIGTERM: the master stops its workers (SIGKILL would leave them running).
    master?.kill("SIGTERM");
    await waitFor("nginx's workers to exit", () => workers.every((p) => !existsSync(`/proc/${p}`)) || undefined, { timeoutMs: 30_000 });
  });

  it("samples every process of the set, finds the requests in the workers, and names nginx's functions from .dynsym", async () => {
    const coral = (args: string[]) => runCoral(["profile", "cpu", "nginx", ...args], { cwd: project!.dir, env: { CORAL_HOME: project!.home, CORAL_TOKEN: undefined, CORAL_COLONY_URL: undefined } });
    // The agent must have found nginx (its master) before a profile can cover it.
    await waitFor("the colony to know nginx's agent", async () => (await coral(["--duration", "1s", "--json"])).code === 0 || undefined, { timeoutMs: 60_000 });
    const stop = new AbortController();
    const load = loadUntil(port, stop.signal);
    let res;
    try {
      res = await coral(["--duration", "4s", "--hz", "199", "--json"]);
    } finally {
      stop.abort();
    }
    const requests = await load;
    expect(res.code, res.stderr).toBe(0);
    expect(requests).toBeGreaterThan(50);
    const { profile } = JSON.parse(res.stdout) as JsonProfile;
    expect(profile.method).toBe("ebpf");
    expect(profile.pids).toEqual(expect.arrayContaining([master!.pid!, ...workers]));
    for (const w of workers) expect(profile.processNames[String(w)]).toBe("nginx");
    const samplesIn = (pids: number[]) => profile.stacks.filter((s) => pids.includes(s.pid)).reduce((n, s) => n + Number(s.samples), 0);
    const inWorkers = samplesIn(workers);
    // The requests are served by the workers: nearly all the set's CPU is theirs, the master only waits.
    expect(inWorkers).toBeGreaterThan(20);
    expect(inWorkers).toBeGreaterThan(5 * samplesIn([master!.pid!]));
    // nginx's own functions, named from the dynamic symbol table of the stripped binary (Debian's nginx keeps no
    // .symtab), and the kernel's side of the per-request connections.
    const workerFrames = new Set(profile.stacks.filter((s) => workers.includes(s.pid)).flatMap((s) => s.frameIds.map((i) => profile.frames[i]!)));
    const nginxNames = [...workerFrames].filter((f) => f.module === "/usr/sbin/nginx").map((f) => f.function);
    console.log(`nginx: ${requests} requests, ${inWorkers} samples in the workers, ${samplesIn([master!.pid!])} in the master; nginx frames: ${[...new Set(nginxNames)].slice(0, 8).join(", ")}`);
    expect(nginxNames.length).toBeGreaterThan(0);
    expect(nginxNames.every((n) => /^ngx_\w+$/.test(n) || /^0x[0-9a-f]+$/.test(n))).toBe(true);
    expect(nginxNames.some((n) => n.startsWith("ngx_"))).toBe(true);
    expect([...workerFrames].some((f) => f.kernel && /tcp|sock|inet/.test(f.function))).toBe(true);
  }, 180_000);
});
