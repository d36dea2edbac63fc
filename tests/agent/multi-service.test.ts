// One agent process for several services (`coral connect web:3000 api:3001 …`),
// as a user runs it beside the local colony: each service its own identity in
// the colony; services added and removed on the running agent over its
// control socket (`coral connect --add/--remove/--list`) and from a config
// file (`--config`, SIGHUP or `--reload`); bad requests refused with what is
// wrong while the others keep being observed; one service's process going
// away leaves the others alone.
import { spawn, type ChildProcess } from "node:child_process";
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { kernelConnectionsUnavailable, processSet } from "@coral/agent";
import { sampleComponentScript } from "@coral/cli/sample-app";
import { coralBin, runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

interface Listed {
  ok: boolean;
  services: { spec: { name: string; port: number; healthUrl?: string }; state: string; agentId?: string }[];
  error?: string;
  note?: string;
}

/** A sample app component (its store role: it answers by itself, /health included), observed under any name. */
async function component(): Promise<{ port: number; proc: ChildProcess }> {
  const port = await freePort();
  const proc = spawn(process.execPath, [sampleComponentScript, "store", String(port)], { stdio: "ignore" });
  return { port, proc };
}

const noBpf = kernelConnectionsUnavailable();

/** The kernel programs the agent runs, by kind (the first line of each bpftrace program names it). */
async function bpftracePrograms(agentPid: number): Promise<Record<string, number>> {
  const kinds: Record<string, number> = {};
  for (const pid of (await processSet(agentPid)).slice(1)) {
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    } catch {
      continue; // gone
    }
    if (!argv[0]?.endsWith("bpftrace")) continue;
    const program = argv[argv.indexOf("-e") + 1] ?? "";
    const kind = program.includes("inet_sock_set_state") ? "connections" : program.includes("RED metrics") ? "requests" : program.includes("always-on CPU") ? "profile" : "other";
    kinds[kind] = (kinds[kind] ?? 0) + 1;
  }
  return kinds;
}

