// JavaScript functions of real, unmodified Node processes traced through
// their V8 inspector (no mocks): exact counts for sync and async functions,
// captured arguments, a TypeScript app through its source map, bad names,
// and the target left clean after a session and after the agent's SIGKILL.
import { relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loopbackListeners } from "../../profile/inspector.ts";
import { hasDisableSigusr1 } from "../../profile/testing.ts";
import { DebugError } from "../program.ts";
import { SessionLimiter } from "../probe-session.ts";
import { waitFor } from "../testing.ts";
import { NodeFunctionSession, withNodeFunctions } from "./session.ts";
import { agentProcess, compileTsApp, expectClean as expectCleanOf, killAll, request as get, startApp, testdata } from "./testdata/apps.ts";

const appJs = testdata("app.mjs");
/** How the app's file is shown: relative to its working directory (this test's). */
const shown = relative(process.cwd(), appJs);
/** The target has no recorder left, app.mjs's source is back, and its inspector no longer listens. */
const expectClean = (pid: number, before: Set<number>) => expectCleanOf(pid, before, { script: "app.mjs" });

describe("Node function sessions (V8 inspector)", () => {
  let app: { pid: number; port: number };
  let before: Set<number>;
  let nextId = 1;
  const start = (functionName: string, extra: Partial<Parameters<typeof NodeFunctionSession.start>[0]> = {}) =>
    NodeFunctionSession.start({ id: `node-test-${nextId++}`, pid: app.pid, functionName, durationMs: 60_000, limiter: new SessionLimiter(), ...extra });

  beforeAll(async () => {
    app = await startApp(appJs);
    before = await loopbackListeners(app.pid);
  });

  afterAll(() => killAll());

  it("lists the app's own functions with file, line and async, and nothing of Node or node_modules", async () => {
    const fns = await withNodeFunctions(app.pid, {}, (f) => f);
    const byName = new Map(fns.map((f) => [f.name, f]));
    expect(byName.get("add")).toMatchObject({ file: shown, line: 10, async: false, params: ["a", "b"] });
    expect(byName.get("lookupUser")).toMatchObject({ line: 15, async: true, params: ["id", "delayMs"] });
    expect(byName.get("handle")).toMatchObject({ async: true });
    expect([...byName.keys()]).toEqual(expect.arrayContaining(["mayThrow", "Store.run", "Queue.run"]));
    expect(fns.every((f) => f.script === appJs)).toBe(true);
    await expectClean(app.pid, before);
  });

  it("a sync function: N calls give exactly N entries and N returns, then the target is clean", async () => {
    const s = await start("add");
    expect(s.program.function.name).toBe(`add (${shown}:10)`);
    expect(s.method).toBe("instrumented");
    expect((await get(app.port, "/add?n=40")).body).toBe(String(20 * 200 + [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38].reduce((a, b) => a + b + 1, 0)));
    const summary = await s.stop();
    expect(summary.entries).toBe(40);
    expect(summary.calls).toBe(40);
    expect(s.events.filter((e) => e.type === "return").every((e) => e.durationNs! >= 0 && e.durationNs! < 50e6)).toBe(true);
    expect(summary.stopReason).toBe("stopped");
    await expectClean(app.pid, before);
  });

  it("an async function: durations are the awaited time, arguments captured by name", async () => {
    const s = await start("lookupUser", { captureArgs: 2 });
    expect((await get(app.port, "/lookup?n=5&ms=80")).body).toBe("user-0,user-1,user-2,user-3,user-4");
    const summary = await s.stop();
    expect(summary.entries).toBe(5);
    expect(summary.calls).toBe(5);
    const durations = s.events.filter((e) => e.type === "return").map((e) => e.durationNs! / 1e6);
    for (const ms of durations) {
      expect(ms).toBeGreaterThanOrEqual(75);
      expect(ms).toBeLessThan(2000);
    }
    const args = s.events.filter((e) => e.type === "entry").map((e) => e.args);
    expect(args).toEqual([0, 1, 2, 3, 4].map((i) => [String(i), "80"]));
    await expectClean(app.pid, before);
  });

  it("--capture-return: a sync function's returned values, an async one's settled values (a promise returned included), none for a throw", async () => {
    const sync = await start("add", { captureReturn: true });
    expect(sync.capturesReturn).toBe(true);
    expect((await get(app.port, "/add?n=4")).body).toBe(String(1 + 200 + 3 + 200));
    await sync.stop();
    expect(sync.events.filter((e) => e.type === "return").map((e) => e.ret)).toEqual(["1", "200", "3", "200"]);
    await expectClean(app.pid, before);

    const awaited = await start("lookupUser", { captureReturn: true });
    expect((await get(app.port, "/lookup?n=3&ms=20")).body).toBe("user-0,user-1,user-2");
    await awaited.stop();
    expect(awaited.events.filter((e) => e.type === "return").map((e) => e.ret).sort()).toEqual([0, 1, 2].map((i) => `{id: ${i}, name: "user-${i}"}`));
    await expectClean(app.pid, before);

    // lookupLater returns lookupUser's promise: its value is what that promise resolves to.
    const later = await start("lookupLater", { captureReturn: true });
    expect((await get(app.port, "/later?n=2")).body).toBe("user-0,user-1");
    const laterSummary = await later.stop();
    expect([laterSummary.entries, laterSummary.calls]).toEqual([2, 2]);
    expect(later.events.filter((e) => e.type === "return").map((e) => e.ret).sort()).toEqual([0, 1].map((i) => `{id: ${i}, name: "user-${i}"}`));
    await expectClean(app.pid, before);

    const throws = await start("mayThrow", { captureReturn: true });
    expect((await get(app.port, "/throw")).body).toBe("caught");
    await throws.stop();
    expect(throws.events.map((e) => [e.type, e.ret])).toEqual([["entry", undefined], ["return", undefined]]);
    await expectClean(app.pid, before);
  });

  it("records what a call threw or rejected with as its error, with or without --capture-return; a negative value returned is a value", async () => {
    const s = await start("reserve");
    expect(s.method).toBe("instrumented");
    expect((await get(app.port, "/reserve?n=3")).body).toBe("-3");
    expect((await get(app.port, "/reserve?n=12")).body).toBe("too many: 12");
    await s.stop();
    expect(s.events.filter((e) => e.type === "return").map((e) => e.ret)).toEqual([undefined, "!RangeError: too many: 12"]);
    await expectClean(app.pid, before);
    const values = await start("reserve", { captureReturn: true });
    expect((await get(app.port, "/reserve?n=12")).body).toBe("too many: 12");
    expect((await get(app.port, "/reserve?n=4")).body).toBe("-4");
    await values.stop();
    expect(values.events.filter((e) => e.type === "return").map((e) => e.ret)).toEqual(["!RangeError: too many: 12", "-4"]);
    await expectClean(app.pid, before);
  });

  it("by file:line; a call that throws ends when it throws (rewritten function), or has no return (breakpoints)", async () => {
    const s = await start("app.mjs:20");
    expect(s.fn?.name).toBe("mayThrow");
    expect(s.method).toBe("instrumented");
    expect((await get(app.port, "/throw")).body).toBe("caught");
    const summary = await s.stop();
    expect([summary.entries, summary.calls]).toEqual([1, 1]);
    await expectClean(app.pid, before);
    const bp = await start("app.mjs:20", { mechanism: "breakpoints" });
    expect(bp.method).toBe("breakpoints");
    expect((await get(app.port, "/throw")).body).toBe("caught");
    const bpSummary = await bp.stop();
    expect([bpSummary.entries, bpSummary.calls]).toEqual([1, 0]);
    await expectClean(app.pid, before);
  });

  it("a default parameter's code does not hide the entry: every call counted, with and without the argument", async () => {
    const s = await start("greet");
    expect((await get(app.port, "/greet")).body).toBe("hi a hello b");
    const summary = await s.stop();
    expect([summary.entries, summary.calls]).toEqual([2, 2]);
  });

  it("sample rate, max events and the duration end the session like a uprobe session", async () => {
    const sampled = await start("add", { sampleRate: 4 });
    await get(app.port, "/add?n=40");
    expect((await sampled.stop()).calls).toBe(10);
    const capped = await start("add", { maxEvents: 6 });
    await get(app.port, "/add?n=40");
    await waitFor(() => !capped.running, 10_000, "the max_events end");
    expect(capped.stopReason).toBe("max_events");
    expect(capped.events).toHaveLength(6);
    const short = await start("add", { durationMs: 300 });
    await waitFor(() => !short.running, 10_000, "the duration end");
    expect(short.stopReason).toBe("duration");
    await expectClean(app.pid, before);
  });

  it("one session per process: a second is refused with the first named; functions are listed from the running one", async () => {
    const first = await start("add");
    const second = await start("lookupUser").catch((e: unknown) => e);
    expect((second as DebugError).code).toBe("limit_reached");
    expect((second as DebugError).message).toMatch(/already traces add \(.*app\.mjs:10\) in process \d+: one session per Node process at a time/);
    expect((await withNodeFunctions(app.pid, {}, (f) => f)).map((f) => f.name)).toContain("lookupUser");
    await first.stop();
    await expectClean(app.pid, before);
  });

  it("a name that matches nothing or several functions is a clear error, the process untouched", async () => {
    const none = await start("nope").catch((e: unknown) => e);
    expect(none).toBeInstanceOf(DebugError);
    expect((none as DebugError).code).toBe("function_not_found");
    const several = await start("run").catch((e: unknown) => e);
    expect((several as DebugError).code).toBe("invalid_option");
    expect((several as DebugError).message).toBe(`"run" matches 2 functions: Store.run (${shown}:26), Queue.run (${shown}:32); name one as file:line`);
    expect((await get(app.port, "/")).body).toBe("3");
    await expectClean(app.pid, before);
  });

  it("a TypeScript app compiled with source maps: the function by its .ts name and line", async () => {
    const dir = compileTsApp();
    const ts = await startApp("dist/users.js", { cwd: dir });
    const fns = await withNodeFunctions(ts.pid, {}, (f) => f);
    expect(fns.find((f) => f.name === "fetchUser")).toMatchObject({ file: "src/users.ts", line: 10, async: true, label: "fetchUser (src/users.ts:10)" });
    const s = await NodeFunctionSession.start({ id: "node-test-ts", pid: ts.pid, functionName: "src/users.ts:10", durationMs: 60_000 });
    for (let i = 0; i < 3; i++) expect(JSON.parse((await get(ts.port, `/user?id=${i}`)).body)).toEqual({ id: i, name: `user-${i}` });
    const summary = await s.stop();
    expect([summary.entries, summary.calls]).toEqual([3, 3]);
    expect(summary.p50Ns).toBeGreaterThanOrEqual(15e6);
  });

  it("the target exiting mid-session ends the session with what it recorded", async () => {
    const other = await startApp(appJs);
    const s = await NodeFunctionSession.start({ id: "node-test-exit", pid: other.pid, functionName: "add", durationMs: 60_000 });
    await get(other.port, "/add?n=4");
    await waitFor(() => s.events.length === 8, 10_000, "the 8 events drained");
    other.child.kill("SIGKILL");
    await waitFor(() => !s.running, 10_000, "the session to end");
    expect(s.stopReason).toBe("bpftrace_exit");
    expect(s.summary().calls).toBe(4);
  });

  it.skipIf(!hasDisableSigusr1)("a process started with --disable-sigusr1: a clear error, the process untouched", async () => {
    const off = await startApp(appJs, { flags: ["--inspect-port=0", "--disable-sigusr1"] });
    const err = await NodeFunctionSession.start({ id: "node-test-nosig", pid: off.pid, functionName: "add" }).catch((e: unknown) => e);
    expect((err as DebugError).message).toMatch(/does not handle SIGUSR1 \(started with --disable-sigusr1\?\)/);
    expect((await get(off.port, "/add?n=2")).status).toBe(200);
  });

  it("the agent SIGKILLed mid-session: the target keeps serving, the watchdog removes the recorder and closes the inspector", async () => {
    const { child, said } = agentProcess("attach-and-wait.ts", [String(app.pid)]);
    await said("attached");
    const attachedAt = Date.now();
    child.kill("SIGKILL");
    // Breakpoints went with the WebSocket; the recorder and the inspector with the watchdog (2 s + 1 s margin).
    expect((await get(app.port, "/add?n=10")).status).toBe(200);
    await waitFor(async () => [...(await loopbackListeners(app.pid))].every((p) => before.has(p)), 15_000, "the watchdog to close the inspector");
    expect(Date.now() - attachedAt).toBeLessThan(3000 + 5000);
    expect((await get(app.port, "/lookup?n=2&ms=1")).status).toBe(200);
    await expectClean(app.pid, before);
  });
});
