// `coral shell` end to end: the built `coral` bin in a real pseudo-terminal
// (node-pty: the test is the person at the keyboard), a real colony (auth,
// recording), a real agent (in-process) and a real shell on a PTY beside a
// real sample component. Keys, resize, Ctrl+C, exit codes, the recording, who
// may type, and a client that vanishes.
import { spawn as spawnProcess, type ChildProcess } from "node:child_process";
import { spawn as spawnPty, type IPty } from "@lydell/node-pty";
import { ShellService } from "@coral/proto/gen/coral/colony/v1/shell_pb";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import type { RunningAgent } from "@coral/agent";
import type { RunningColony } from "@coral/colony";
import { sampleComponentScript } from "@coral/cli/sample-app";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testAgent } from "../helpers/agents.ts";
import { coralBin, runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject, serviceApi, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

let project: TestProject;
let colony: RunningColony;
let agent: RunningAgent;
let component: ChildProcess;
const tokens = { exec: "", other: "", read: "" };

beforeAll(async () => {
  project = await createTestProject();
  colony = await project.start();
  const api = colonyApi(colony.url, project.localToken);
  tokens.exec = (await api.createToken({ name: "ops", scope: TokenScope.EXEC, ttlSeconds: 3600n })).token;
  tokens.other = (await api.createToken({ name: "other-ops", scope: TokenScope.EXEC, ttlSeconds: 3600n })).token;
  tokens.read = (await api.createToken({ name: "viewer", scope: TokenScope.READ, ttlSeconds: 3600n })).token;
  const port = await freePort();
  component = spawnProcess(process.execPath, [sampleComponentScript, "store", String(port)], { stdio: "ignore" });
  agent = await testAgent(project, colony.url, "store", port);
  await waitFor("store observed", async () => (await api.getStatus({})).services.find((s) => s.name === "store" && s.pid === component.pid), { timeoutMs: 60_000 });
}, 180_000);

afterAll(async () => {
  await agent?.close().catch(() => undefined);
  component?.kill("SIGKILL");
  await project?.[Symbol.asyncDispose]();
});

/** Whether a process of this pid exists (signal 0 only asks). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** `coral shell store` in a terminal of its own; `screen()` is everything it printed so far. */
function openTerminal(token: string, ...extra: string[]) {
  const term: IPty = spawnPty(process.execPath, [coralBin, "shell", "store", ...extra, "--colony-url", colony.url], {
    cols: 80,
    rows: 24,
    cwd: "/",
    env: { ...process.env, CORAL_TOKEN: token, NO_COLOR: "1" } as Record<string, string>,
  });
  let out = "";
  term.onData((d) => (out += d));
  const exited = new Promise<number>((resolve) => term.onExit((e) => resolve(e.exitCode)));
  const screen = () => out;
  const expectOnScreen = (text: string | RegExp, what: string) =>
    waitFor(what, () => (typeof text === "string" ? out.includes(text) : text.test(out)), { timeoutMs: 30_000, intervalMs: 25 });
  return { term, screen, exited, expectOnScreen };
}

describe("coral shell", () => {
  let recordedId = "";

  it("types, resizes, interrupts with Ctrl+C and exits with the shell's code", async () => {
    const t = openTerminal(tokens.exec);
    await t.expectOnScreen(/[#$] $/m, "the remote prompt");
    t.term.write("echo coral-$((6*7))\r");
    await t.expectOnScreen("coral-42", "the command's output");
    t.term.resize(100, 30);
    await waitFor("the resize to reach the remote terminal", async () => {
      t.term.write("stty size\r");
      await new Promise((r) => setTimeout(r, 200));
      return t.screen().includes("30 100");
    }, { timeoutMs: 30_000, intervalMs: 10 });
    t.term.write("sleep 60\r");
    await t.expectOnScreen("sleep 60", "sleep echoed");
    t.term.write("\x03");
    // Under load the interrupt and the next line can race (a line typed while sleep still runs may be
    // flushed with it): type it again each second until it runs; sleep 60 outlasts the deadline.
    await waitFor("a prompt again after Ctrl+C", async () => {
      if (t.screen().includes("after-2")) return true;
      t.term.write("echo after-$((1+1))\r");
      await new Promise((r) => setTimeout(r, 1000));
      return t.screen().includes("after-2");
    }, { timeoutMs: 30_000, intervalMs: 10 });
    t.term.write("exit 3\r");
    expect(await t.exited).toBe(3);
    const id = /coral audit replay (s[0-9a-f]{32})/.exec(t.screen())?.[1];
    expect(id).toBeDefined();
    recordedId = id!;
  });

  it("the session is recorded as asciicast v2: output, input and resizes, replayable", async () => {
    const raw = await runCoral(["audit", "replay", recordedId, "--raw", "--colony-url", colony.url], { cwd: "/", env: { CORAL_TOKEN: tokens.exec } });
    expect(raw.code).toBe(0);
    const [header, ...events] = raw.stdout.trim().split("\n").map((l) => JSON.parse(l) as unknown);
    expect(header).toMatchObject({ version: 2, width: 80, height: 24, title: "coral shell store (ops)" });
    const typed = (events as Array<[number, string, string]>).filter((e) => e[1] === "i").map((e) => e[2]).join("");
    const shown = (events as Array<[number, string, string]>).filter((e) => e[1] === "o").map((e) => e[2]).join("");
    expect(typed).toContain("echo coral-$((6*7))\r");
    expect(typed).toContain("\u0003");
    expect(shown).toContain("coral-42");
    expect(events).toContainEqual([expect.any(Number), "r", "100x30"]);
    const played = await runCoral(["audit", "replay", recordedId, "--speed", "100", "--colony-url", colony.url], { cwd: "/", env: { CORAL_TOKEN: tokens.exec } });
    expect(played.stdout).toContain("coral-42");
    const listed = JSON.parse((await runCoral(["audit", "exec", "--json", "--colony-url", colony.url], { cwd: "/", env: { CORAL_TOKEN: tokens.exec } })).stdout) as Array<{ exec_id: string; kind: string; outcome: string; exit_code: number; actor: string }>;
    expect(listed.find((r) => r.exec_id === recordedId)).toMatchObject({ kind: "shell", outcome: "exited", exit_code: 3, actor: "ops" });
  });

  it("only the token that opened a session may type into it; a read token cannot open one", async () => {
    const t = openTerminal(tokens.exec);
    await t.expectOnScreen(/[#$] $/m, "the remote prompt");
    const id = await waitFor("the session id", async () => {
      const rows = JSON.parse((await runCoral(["audit", "exec", "--json", "--colony-url", colony.url], { cwd: "/", env: { CORAL_TOKEN: tokens.exec } })).stdout) as Array<{ exec_id: string; kind: string; outcome: string }>;
      return rows.find((r) => r.kind === "shell" && r.outcome === "running")?.exec_id;
    });
    const intruder = serviceApi(ShellService, colony.url, tokens.other);
    await expect(intruder.sendShellInput({ sessionId: id, data: new TextEncoder().encode("touch /tmp/intruder\r") })).rejects.toThrow(/opened by another token/);
    t.term.write("exit\r");
    expect(await t.exited).toBe(0);

    const viewer = await runCoral(["shell", "store", "--colony-url", colony.url], { cwd: "/", env: { CORAL_TOKEN: tokens.read } });
    expect(viewer.code).toBe(125);
    expect(viewer.stderr).toContain("needs a token with the exec scope");
  });

  it("a client that vanishes ends the remote shell and everything it started", async () => {
    const t = openTerminal(tokens.exec);
    await t.expectOnScreen(/[#$] $/m, "the remote prompt");
    t.term.write("sleep 300 & echo bg=$!\r");
    const pid = Number((await waitFor("the background pid", () => /bg=(\d+)/.exec(t.screen())?.[1])));
    expect(pid).toBeGreaterThan(1);
    process.kill(t.term.pid, "SIGKILL");
    await waitFor("the remote shell's background job to be gone", () => !alive(pid), { timeoutMs: 30_000 });
  });

  // Last: it stops the agent.
  it("an agent that goes away ends the session: the CLI says so and exits 125, the terminal given back", async () => {
    const t = openTerminal(tokens.exec);
    await t.expectOnScreen(/[#$] $/m, "the remote prompt");
    t.term.write("sleep 300 & echo job=$!\r");
    const pid = Number(await waitFor("the background pid", () => /job=(\d+)/.exec(t.screen())?.[1]));
    await agent.close();
    expect(await t.exited).toBe(125);
    // The agent ended the terminal's whole session as it stopped.
    await waitFor("the shell's background job to be gone", () => !alive(pid), { timeoutMs: 30_000 });
    expect(t.screen()).toMatch(/Error: agent \S+ went away during the session \(.*\); the shell ended with it/);
  });
});
