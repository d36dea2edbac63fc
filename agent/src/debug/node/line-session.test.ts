// Logpoints and snapshots on lines of real, unmodified Node processes through
// their V8 inspector (no mocks): exact values, conditions, the names in scope
// with a TDZ one, expressions with side effects or that throw refused on the
// first hit with the target running and not paused, a line without code, a
// TypeScript file through its source map, and the target clean after the
// agent's SIGKILL: mid-session, and while the target is paused on the first
// hit waiting for the agent's check (it resumes when the agent's inspector
// connection closes).
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loopbackListeners, openInspector } from "../../profile/inspector.ts";
import { DebugError } from "../program.ts";
import { SessionLimiter } from "../probe-session.ts";
import { waitFor } from "../testing.ts";
import { NodeLineSession, type NodeLineOptions } from "./line-session.ts";
import { agentProcess, compileTsApp, expectClean, killAll, request, startApp, testdata } from "./testdata/apps.ts";

const linesJs = testdata("lines.mjs");
const shown = relative(process.cwd(), linesJs);

const get = async (port: number, path: string) => (await request(port, path)).body;

const values = (s: NodeLineSession) => s.events.map((e) => e.value);

describe("Node logpoints and snapshots (V8 inspector)", () => {
  let app: { pid: number; port: number };
  let before: Set<number>;
  let nextId = 1;
  const start = (kind: NodeLineOptions["kind"], location: string, extra: Partial<NodeLineOptions> = {}) =>
    NodeLineSession.start({ id: `line-test-${nextId++}`, pid: app.pid, kind, location, durationMs: 60_000, limiter: new SessionLimiter(), ...extra });
  const refused = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e as DebugError);

  beforeAll(async () => {
    app = await startApp(linesJs);
    before = await loopbackListeners(app.pid);
  });

  afterAll(() => killAll());

  it("a logpoint records the expression's value each time the line runs, exactly, without pausing", async () => {
    const s = await start("logpoint", "lines.mjs:13", { expression: "i * 10 + doubled" });
    expect(s.program.function.name).toBe(`${shown}:13`);
    expect(await get(app.port, "/total?n=6")).toBe(String([0, 1, 2, 3, 4, 5].reduce((a, i) => a + 2 * i + 1, 0)));
    await waitFor(() => s.events.length === 6, 10_000, "6 values");
    const summary = await s.stop();
    expect(values(s)).toEqual(["0", "12", "24", "36", "48", "60"]);
    expect(s.events.every((e) => e.type === "log" && e.pid === app.pid)).toBe(true);
    expect([summary.entries, summary.calls, summary.p50Ns, summary.lostEvents, summary.stopReason]).toEqual([6, 0, 0, 0, "stopped"]);
    await expectClean(app.pid, before);
  });

  it("a logpoint with a condition; values formatted like the recorder's fmt (strings quoted, objects depth-limited)", async () => {
    const s = await start("logpoint", "lines.mjs:13", { expression: "{ key, n: [i, { deep: { deeper: 1 } }] }", condition: "i % 2 === 1" });
    await get(app.port, "/total?n=5");
    await waitFor(() => s.events.length === 2, 10_000, "2 values");
    await s.stop();
    expect(values(s)).toEqual(['{key: "k1", n: [1, {…}]}', '{key: "k3", n: [3, {…}]}']);
    await expectClean(app.pid, before);
  });

  it("later hits whose expression throws record the error as the value", async () => {
    const s = await start("logpoint", "lines.mjs:31", { expression: "user.name.length" });
    expect(await get(app.port, "/name?v=abc")).toBe("3");
    expect(await get(app.port, "/name?v=null")).toBe("-1");
    await waitFor(() => s.events.length === 2, 10_000, "2 values");
    await s.stop();
    expect(values(s)).toEqual(["3", "!TypeError: Cannot read properties of null (reading 'length')"]);
  });

  it("the recorder's per-second cap: values over it are counted as lost, not recorded", async () => {
    const s = await start("logpoint", "lines.mjs:13", { expression: "i", perSecond: 3 });
    await get(app.port, "/total?n=10");
    await waitFor(() => s.events.length + s.lostEvents === 10, 10_000, "10 hits drained");
    // Within one second (a run of 10 calls takes well under it): 3 kept; across a second boundary, at most 6.
    expect(s.events.length).toBeGreaterThanOrEqual(3);
    expect(s.events.length).toBeLessThanOrEqual(6);
    expect(values(s).slice(0, 3)).toEqual(["0", "1", "2"]);
    expect((await s.stop()).lostEvents).toBe(10 - s.events.length);
  });

  it("a snapshot captures the params, destructured and let/const locals, a TDZ name, the first N times; then it ends by itself", async () => {
    const s = await start("snapshot", "lines.mjs:21", { snapshotCount: 2 });
    expect(s.names.map((n) => n.name)).toEqual(["unit", "id", "first", "rest", "sum", "later", "order", "qty"]);
    for (const id of [1, 2, 3]) expect(await get(app.port, `/price?id=${id}`)).toBe(String(16 + id + 2));
    await waitFor(() => !s.running, 10_000, "the snapshots taken");
    expect(s.stopReason).toBe("max_events");
    expect(s.events.map((e) => [e.type, JSON.parse(e.value!) as unknown])).toEqual(
      [1, 2].map((id) => [
        "snapshot",
        { unit: "5", id: String(id), first: '"a"', rest: '["b"]', sum: "<uninitialized>", later: "<uninitialized>", order: `{id: ${id}, items: ["a", "b"]}`, qty: "3" },
      ]),
    );
    await expectClean(app.pid, before);
  });

  it("a snapshot with a condition, inside a block", async () => {
    const s = await start("snapshot", "lines.mjs:25", { condition: "id === 7" });
    for (const id of [5, 7]) await get(app.port, `/price?id=${id}`);
    await waitFor(() => !s.running, 10_000, "the snapshot taken");
    expect(JSON.parse(s.events[0]!.value!)).toMatchObject({ inner: "9", id: "7", later: "16", sum: "15" });
    expect(s.events).toHaveLength(1);
  });

  it("an expression with side effects is refused on the first hit: nothing ran, the breakpoint is gone, the target runs, not paused", async () => {
    const seenBefore = Number(await get(app.port, "/seen"));
    for (const expression of ["seen.push(1)", "globalThis.leak = i"]) {
      const s = await start("logpoint", "lines.mjs:13", { expression });
      expect(await get(app.port, "/total?n=3")).toBe("9");
      await waitFor(() => !s.running, 10_000, "the session to end");
      expect(s.stopReason).toBe("error");
      expect(s.stopDetail).toMatch(/^the expression has side effects: .* \(EvalError: Possible side-effect in debug-evaluate\); logpoints evaluate only side-effect-free expressions$/);
      expect(s.events).toEqual([]);
      await expectClean(app.pid, before);
    }
    // The target serves (it is not paused) and nothing of the expressions ran.
    expect(await get(app.port, "/seen")).toBe(String(seenBefore + 6));
    const s = await openInspector(app.pid);
    try {
      expect((await s.send<{ result: { value: string } }>("Runtime.evaluate", { expression: "typeof globalThis.leak", returnByValue: true })).result.value).toBe("undefined");
    } finally {
      await s.close();
    }
  });

  it("a condition with side effects, an expression that throws: refused with the reason", async () => {
    const cond = await start("logpoint", "lines.mjs:13", { expression: "i", condition: "seen.pop()" });
    await get(app.port, "/total?n=1");
    await waitFor(() => !cond.running, 10_000, "the session to end");
    expect(cond.stopDetail).toMatch(/^the condition has side effects: seen\.pop\(\) \(EvalError: .*\); conditions are evaluated only when they have no side effects$/);
    const throws = await start("logpoint", "lines.mjs:13", { expression: "nope.x" });
    await get(app.port, "/total?n=1");
    await waitFor(() => !throws.running, 10_000, "the session to end");
    expect(throws.stopDetail).toBe(`the expression throws at ${shown}:13: ReferenceError: nope is not defined`);
    expect(await get(app.port, "/total?n=2")).toBe("4");
    await expectClean(app.pid, before);
  });

  it("a condition false on the first hit: it pauses again only where the condition holds, then records", async () => {
    const s = await start("logpoint", "lines.mjs:14", { expression: "doubled", condition: "i >= 3" });
    await get(app.port, "/total?n=5");
    await waitFor(() => s.events.length === 2, 10_000, "2 values");
    await s.stop();
    expect(values(s)).toEqual(["6", "8"]);
  });

  it("bad input: syntax checked before the process is touched, a line without code, a file that matches nothing or several", async () => {
    const syntax = await refused(start("logpoint", "lines.mjs:13", { expression: "1); process.exit(" }));
    expect([syntax?.code, syntax?.message]).toEqual(["invalid_option", "the expression is not one JavaScript expression (statements are not allowed)"]);
    const condSyntax = await refused(start("snapshot", "lines.mjs:13", { condition: "a +" }));
    expect(condSyntax?.message).toMatch(/^the condition is not a JavaScript expression: Unexpected token/);
    expect((await refused(start("snapshot", "lines.mjs:13", { snapshotCount: 51 })))?.message).toBe("snapshot count must be an integer in [1, 50], got 51");
    const blank = await refused(start("logpoint", "lines.mjs:17", { expression: "1" }));
    expect([blank?.code, blank?.message]).toEqual(["invalid_option", `${shown}:17 has no code V8 can break on (the nearest lines with code: 15, 19)`]);
    const none = await refused(start("logpoint", "nope.mjs:3", { expression: "1" }));
    expect(none?.code).toBe("function_not_found");
    expect(none?.message).toContain(`no file "nope.mjs" among the app's scripts (they are: ${shown})`);
    expect(await get(app.port, "/total?n=1")).toBe("1");
    await expectClean(app.pid, before);
  });

  it("a TypeScript file:line through the source map (logpoint and snapshot)", async () => {
    const dir = compileTsApp();
    const ts = await startApp("dist/users.js", { cwd: dir });
    const log = await NodeLineSession.start({ id: "line-test-ts", pid: ts.pid, kind: "logpoint", location: "users.ts:12", expression: "`user-${id}`", durationMs: 60_000 });
    expect(log.program.function.name).toBe("src/users.ts:12");
    for (let i = 0; i < 3; i++) expect(JSON.parse(await get(ts.port, `/user?id=${i}`))).toEqual({ id: i, name: `user-${i}` });
    await waitFor(() => log.events.length === 3, 10_000, "3 values");
    await log.stop();
    expect(values(log)).toEqual(['"user-0"', '"user-1"', '"user-2"']);
    const snap = await NodeLineSession.start({ id: "line-test-ts-snap", pid: ts.pid, kind: "snapshot", location: "src/users.ts:17", durationMs: 60_000 });
    await get(ts.port, "/user?id=9");
    await waitFor(() => !snap.running, 10_000, "the snapshot");
    expect(JSON.parse(snap.events[0]!.value!)).toEqual({ id: "9", req: expect.stringMatching(/^\{/) as unknown, res: expect.stringMatching(/^\{/) as unknown });
    const noCode = await refused(NodeLineSession.start({ id: "line-test-ts-none", pid: ts.pid, kind: "logpoint", location: "src/users.ts:6", expression: "1" }));
    expect(noCode?.message).toBe("src/users.ts:6 has no code V8 can break on (the nearest lines with code: 3, 10)");
  });

  it("the agent SIGKILLed while the target is paused on the first hit: the target resumes, the line runs unpaused, nothing of ours left", async () => {
    const { child, said } = agentProcess("logpoint-and-wait.ts", [String(app.pid), "lines.mjs:13", "key"]);
    await said("attached");
    // The agent stops answering: the first hit pauses the target on the checking breakpoint and stays paused.
    child.kill("SIGSTOP");
    // Where the target's main thread waits: idle, in its event loop (epoll); paused, in the inspector's message loop (a futex).
    const waitsIn = (kind: RegExp) => waitFor(() => kind.test(readFileSync(`/proc/${app.pid}/wchan`, "utf8")), 15_000, `the target to wait in ${kind.source}`);
    await waitsIn(/epoll/);
    let answered = false;
    const pending = request(app.port, "/total?n=2", 30_000).then((r) => ((answered = true), r.body));
    await waitsIn(/futex/);
    expect(answered).toBe(false);
    const killedAt = Date.now();
    child.kill("SIGKILL");
    // The WebSocket closed with the agent: V8 drops the session's breakpoints and resumes.
    expect(await pending).toBe("4");
    expect(Date.now() - killedAt).toBeLessThan(4000);
    for (let i = 0; i < 3; i++) expect(await get(app.port, "/total?n=3")).toBe("9");
    // The recorder's watchdog (2 s + 1 s margin, counted from the install) removes it and closes the inspector.
    await expectClean(app.pid, before);
    expect(await get(app.port, "/total?n=2")).toBe("4");
  });

  it("the agent SIGKILLed mid-logpoint: the target keeps serving, no breakpoint and no recorder left, the inspector closed", async () => {
    const { child, said } = agentProcess("logpoint-and-wait.ts", [String(app.pid), "lines.mjs:13", "key"]);
    await said("attached");
    // The first hit checked, the recording breakpoint set; then the agent dies.
    expect(await get(app.port, "/total?n=2")).toBe("4");
    await said("checked");
    const killedAt = Date.now();
    child.kill("SIGKILL");
    expect(await get(app.port, "/total?n=3")).toBe("9");
    await waitFor(async () => [...(await loopbackListeners(app.pid))].every((p) => before.has(p)), 15_000, "the watchdog to close the inspector");
    expect(Date.now() - killedAt).toBeLessThan(3000 + 5000);
    await expectClean(app.pid, before);
    // The line still runs, unpaused, with nothing recording it.
    expect(await get(app.port, "/total?n=2")).toBe("4");
  });
});
