// The Node line tools (coral_debug_logpoint, coral_debug_snapshot in
// cli/src/tools/debug.ts) against a real colony, a real agent and an
// unmodified Node HTTP service whose V8 inspector the agent opens on demand:
// a read token may not start them, an admin token may (audited); the values
// and snapshots come back exactly through coral_debug_events; a line without
// code and an expression with side effects are answered with the reason.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningColony } from "@coral/colony";
import { debugTools, ToolError, type ToolContext, type ToolResult } from "@coral/cli/tools";
import { colonyApi, type TestProject } from "../helpers/colony.ts";
import { thrown } from "../helpers/errors.ts";
import { waitFor } from "../helpers/wait.ts";
import { debugApi, nodeAppBin, nodeAppShown, startObservedTarget, type ObservedTarget } from "./helpers.ts";

const [listFunctions, , events, , logpoint, snapshot] = debugTools;
const shown = nodeAppShown();
const finalStates = ["completed", "expired", "failed"];

describe("Node logpoint and snapshot tools", () => {
  let fixture: ObservedTarget | undefined;
  let project: TestProject;
  let colony: RunningColony;
  let port: number;
  let pid: number;
  let admin: ToolContext;

  beforeAll(async () => {
    fixture = await startObservedTarget(nodeAppBin(), "users", { pattern: "add" });
    ({ port, project, colony } = fixture);
    pid = fixture.target.pid!;
    admin = { colony: colonyApi(colony.url, project.localToken), debug: fixture.api };
  }, 120_000);

  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
  });

  /** coral_debug_events until the session has `records` and has ended. */
  const ended = (ctx: ToolContext, session: string, records: number): Promise<ToolResult> =>
    waitFor(
      `session ${session} to end with ${records} record(s)`,
      async () => {
        const read = await events.run(ctx, { session });
        const data = read.data as { records: number; state: string };
        return data.records === records && finalStates.includes(data.state) ? read : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );

  it("lists the app's functions with file:line; a logpoint records each value where the condition holds, read back exactly", async () => {
    const fns = await listFunctions.run(admin, { service: "users", pattern: "add" });
    expect(fns.text).toBe(`users: pid ${pid} (Node), 1 function(s) match.\n- add ${shown}:10`);
    expect(fns.data).toMatchObject({ runtime: "node", functions: [{ name: "add", file: shown, line: 10, async: false }] });

    const { token } = await admin.colony.createToken({ name: "assistant", scope: 1 });
    const reader: ToolContext = { colony: colonyApi(colony.url, token), debug: debugApi(colony.url, token) };
    const denied = await thrown(logpoint.run(reader, { service: "users", location: "app.mjs:11", expression: "a + b" }));
    expect(denied).toBeInstanceOf(ToolError);
    expect(denied).toMatchObject({ code: "permission_denied" });
    expect((await thrown(snapshot.run(reader, { service: "users", location: "app.mjs:12" }))) as ToolError).toMatchObject({ code: "permission_denied" });

    const started = await logpoint.run(admin, { service: "users", location: "app.mjs:11", expression: "a + b", condition: "a < 100", max_events: 2, duration: "30s" });
    const session = (started.data as { sessionId: string }).sessionId;
    expect(started.text).toMatch(
      new RegExp(`^Session ${session} is active: recording a \\+ b each time app\\.mjs:11 runs \\(at most 2 values\\) when a < 100 in users \\(pid ${pid}\\) until \\S+Z; the process does not pause`),
    );
    expect(started.text).toContain(`Read it with coral_debug_events session=${session}`);
    expect(started.data).toMatchObject({ kind: "logpoint", state: "active", pid, location: "app.mjs:11" });

    // add(0, 1), add(200, 1), add(2, 1), add(200, 1): the condition keeps the first and third.
    expect(await (await fetch(`http://127.0.0.1:${port}/add?n=4`)).text()).toBe(String(1 + 200 + 3 + 200));
    const read = await ended(reader, session, 2);
    expect(read.text).toMatch(/^Session \S+ \(logpoint app\.mjs:11 if a < 100 in users\) is stopped \(event limit\)[^\n]*\n2 value\(s\) of a \+ b read; latest \(UTC\):\n/);
    expect(read.text.split("\n").slice(2).map((l) => l.replace(/^- \d\d:\d\d:\d\d\.\d{3} /, ""))).toEqual([`pid=${pid}: 1`, `pid=${pid}: 3`]);

    const audit = (await colony.store.listAudit(100)).filter((a) => a.target === session).map((a) => `${a.actor}:${a.action}`);
    expect(audit).toContain("local:debug.attach");
    expect(audit).toContain("assistant:debug.events");
  }, 120_000);

  it("a snapshot captures the arguments and locals the first `count` times, read back as names and values", async () => {
    const started = await snapshot.run(admin, { service: "users", location: `${shown}:12`, count: 2, duration: "30s" });
    const session = (started.data as { sessionId: string }).sessionId;
    expect(started.text).toMatch(new RegExp(`^Session ${session} is active: capturing the arguments and locals at \\S+:12 the first 2 time\\(s\\) it runs in users \\(pid ${pid}\\)`));
    expect(started.data).toMatchObject({ kind: "snapshot", state: "active" });
    // add(0, 1) reaches line 12; add(200, 1) returns on line 11; add(2, 1) is the second.
    await fetch(`http://127.0.0.1:${port}/add?n=3`);
    const read = await ended(admin, session, 2);
    expect(read.data).toMatchObject({ kind: "snapshot", records: 2 });
    expect(read.text.split("\n").slice(2).map((l) => l.replace(/^- \d\d:\d\d:\d\d\.\d{3} /, ""))).toEqual([`pid=${pid}: a = 0, b = 1`, `pid=${pid}: a = 2, b = 1`]);
  }, 120_000);

  it("says why a line or an expression cannot be used, and leaves the service serving", async () => {
    const blank = await thrown(snapshot.run(admin, { service: "users", location: "app.mjs:9" }));
    expect(blank).toBeInstanceOf(ToolError);
    expect((blank as Error).message).toMatch(/:9 has no code V8 can break on \(the nearest lines with code: /);

    const started = await logpoint.run(admin, { service: "users", location: "app.mjs:11", expression: "globalThis.hits = (globalThis.hits || 0) + 1", duration: "30s" });
    const session = (started.data as { sessionId: string }).sessionId;
    expect(await (await fetch(`http://127.0.0.1:${port}/add?n=2`)).text()).toBe("201");
    const refused = await waitFor(
      "the logpoint refused on its first hit",
      async () => {
        const read = await events.run(admin, { session });
        return finalStates.includes((read.data as { state: string }).state) ? read : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(refused.text).toMatch(/^Session \S+ \(logpoint app\.mjs:11 in users\) is [^:\n]+: [^\n]*side effects/);
    expect(refused.data).toMatchObject({ records: 0 });
    expect(await (await fetch(`http://127.0.0.1:${port}/add?n=2`)).text()).toBe("201");
  }, 120_000);
});