/** `coral connect …` in the foreground, its output collected. */
function startAgent(args: string[], cwd: string, env: Record<string, string>) {
  const proc = spawn(process.execPath, [coralBin, "connect", ...args], { cwd, env: { ...process.env, ...env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
  const output = { text: "" };
  proc.stdout!.on("data", (d: Buffer) => (output.text += d.toString()));
  proc.stderr!.on("data", (d: Buffer) => (output.text += d.toString()));
  return { proc, output };
}

async function stopAgent(proc: ChildProcess): Promise<number | null> {
  if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  proc.kill("SIGTERM");
  return exited;
}

describe("one agent, several services", () => {
  it("observes each service under its own identity; --add, --remove and --list change and show it while it runs", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port };
    const api = colonyApi(colony.url, project.localToken);
    const web = await component();
    const back = await component();
    const store = await component();
    // Request tracing and the always-on profiler are off for the suite (vitest.config.ts): on here, to see the services share them.
    const agent = startAgent([`web:${web.port}`, `api:${back.port}/health`], project.dir, { ...env, CORAL_HTTP_TRACING: "1", CORAL_PROFILE_HZ: "19" });
    const coral = (args: string[]) => runCoral(["connect", ...args], { cwd: project.dir, env });
    try {
      await waitFor("both services to connect", () => (agent.output.text.includes(`✓ Connected: web (localhost:${web.port})`) && agent.output.text.includes(`✓ Connected: api (localhost:${back.port})`) ? true : undefined), {
        timeoutMs: 90_000,
      });
      expect(agent.output.text).toContain(`health http://127.0.0.1:${back.port}/health`);
      const pidsOf = async () => Object.fromEntries((await api.getStatus({})).services.filter((s) => s.status === "online").map((s) => [s.name, s.pid]));
      await waitFor("the colony to see web and api with their processes", async () => {
        const p = await pidsOf();
        return p.web === web.proc.pid && p.api === back.proc.pid ? true : undefined;
      });
      const status = await api.getStatus({});
      const ids = status.services.filter((s) => s.name === "web" || s.name === "api").map((s) => s.agentId);
      expect(new Set(ids).size).toBe(2);

      // The control socket: the agent's user only. It opens after the services have connected ("Press Ctrl+C" follows it).
      await waitFor("the agent's control socket", () => (agent.output.text.includes("Press Ctrl+C to stop") ? true : undefined), { timeoutMs: 60_000 });
      const socket = join(project.dir, ".coral", "agents", "agent.sock");
      expect((await stat(socket)).mode & 0o777).toBe(0o600);

      const listed = await coral(["--list", "--json"]);
      expect(listed.code, listed.stderr).toBe(0);
      const list = JSON.parse(listed.stdout) as Listed;
      expect(list.services.map((s) => [s.spec.name, s.spec.port, s.state])).toEqual([
        ["web", web.port, "running"],
        ["api", back.port, "running"],
      ]);
      expect(list.services.map((s) => s.agentId).sort()).toEqual([...ids].sort());
      const table = await coral(["--list"]);
      expect(table.stdout).toMatch(/SERVICE\s+PORT\s+STATE\s+AGENT ID/);
      expect(table.stdout).toMatch(new RegExp(`api\\s+${back.port}\\s+running`));

      const added = await coral(["--add", `store:${store.port}/health`]);
      expect(added.code, added.stderr).toBe(0);
      expect(added.stdout).toContain(`✓ Added store (port ${store.port}) to the running agent`);
      await waitFor("the colony to see store", async () => ((await pidsOf()).store === store.proc.pid ? true : undefined));
      if (noBpf === null) {
        // Three services, one kernel program of each kind: the services share them.
        await waitFor("one connection, one request and one profile program for the three services", async () => {
          const kinds = await bpftracePrograms(agent.proc.pid!);
          return kinds.connections === 1 && kinds.requests === 1 && kinds.profile === 1 ? kinds : undefined;
        });
        expect(await bpftracePrograms(agent.proc.pid!)).toEqual({ connections: 1, requests: 1, profile: 1 });
      } else console.log(`kernel programs not counted: ${noBpf}`);

      // Bad requests: refused with what is wrong (exit 2), the agent unchanged.
      const sameName = await coral(["--add", `web:${await freePort()}`]);
      expect(sameName.code).toBe(2);
      expect(sameName.stderr).toMatch(/already observes "web"/);
      const samePort = await coral(["--add", `other:${back.port}`]);
      expect(samePort.code).toBe(2);
      expect(samePort.stderr).toMatch(new RegExp(`"other" and "api" both name port ${back.port}`));
      const malformed = await coral(["--add", "web3000"]);
      expect(malformed.code).toBe(2);
      expect(malformed.stderr).toMatch(/is not name:port\[\/health-path\]/);
      const missing = await coral(["--remove", "nothere"]);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toMatch(/does not observe "nothere"; it observes: web, api, store/);

      const removed = await coral(["--remove", "api"]);
      expect(removed.code, removed.stderr).toBe(0);
      await waitFor("api to leave the colony", async () => ((await api.getStatus({})).services.find((s) => s.name === "api")?.status !== "online" ? true : undefined));
      const after = JSON.parse((await coral(["--list", "--json"])).stdout) as Listed;
      expect(after.services.map((s) => s.spec.name)).toEqual(["web", "store"]);

      // web's process goes away: store is still observed, the agent still runs.
      web.proc.kill("SIGKILL");
      await waitFor("the colony to see web's process gone", async () => ((await pidsOf()).web !== web.proc.pid ? true : undefined), { timeoutMs: 60_000 });
      const beforeStore = (await api.getStatus({})).services.find((s) => s.name === "store")!.lastSeen!;
      await waitFor("store's heartbeats to go on", async () => {
        const s = (await api.getStatus({})).services.find((x) => x.name === "store");
        return s?.status === "online" && s.pid === store.proc.pid && Number(s.lastSeen!.seconds) > Number(beforeStore.seconds) ? true : undefined;
      }, { timeoutMs: 60_000 });
      expect(agent.proc.exitCode).toBeNull();
    } finally {
      const code = await stopAgent(agent.proc);
      for (const c of [web, back, store]) c.proc.kill("SIGKILL");
      expect(code, agent.output.text).toBe(0);
    }
  }, 300_000);

  it("refuses a service list with the same name or port twice, or a word without a port", async () => {
    await using project = await createTestProject();
    const env = { CORAL_HOME: project.home };
    const run = (args: string[]) => runCoral(["connect", ...args], { cwd: project.dir, env });
    const twiceName = await run(["api:3001", "api:3002"]);
    expect(twiceName.code).toBe(2);
    expect(twiceName.stderr).toMatch(/the service "api" is named twice/);
    const twicePort = await run(["api:3001", "web:3001"]);
    expect(twicePort.code).toBe(2);
    expect(twicePort.stderr).toMatch(/"web" and "api" both name port 3001/);
    const noPort = await run(["api:3001", "web"]);
    expect(noPort.code).toBe(2);
    expect(noPort.stderr).toMatch(/"web" has no port: write each service as name:port/);
    const badPort = await run(["api:70000"]);
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toMatch(/port must be a port from 1 to 65535/);
    const noAgent = await run(["--list"]);
    expect(noAgent.code).toBe(1);
    expect(noAgent.stderr).toMatch(/no agent is running in/);
  }, 120_000);

  it("reads its services from --config, and again on SIGHUP and --reload; a bad file leaves them running", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port };
    const api = colonyApi(colony.url, project.localToken);
    const web = await component();
    const store = await component();
    const config = join(project.dir, "agent.yaml");
    await writeFile(config, `services:\n  - name: web\n    port: ${web.port}\n`);
    const agent = startAgent(["--config", config], project.dir, env);
    const online = async () => (await api.getStatus({})).services.filter((s) => s.status === "online").map((s) => s.name).sort();
    try {
      await waitFor("web to connect", () => (agent.output.text.includes(`✓ Connected: web (localhost:${web.port})`) ? true : undefined), { timeoutMs: 90_000 });

      await writeFile(config, `services:\n  - name: web\n    port: ${web.port}\n  - name: store\n    port: ${store.port}\n    health: /health\n`);
      agent.proc.kill("SIGHUP");
      await waitFor("the reload on SIGHUP", () => (agent.output.text.includes(`✓ Reloaded ${config}: 1 service added, 0 removed, 0 restarted with new settings`) ? true : undefined), {
        timeoutMs: 90_000,
      });
      await waitFor("the colony to see web and store", async () => ((await online()).join() === "store,web" ? true : undefined));

      // A broken file: refused, nothing changes.
      await writeFile(config, "services:\n  - name: Web\n    port: nope\n");
      const refused = await runCoral(["connect", "--reload"], { cwd: project.dir, env });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(config);
      const still = JSON.parse((await runCoral(["connect", "--list", "--json"], { cwd: project.dir, env })).stdout) as Listed;
      expect(still.services.map((s) => `${s.spec.name}:${s.state}`)).toEqual(["web:running", "store:running"]);

      await writeFile(config, `services:\n  - name: store\n    port: ${store.port}\n    health: /health\n`);
      const reloaded = await runCoral(["connect", "--reload", "--json"], { cwd: project.dir, env });
      expect(reloaded.code, reloaded.stderr).toBe(0);
      const answer = JSON.parse(reloaded.stdout) as Listed;
      expect(answer.note).toBe("0 services added, 1 removed, 0 restarted with new settings");
      expect(answer.services.map((s) => s.spec.name)).toEqual(["store"]);
      await waitFor("web to leave the colony", async () => ((await online()).join() === "store" ? true : undefined));
    } finally {
      const code = await stopAgent(agent.proc);
      web.proc.kill("SIGKILL");
      store.proc.kill("SIGKILL");
      expect(code, agent.output.text).toBe(0);
    }
  }, 300_000);
});
