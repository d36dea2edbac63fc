// The rough edges a new user meets in the first hour (issue 18, item 6), each
// as the user meets it: the real `coral` CLI as a process, a real colony, real
// agents and real servers.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createServer, type Server } from "node:net";
import { describe, expect, it } from "vitest";
import { testAgent } from "../helpers/agents.ts";
import { coralBin, runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";

/** A TCP server on 127.0.0.1 that counts the connections it accepts. */
async function countingServer(): Promise<{ server: Server; port: number; accepted: () => number } & AsyncDisposable> {
  let accepted = 0;
  const server = createServer((socket) => {
    accepted++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return { server, port, accepted: () => accepted, [Symbol.asyncDispose]: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  return exited;
}

describe("the first hour", () => {
  it("a taken API port names the port, the config key and the environment variable", { timeout: 120_000 }, async () => {
    await using project = await createTestProject();
    await using taken = await countingServer();
    const res = await runCoral(["colony", "start", "--log-level", "error"], { cwd: project.dir, env: { CORAL_HOME: project.home, CORAL_API_PORT: String(taken.port) }, timeoutMs: 90_000 });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`the colony API cannot listen on 127.0.0.1:${taken.port}: port ${taken.port} is already in use`);
    expect(res.stderr).toContain("set colony.api.port in .coral/config.yaml or the CORAL_API_PORT environment variable to a free port");
    expect(res.stderr).not.toMatch(/^Error: listen EADDRINUSE/m);
  });

  it("a second agent of the same name says one already runs (its pid) and exits 2, not with DuckDB's lock error", { timeout: 180_000 }, async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const env = { ...process.env, NO_COLOR: "1", CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port };
    const appPort = await freePort();
    const first = spawn(process.execPath, [coralBin, "connect", "api", "--port", String(appPort)], { cwd: project.dir, env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    first.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    first.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await waitFor("the first agent to connect", () => out.includes("✓ Connected: api"), { timeoutMs: 90_000 });
      const second = await runCoral(["connect", "api", "--port", String(appPort)], { cwd: project.dir, env, timeoutMs: 90_000 });
      expect(second.code).toBe(2);
      expect(second.stderr).toContain(`an agent named api is already running here (pid ${first.pid}`);
      expect(second.stderr).toContain("stop it");
      expect(second.stderr).toContain("choose another name");
      expect(second.stderr).not.toMatch(/Could not set lock|Conflicting lock/);
      // In the background too: the daemon's own words and code, not "exited with code 2".
      const daemon = await runCoral(["connect", "api", "--port", String(appPort), "--daemon"], { cwd: project.dir, env, timeoutMs: 90_000 });
      expect(daemon.code).toBe(2);
      expect(daemon.stderr).toContain(`an agent named api is already running here (pid ${first.pid}`);
    } finally {
      await stopProcess(first);
    }
  });

  describe("against a colony with one component", () => {
    it("unknown names and bad flags exit 2 and say what is known; status shows PID, CPU and memory", { timeout: 180_000 }, async () => {
      await using project = await createTestProject();
      const colony = await project.start();
      const env = { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port };
      const run = (args: string[]) => runCoral(args, { cwd: project.dir, env });
      await using agent = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "api-1", serviceName: "api", port: 8080, version: "2.1.0" });
      await agent.register();
      await agent.heartbeat();

      // Item 4: the text table has the PID, CPU and memory the JSON had.
      const status = await run(["status"]);
      expect(status.code).toBe(0);
      // (Other columns may sit between them, e.g. PROCS, the process count.)
      expect(status.stdout).toMatch(/^COMPONENT\s+STATUS\s+VERSION\s+UPTIME\s+PORT\s+PID\s.*\bCPU\s+MEMORY\s+RESTARTS$/m);
      expect(status.stdout).toMatch(/^api\s+● up\s+2\.1\.0\s+.*\s8080\s+4242\s.*\s12\.5%\s+64\.0 MiB\s+0$/m);

      // Item 3: an unknown component or event type is named, with the known ones, exit 2.
      const metrics = await run(["metrics", "nosuchservice"]);
      expect(metrics.code).toBe(2);
      expect(metrics.stderr).toContain('unknown component "nosuchservice": the colony knows api');
      const eventsOfNobody = await run(["events", "--service", "nosuchservice"]);
      expect(eventsOfNobody.code).toBe(2);
      expect(eventsOfNobody.stderr).toContain('unknown component "nosuchservice"');
      const bogus = await run(["events", "--type", "bogus"]);
      expect(bogus.code).toBe(2);
      expect(bogus.stderr).toMatch(/unknown event type "bogus": use one of .*health_changed.*process_found.*restart/);
      // A known type with no events is not a mistake.
      const none = await run(["events", "--type", "restart"]);
      expect(none.code).toBe(0);
      const known = await run(["metrics", "api"]);
      expect(known.code).toBe(0);

      // Usage errors exit 2 in every command: bad flag values, caught by the CLI or by the colony.
      const usage: string[][] = [
        ["events", "--since", "5x"],
        ["metrics", "api", "--interval", "7m"],
        ["status", "--colony-url", "ftp://127.0.0.1:1"],
        ["status", "--colony-url", "not a url"],
        ["history", "nosuchservice"],
        ["connect", "api", "--port", "70000"],
        ["connect", "Bad_Name", "--port", "8080"],
        ["init", "--app", "Bad Name", "--env", "dev", "--dir", project.dir, "--force"],
        ["token", "create", "--name", "x", "--ttl", "10s"],
        ["debug", "attach", "api"],
        ["events", "--no-such-flag"],
      ];
      for (const args of usage) {
        const res = await run(args);
        expect({ args, code: res.code }).toEqual({ args, code: 2 });
        expect(res.stderr).toMatch(/error/i);
      }
    });
  });

  it("--help shows durations as durations, never as milliseconds", { timeout: 400_000 }, async () => {
    const expected: Array<[string[], RegExp]> = [
      [["events", "--help"], /--since <duration>\s+how far back\s+\(default:\s+1h\)/],
      [["metrics", "--help"], /--since <duration>\s+how far back\s+\(default:\s+1h\)/],
      [["connect", "--help"], /--sample-interval <duration>\s+how often to sample the process\s+\(default:\s+1s\)/],
      [["connect", "--help"], /--summary-interval <duration>\s+how often to send summaries to the\s+colony\s+\(default:\s+1m\)/],
      [["colony", "invite", "--help"], /--ttl <duration>\s+how long it can be used \(1m to 30d\)\s+\(default:\s+1h\)/],
      [["debug", "attach", "--help"], /--duration <time>\s+how long to trace, at most 10m\s+\(default:\s+1m\)/],
    ];
    const helps = new Map<string, string>();
    for (const [args, pattern] of expected) {
      const key = args.join(" ");
      if (!helps.has(key)) {
        const res = await runCoral(args);
        expect(res.code).toBe(0);
        helps.set(key, res.stdout);
      }
      expect(helps.get(key)).toMatch(pattern);
    }
    // No duration flag of any command shows a bare number as its default.
    const commands = [["colony", "start"], ["debug", "events"], ["token", "create"], ["history"], ["ask"], ["up"], ["insights"]];
    for (const args of [...commands, ...expected.map(([a]) => a.slice(0, -1))]) {
      const help = helps.get([...args, "--help"].join(" ")) ?? (await runCoral([...args, "--help"])).stdout;
      // One line per option (help wraps at 80 columns), then: a duration flag and a bare number as its default.
      const text = help.replace(/\s+/g, " ");
      expect({ args, numeric: /<(?:duration|time)>(?:(?! --).)*\(default: \d+\)/.exec(text)?.[0] }).toEqual({ args, numeric: undefined });
    }
  });

  it("--colony-url naming this folder's own colony uses its local token; another folder's does not", { timeout: 180_000 }, async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    await using other = await createTestProject({ app: "other" });
    const env = { CORAL_HOME: project.home };

    const own = await runCoral(["status", "--colony-url", colony.url], { cwd: project.dir, env });
    expect(own.stderr).toBe("");
    expect(own.code).toBe(0);
    expect(own.stdout).toContain(`Colony: ${project.colonyId} (${colony.url})`);
    const viaLocalhost = await runCoral(["status", "--json", "--colony-url", colony.url.replace("127.0.0.1", "localhost")], { cwd: project.dir, env });
    expect(viaLocalhost.code).toBe(0);
    expect((JSON.parse(viaLocalhost.stdout) as { colonyId: string }).colonyId).toBe(project.colonyId);

    // From the folder of another colony (not the one at that URL), the local token there is not sent.
    const elsewhere = await runCoral(["status", "--colony-url", colony.url], { cwd: other.dir, env: { ...env, CORAL_HOME: other.home } });
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toMatch(/not authenticated: this colony needs a token for remote calls/);
  });

  it("an agent whose port has no listener says it is waiting, in status text and JSON", { timeout: 180_000 }, async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port };
    const port = await freePort();
    await using agent = await testAgent(project, colony.url, "ghost", port, { healthUrl: undefined });
    const api = colonyApi(colony.url, project.localToken);
    await waitFor("the colony to see ghost", async () => ((await api.getStatus({})).services.find((s) => s.name === "ghost")?.status === "online" ? true : undefined), {
      timeoutMs: 60_000,
    });
    expect(agent.agentId).toMatch(/^ghost-/);

    const json = await runCoral(["status", "--json"], { cwd: project.dir, env });
    expect(json.code).toBe(0);
    const ghost = (JSON.parse(json.stdout) as { services: Array<{ name: string; status: string; health: string; pid?: number }> }).services.find((s) => s.name === "ghost");
    expect(ghost).toMatchObject({ status: "online", health: "waiting" });
    const text = await runCoral(["status"], { cwd: project.dir, env });
    expect(text.stdout).toMatch(new RegExp(`^ghost\\s+● waiting \\(no process on port ${port}\\)\\s`, "m"));
    expect(text.stdout).not.toMatch(/^ghost\s+● up/m);
  });

  it("the default health check opens no connection to the app: a server counting accepts gets none", { timeout: 180_000 }, async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    await using app = await countingServer();
    // The agent's default: no --health given.
    await using agent = await testAgent(project, colony.url, "counted", app.port, { healthUrl: undefined, sampleIntervalMs: 200 });
    // Many health intervals pass (every probe records health_up), all healthy.
    const probes = await waitFor(
      "ten health probes",
      async () => {
        const rows = (await agent.store.queryMetrics({ metricName: "health_up", since: new Date(0), until: new Date(Date.now() + 60_000), limit: 1000 })).rows;
        return rows.length >= 10 ? rows : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(probes.every((p) => p.value === 1)).toBe(true);
    const api = colonyApi(colony.url, project.localToken);
    await waitFor("the colony to see counted healthy", async () => (await api.getStatus({})).services.find((s) => s.name === "counted")?.health === "healthy", { timeoutMs: 60_000 });
    expect(app.accepted()).toBe(0);
  });

  it("debug functions fits long names in the terminal; --json has them whole", { timeout: 240_000 }, async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const port = await freePort();
    // A native program with names longer than a terminal line (as C++ and Rust have).
    const bin = join(mkdtempSync(join(tmpdir(), "coral-long-names-")), "long-names");
    execFileSync("gcc", ["-O1", "-o", bin, fileURLToPath(new URL("./testdata/long-names.c", import.meta.url))]);
    const app = spawn(bin, [String(port)], { stdio: "ignore" });
    try {
      await using agent = await testAgent(project, colony.url, "web", port, { healthUrl: undefined });
      expect(agent.agentId).toMatch(/^web-/);
      const remote = ["--colony-url", colony.url, "--token", project.localToken];
      const env = { CORAL_HOME: project.home };
      let last = "";
      const json = await waitFor(
        "the agent to list the program's functions",
        async () => {
          const res = await runCoral(["debug", "functions", "web", "--pattern", "coral_", "--limit", "300", "--json", ...remote], { env, timeoutMs: 120_000 });
          last = `exit ${res.code}: ${res.stderr.slice(0, 500)}`;
          if (res.code !== 0) return undefined;
          const parsed = JSON.parse(res.stdout) as { pid: number; functions: Array<{ name: string; demangled?: string }> };
          return parsed.pid === app.pid && parsed.functions.length > 0 ? parsed : undefined;
        },
        { timeoutMs: 120_000, intervalMs: 1000 },
      ).catch((err: unknown) => {
        throw new Error(`${String(err)}; the last answer: ${last}`);
      });
      const longest = Math.max(...json.functions.map((f) => Math.max(f.name.length, f.demangled?.length ?? 0)));
      expect(longest).toBeGreaterThan(100);

      const text = await runCoral(["debug", "functions", "web", "--pattern", "coral_", "--limit", "300", ...remote], { env, timeoutMs: 120_000 });
      expect(text.code).toBe(0);
      const lines = text.stdout.trimEnd().split("\n");
      expect(lines.length).toBeGreaterThan(4);
      expect(Math.max(...lines.map((l) => [...l].length))).toBeLessThanOrEqual(100);
      expect(text.stdout).toContain("…");
      expect(lines.at(-1)).toBe("(names cut to fit: --json prints them whole, --pattern narrows)");
      // C names need no demangling: no DEMANGLED column.
      expect(lines.find((l) => l.startsWith("FUNCTION"))).toMatch(/^FUNCTION\s+ADDRESS\s+SIZE$/);
    } finally {
      await stopProcess(app);
    }
  });
});
