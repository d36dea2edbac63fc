// coral debug functions / attach / logpoint / snapshot on a Node service, end to end: the real CLI
// process, a real colony, a real agent, and an unmodified Node HTTP service
// whose V8 inspector the agent opens on demand (no bpftrace, no restart).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loopbackListeners } from "@coral/agent/debug";
import type { RunningColony } from "@coral/colony";
import { runCoral } from "../helpers/cli.ts";
import { debugTools } from "@coral/cli/tools";
import { colonyApi, type TestProject } from "../helpers/colony.ts";
import { waitFor } from "../helpers/wait.ts";
import { debugApi, nodeAppBin, nodeAppShown, startObservedTarget, type ObservedTarget } from "./helpers.ts";

/** How the app's file is shown: relative to its working directory (the target inherits this test's). */
const shown = nodeAppShown();

describe("coral debug on a Node service", () => {
  let fixture: ObservedTarget | undefined;
  let project: TestProject;
  let colony: RunningColony;
  let port: number;
  let pid: number;
  let remote: string[];
  let env: Record<string, string>;

  beforeAll(async () => {
    fixture = await startObservedTarget(nodeAppBin(), "users", { pattern: "lookup" });
    ({ port, project, colony } = fixture);
    pid = fixture.target.pid!;
    remote = ["--colony-url", colony.url, "--token", project.localToken];
    env = { CORAL_HOME: project.home };
  }, 120_000);

  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
  });

  it("functions lists the JavaScript functions with file:line, as text and JSON", async () => {
    const text = await runCoral(["debug", "functions", "users", ...remote], { env });
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`users: pid ${pid} (Node)`);
    expect(text.stdout).toMatch(new RegExp(`lookupUser\\s+${shown.replace(/[.]/g, "\\.")}:15\\s+async`));
    const json = await runCoral(["debug", "functions", "users", "--pattern", "add", "--json", ...remote], { env });
    const res = JSON.parse(json.stdout) as { runtime: string; functions: { name: string; file: string; line: number }[] };
    expect(res.runtime).toBe("node");
    expect(res.functions).toEqual([expect.objectContaining({ name: "add", file: shown, line: 10 })]);
  });

  it("attach traces an async function: every call, its arguments and the awaited time; the target left clean", async () => {
    const before = await loopbackListeners(pid);
    const running = runCoral(["debug", "attach", "users", "--function", "lookupUser", "--duration", "8s", "--capture-args", "2", ...remote], { env, timeoutMs: 60_000 });
    const api = debugApi(colony.url, project.localToken);
    await waitFor("session active", async () => (await api.listDebugSessions({ state: "active" })).sessions.length === 1);
    const res0 = await fetch(`http://127.0.0.1:${port}/lookup?n=5&ms=60`);
    expect(await res0.text()).toBe("user-0,user-1,user-2,user-3,user-4");
    const res = await running;
    if (res.code !== 0) console.log(res.stdout, res.stderr);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain("📊 Function: lookupUser in users");
    expect(res.stdout.match(/\] ENTRY {3}pid=\d+ tid=\d+ args=\(\d, 60\)/g)).toHaveLength(5);
    expect(res.stdout.match(/\] RETURN {2}pid=\d+ tid=\d+ duration=(\d+)\.\dms/g)).toHaveLength(5);
    for (const m of res.stdout.matchAll(/RETURN {2}pid=\d+ tid=\d+ duration=(\d+\.\d)ms/g)) expect(Number(m[1])).toBeGreaterThanOrEqual(55);
    expect(res.stdout).toMatch(/Total calls: 5\n/);
    await waitFor("the inspector closed", async () => [...(await loopbackListeners(pid))].every((p) => before.has(p)), { timeoutMs: 15_000 });
  });

  it("attach counts a call as an error when it threw or rejected, not when it returned a negative value", async () => {
    const running = runCoral(["debug", "attach", "users", "--function", "reserve", "--duration", "8s", "--capture-return", ...remote], { env, timeoutMs: 60_000 });
    const api = debugApi(colony.url, project.localToken);
    const active = await waitFor("session active", async () => (await api.listDebugSessions({ state: "active" })).sessions[0]);
    expect(active.runtime).toBe("node");
    for (const [n, body] of [[3, "-3"], [12, "too many: 12"], [5, "-5"]] as const) expect(await (await fetch(`http://127.0.0.1:${port}/reserve?n=${n}`)).text()).toBe(body);
    const res = await running;
    if (res.code !== 0) console.log(res.stdout, res.stderr);
    expect(res.code).toBe(0);
    expect(res.stdout.match(/RETURN {2}pid=\d+ tid=\d+ duration=\S+( ret=\S+)?/g)?.map((l) => l.replace(/duration=\S+ ?/, ""))).toEqual([
      `RETURN  pid=${pid} tid=${pid} ret=-3`,
      `RETURN  pid=${pid} tid=${pid} `,
      `RETURN  pid=${pid} tid=${pid} ret=-5`,
    ]);
    expect(res.stdout).toContain("  └─ error: threw RangeError: too many: 12\n");
    expect(res.stdout).not.toContain("error: returned");
    expect(res.stdout).toMatch(/Total calls: 3\n/);
    expect(res.stdout).toContain("  Errors (threw or rejected): 1 (33.3%)\n");
  });

  it("logpoint prints the expression's value each time the line runs; sessions shows it; the target left clean", async () => {
    const before = await loopbackListeners(pid);
    const running = runCoral(["debug", "logpoint", "users", "app.mjs:11", "--expr", "a + b", "--max-events", "4", "--duration", "30s", ...remote], { env, timeoutMs: 60_000 });
    const api = debugApi(colony.url, project.localToken);
    await waitFor("logpoint active", async () => (await api.listDebugSessions({ state: "active" })).sessions.some((s) => s.kind === "logpoint"));
    expect(await (await fetch(`http://127.0.0.1:${port}/add?n=4`)).text()).toBe(String(1 + 200 + 3 + 200));
    const res = await running;
    if (res.code !== 0) console.log(res.stdout, res.stderr);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain(`📍 Line: app.mjs:11 in users (pid ${pid})`);
    expect(res.stdout).toContain("🧮 Expression: a + b");
    const lines = [...res.stdout.matchAll(/^\d\d:\d\d:\d\d\.\d{3} {2}(\d+) {2}(.*)$/gm)];
    expect(lines.map((m) => [Number(m[1]), m[2]])).toEqual(["1", "201", "3", "201"].map((v) => [pid, v]));
    expect(res.stdout).toContain("Values recorded: 4");
    const listed = await runCoral(["debug", "sessions", "--service", "users", "--json", ...remote], { env });
    const sessions = (JSON.parse(listed.stdout) as { sessions: { kind: string; expression: string; functionName: string; summary: { entries: string } }[] }).sessions;
    const listedLogpoint = sessions.find((s) => s.kind === "logpoint") as { sessionId?: string } | undefined;
    expect(listedLogpoint).toMatchObject({ expression: "a + b", functionName: "app.mjs:11", summary: { entries: "4" } });
    // MCP (and coral ask) read the values through coral_debug_events.
    const read = await debugTools[2].run({ colony: colonyApi(colony.url, project.localToken), debug: api }, { session: listedLogpoint!.sessionId! });
    expect(read.data).toMatchObject({ kind: "logpoint", records: 4 });
    expect(read.text).toMatch(/\(logpoint app\.mjs:11 in users\) is stopped \(event limit\)/);
    expect(read.text).toMatch(/4 value\(s\) of a \+ b read; latest \(UTC\):\n- \d\d:\d\d:\d\d\.\d{3} pid=\d+: 1\n/);
    await waitFor("the inspector closed", async () => [...(await loopbackListeners(pid))].every((p) => before.has(p)), { timeoutMs: 15_000 });
  });

  it("snapshot prints the arguments and locals the first N times, as JSON too", async () => {
    const running = runCoral(["debug", "snapshot", "users", `${shown}:12`, "--count", "2", "--duration", "30s", "--json", ...remote], { env, timeoutMs: 60_000 });
    const api = debugApi(colony.url, project.localToken);
    await waitFor("snapshot active", async () => (await api.listDebugSessions({ state: "active" })).sessions.some((s) => s.kind === "snapshot"));
    await fetch(`http://127.0.0.1:${port}/add?n=3`);
    const res = await running;
    if (res.code !== 0) console.log(res.stdout, res.stderr);
    expect(res.code).toBe(0);
    const out = JSON.parse(res.stdout) as { session: { kind: string; snapshotCount: number }; snapshots: { pid: number; values: Record<string, string> }[] };
    expect(out.session).toMatchObject({ kind: "snapshot", snapshotCount: 2 });
    // add(0, 1) takes line 12; add(200, 1) returns on line 11; add(2, 1) is the second.
    expect(out.snapshots.map((s) => [s.pid, s.values])).toEqual([
      [pid, { a: "0", b: "1" }],
      [pid, { a: "2", b: "1" }],
    ]);
  });

  it("a logpoint whose expression has side effects is refused on its first hit: exit 1, the reason, the service unharmed", async () => {
    const running = runCoral(["debug", "logpoint", "users", "app.mjs:11", "--expr", "globalThis.hits = (globalThis.hits || 0) + 1", "--duration", "30s", ...remote], { env, timeoutMs: 60_000 });
    const api = debugApi(colony.url, project.localToken);
    await waitFor("logpoint active", async () => (await api.listDebugSessions({ state: "active" })).sessions.some((s) => s.kind === "logpoint"));
    expect(await (await fetch(`http://127.0.0.1:${port}/add?n=2`)).text()).toBe("201");
    const res = await running;
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/logpoint refused: the expression has side effects: .*; logpoints evaluate only side-effect-free expressions/);
    expect(await (await fetch(`http://127.0.0.1:${port}/add?n=2`)).text()).toBe("201");
    const usage = await runCoral(["debug", "snapshot", "users", "app.mjs", ...remote], { env });
    expect(usage.code).not.toBe(0);
    expect(usage.stderr).toMatch(/must be file:line/);
  });

  it("attach to a name that matches several functions says which ones", async () => {
    const res = await runCoral(["debug", "attach", "users", "--function", "run", "--duration", "5s", ...remote], { env, timeoutMs: 60_000 });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`"run" matches 2 functions: Store.run (${shown}:26), Queue.run (${shown}:32); name one as file:line`);
  });
});
