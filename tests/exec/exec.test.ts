// `coral exec` and `coral audit exec` end to end: the built `coral` bin, a real
// colony (auth, exec records), real agents (in-process) beside a real sample
// component, real commands run beside it through nsenter (as root) or on the
// host. Who may run what, the limits, and the record of every attempt.
import { spawn, type ChildProcess } from "node:child_process";
import { readlinkSync } from "node:fs";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import type { RunningAgent } from "@coral/agent";
import type { RunningColony } from "@coral/colony";
import { sampleComponentScript } from "@coral/cli/sample-app";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testAgent } from "../helpers/agents.ts";
import { runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

const root = process.getuid?.() === 0;
let project: TestProject;
let colony: RunningColony;
const agents: RunningAgent[] = [];
const components: ChildProcess[] = [];
const tokens: Record<"exec" | "read" | "admin", string> = { exec: "", read: "", admin: "" };

async function component(name: string, extra: Parameters<typeof testAgent>[4] = {}): Promise<ChildProcess> {
  const port = await freePort();
  const proc = spawn(process.execPath, [sampleComponentScript, "store", String(port)], { stdio: "ignore" });
  components.push(proc);
  agents.push(await testAgent(project, colony.url, name, port, extra));
  await waitFor(`${name} observed`, async () => (await colonyApi(colony.url, project.localToken).getStatus({})).services.find((s) => s.name === name && s.pid === proc.pid), { timeoutMs: 60_000 });
  return proc;
}

beforeAll(async () => {
  project = await createTestProject();
  colony = await project.start();
  const api = colonyApi(colony.url, project.localToken);
  for (const scope of ["exec", "read", "admin"] as const)
    tokens[scope] = (await api.createToken({ name: `t-${scope}`, scope: scope === "exec" ? TokenScope.EXEC : scope === "read" ? TokenScope.READ : TokenScope.ADMIN, ttlSeconds: 3600n })).token;
  await component("store");
  await component("locked", { exec: false });
}, 180_000);

afterAll(async () => {
  for (const a of agents) await a.close().catch(() => undefined);
  for (const p of components) p.kill("SIGKILL");
  await project?.[Symbol.asyncDispose]();
});

/** The built bin as a user runs it; the colony's URL goes before `--` (what follows is the remote command). */
function coral(token: string, ...args: string[]) {
  const dashes = args.indexOf("--");
  const at = dashes === -1 ? args.length : dashes;
  return runCoral([...args.slice(0, at), "--colony-url", colony.url, ...args.slice(at)], { cwd: "/", env: { CORAL_TOKEN: token }, timeoutMs: 90_000 });
}

describe("coral exec", () => {
  it("runs a command beside the service and exits with its code", async () => {
    const r = await coral(tokens.exec, "exec", "store", "--", "sh", "-c", "echo out; echo err >&2; exit 7");
    expect(r).toMatchObject({ code: 7, stdout: "out\n", stderr: "err\n" });
  });

  it.skipIf(!root)("enters the namespaces of the service's process (as root)", async () => {
    const pid = components[0]!.pid!;
    const r = await coral(tokens.exec, "exec", "store", "--", "sh", "-c", "readlink /proc/self/ns/mnt /proc/self/ns/pid; pwd");
    expect(r.code).toBe(0);
    const [mnt, pidNs] = r.stdout.trim().split("\n");
    expect(mnt).toBe(readlinkSync(`/proc/${pid}/ns/mnt`));
    expect(pidNs).toBe(readlinkSync(`/proc/${pid}/ns/pid`));
  });

  it("runs on the agent's host with --host", async () => {
    const r = await coral(tokens.exec, "exec", "store", "--host", "--", "sh", "-c", "echo $((6 * 7))");
    expect(r).toMatchObject({ code: 0, stdout: "42\n" });
  });

  it("says when a command does not exist (127) and stops one that never ends (124)", async () => {
    const missing = await coral(tokens.exec, "exec", "store", "--host", "--", "no-such-command-coral");
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain("no-such-command-coral: command not found");
    const t = Date.now();
    const slow = await coral(tokens.exec, "exec", "store", "--timeout", "1s", "--", "sleep", "60");
    expect(slow).toMatchObject({ code: 124 });
    expect(slow.stderr).toContain("coral exec: timed out after 1s; the command was stopped");
    expect(Date.now() - t).toBeLessThan(30_000);
  });

  it("cuts a flood of output at the cap; the agent keeps running", async () => {
    const r = await coral(tokens.exec, "exec", "store", "--max-output", "64KiB", "--", "yes", "coral");
    expect(r).toMatchObject({ stdout: expect.stringMatching(/^(coral\n)+/) });
    expect(r.stdout.length).toBe(65_536);
    expect(r.stderr).toContain("coral exec: output cut at 64 KiB; the command was stopped");
    expect(await coral(tokens.exec, "exec", "store", "--", "true")).toMatchObject({ code: 0 });
  });

  it.each([
    ["read", /needs a token with the exec scope/],
    ["admin", /needs a token with the exec scope \(admin does not include it\)/],
  ] as const)("refuses a %s token (exit 125)", async (scope, message) => {
    const r = await coral(tokens[scope], "exec", "store", "--", "id");
    expect(r.code).toBe(125);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe("");
    // The attempt is on record: who, which method, why refused.
    const denied = await waitFor("the denial on record", async () => (await colony.store.listAudit(500)).find((x) => x.action === "denied" && x.actor === `t-${scope}` && x.target === "Exec"));
    expect(denied).toMatchObject({ details: { scope, message: expect.stringContaining("needs a token with the exec scope") } });
  });

  it("refuses where the agent's configuration disables exec, and for an unknown service (125)", async () => {
    const locked = await coral(tokens.exec, "exec", "locked", "--", "id");
    expect(locked.code).toBe(125);
    expect(locked.stderr).toContain("coral exec is disabled on this agent");
    const unknown = await coral(tokens.exec, "exec", "nope", "--", "id");
    expect(unknown.code).toBe(125);
  });

  it("coral audit exec lists every attempt: who, which service, the command, how it ended", async () => {
    const r = await coral(tokens.admin, "audit", "exec", "--json", "--limit", "100");
    expect(r.code).toBe(0);
    const records = JSON.parse(r.stdout) as Array<{ actor: string; service: string; argv: string[]; where: string; outcome: string; exit_code: number | null; error: string | null }>;
    const find = (argv: string[]) => records.find((x) => JSON.stringify(x.argv) === JSON.stringify(argv));
    expect(find(["sh", "-c", "echo out; echo err >&2; exit 7"])).toMatchObject({ actor: "t-exec", service: "store", where: "namespaces", outcome: "exited", exit_code: 7 });
    expect(find(["sh", "-c", "echo $((6 * 7))"])).toMatchObject({ where: "host", outcome: "exited", exit_code: 0 });
    expect(find(["sleep", "60"])).toMatchObject({ outcome: "timed_out", exit_code: 124 });
    expect(find(["yes", "coral"])).toMatchObject({ outcome: "truncated" });
    expect(records.find((x) => x.service === "locked")).toMatchObject({ actor: "t-exec", outcome: "refused", error: expect.stringContaining("disabled") });
    // Refused at the colony's door (no exec scope): not run, so not an exec record; the read token cannot list them either.
    const denied = await coral(tokens.read, "audit", "exec");
    expect(denied.code).toBe(1);
    expect(denied.stderr).toMatch(/admin or exec token/);
    const table = await coral(tokens.exec, "audit", "exec", "--service", "store", "--limit", "1");
    expect(table.stdout.split("\n")[0]).toMatch(/^TIME\s+WHO\s+SERVICE\s+WHERE\s+OUTCOME\s+EXIT\s+DURATION\s+COMMAND$/);
  });
});

describe("coral query --agent (the service's raw store on its agent, through the colony)", () => {
  it("reads the agent's per-second samples with a read token, refuses writes, lists the tables", async () => {
    const r = await coral(tokens.read, "query", "--agent", "store", "SELECT metric_name, count(*) AS n FROM metrics WHERE metric_name = 'cpu_percent' GROUP BY metric_name", "--json");
    expect(r.stderr).toBe("");
    const rows = JSON.parse(r.stdout) as Array<{ metric_name: string; n: number }>;
    expect(rows).toEqual([{ metric_name: "cpu_percent", n: expect.any(Number) }]);
    expect(rows[0]!.n).toBeGreaterThan(0);

    const write = await coral(tokens.read, "query", "--agent", "store", "DELETE FROM metrics");
    expect(write.code).toBe(1);
    expect(write.stderr).toMatch(/read-only/);
    const still = JSON.parse((await coral(tokens.read, "query", "--agent", "store", "SELECT count(*) AS n FROM metrics", "--json")).stdout) as Array<{ n: number }>;
    expect(still[0]!.n).toBeGreaterThan(0);

    const schema = JSON.parse((await coral(tokens.read, "query", "--agent", "store", "--schema", "--json")).stdout) as { source: string; engine: string; tables: Array<{ name: string }> };
    expect(schema).toMatchObject({ source: "store", engine: "sqlite" });
    expect(schema.tables.map((t) => t.name)).toEqual(expect.arrayContaining(["metrics", "events", "process_snapshots"]));
    const audit = await colony.store.listAudit(500);
    expect(audit.find((a) => a.action === "query" && a.target === "store" && a.details.sql === "DELETE FROM metrics")).toMatchObject({ actor: "t-read", details: { outcome: "refused" } });
  });
});
