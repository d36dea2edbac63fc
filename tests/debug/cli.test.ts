// The coral debug commands as a user runs them (real CLI process, real
// colony, real agent, real bpftrace on a compiled C program).
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningColony } from "@coral/colony";
import { runCoral } from "../helpers/cli.ts";
import { type TestProject } from "../helpers/colony.ts";
import { waitFor } from "../helpers/wait.ts";
import { bpfSkipReason, compilePayments, debugApi, request, startObservedTarget, type ObservedTarget } from "./helpers.ts";

const skip = bpfSkipReason();
if (skip) console.log(`debug cli.test: SKIPPING real bpftrace tests: ${skip}`);

describe.skipIf(skip !== undefined)("coral debug", () => {
  let fixture: ObservedTarget | undefined;
  let project: TestProject;
  let colony: RunningColony;
  let port: number;
  let remote: string[];
  let env: Record<string, string>;

  beforeAll(async () => {
    fixture = await startObservedTarget(compilePayments(), "payments", { pattern: "validate" });
    ({ port, project, colony } = fixture);
    remote = ["--colony-url", colony.url, "--token", project.localToken];
    env = { CORAL_HOME: project.home };
  }, 120_000);

  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
  });

  it("functions lists what can be traced, as text and JSON", async () => {
    const text = await runCoral(["debug", "functions", "payments", "--pattern", "card", ...remote], { env });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/validate_card\s+0x[0-9a-f]+\s+\d+/);
    const json = await runCoral(["debug", "functions", "payments", "--json", ...remote], { env });
    const names = (JSON.parse(json.stdout) as { functions: { name: string }[] }).functions.map((f) => f.name);
    expect(names).toEqual(expect.arrayContaining(["validate_card", "never_called", "main"]));
  });

  it("attach streams ENTRY/RETURN lines with SLOW marks, prints the summary and saves events.json", async () => {
    const out = await mkdtemp(join(tmpdir(), "coral-debug-out-"));
    const running = runCoral(
      ["debug", "attach", "payments", "--function", "validate_card", "--duration", "10s", "--capture-args", "1", "--capture-return", "--slow", "2ms", "--output-dir", out, ...remote],
      { env, timeoutMs: 60_000 },
    );
    // 10 s leaves room for a slow poll on a loaded machine before the calls are driven.
    const api = debugApi(colony.url, project.localToken);
    await waitFor("session active", async () => (await api.listDebugSessions({ state: "active" })).sessions.length === 1);
    expect(await request(port, "10 30")).toBe("ok 600");
    const res = await running;
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    if (!/\] ENTRY/.test(res.stdout)) console.log(`coral debug attach printed:\n${res.stdout}`);
    const id = /session: (dbg-[0-9a-f]+)/.exec(res.stdout)![1]!;
    expect(res.stdout).toContain("📊 Function: validate_card in payments");
    expect(res.stdout).toContain("🎯 Capturing: 1 argument(s), return values");
    expect(res.stdout.match(/\] ENTRY {3}pid=\d+ tid=\d+ args=\(30\)/g)).toHaveLength(10);
    expect(res.stdout.match(/\] RETURN {2}pid=\d+ tid=\d+ duration=\d+\.\dms ret=60 ⚠️ {2}SLOW/g)).toHaveLength(10);
    expect(res.stdout).toContain("Session finished (duration reached). Collected 20 events.");
    expect(res.stdout).toMatch(/Total calls: 10\n {2}Avg duration: \d+\.\dms\n {2}P95 duration: \d+\.\dms\n {2}P99 duration: \d+\.\dms\n {2}Errors: 0 \(0\.0%\)\n {2}Slow calls \(>2ms\): 10 \(100\.0%\)/);
    const saved = JSON.parse(await readFile(join(out, id, "events.json"), "utf8")) as { session: { state: string }; events: { type: string }[] };
    expect(saved.session.state).toBe("expired");
    expect(saved.events).toHaveLength(20);

    const sessions = JSON.parse((await runCoral(["debug", "sessions", "--json", ...remote], { env })).stdout) as { sessions: { sessionId: string; state: string; outcome: string }[] };
    // The stored state stays "expired"; what people read says what it means, the same in the API.
    expect(sessions.sessions.find((s) => s.sessionId === id)).toMatchObject({ state: "expired", outcome: "finished (duration reached)" });
    const table = await runCoral(["debug", "sessions", ...remote], { env });
    expect(table.stdout).toMatch(new RegExp(`${id}\\s+payments\\s+validate_card\\s+finished \\(duration reached\\)`));
    const finished = JSON.parse((await runCoral(["debug", "sessions", "--state", "finished", "--json", ...remote], { env })).stdout) as { sessions: { sessionId: string }[] };
    expect(finished.sessions.map((s) => s.sessionId)).toContain(id);
    const events = JSON.parse((await runCoral(["debug", "events", id, "--since", "5m", "--json", ...remote], { env })).stdout) as { events: unknown[] };
    expect(events.events).toHaveLength(20);
    const detach = await runCoral(["debug", "detach", id, ...remote], { env });
    expect(detach.code).toBe(0);
    expect(detach.stdout).toContain(`✓ Debug session ${id}: finished (duration reached), 10 calls`);
  }, 90_000);

  it("explains what went wrong, with exit codes (2: a name the colony does not know, or a bad flag)", async () => {
    const unknown = await runCoral(["debug", "attach", "billing", "--function", "x", ...remote], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown service "billing" \(known: payments\)/);
    const fn = await runCoral(["debug", "attach", "payments", "--function", "validate_crd", ...remote], { env });
    expect(fn.code).toBe(2);
    expect(fn.stderr).toMatch(/close matches: validate_card/);
    const tooLong = await runCoral(["debug", "attach", "payments", "--function", "validate_card", "--duration", "11m", ...remote], { env });
    expect(tooLong.code).toBe(2);
    expect(tooLong.stderr).toMatch(/at most|from 1s to 10m/);
    const missing = await runCoral(["debug", "attach", "payments", ...remote], { env });
    expect(missing.code).toBe(2);
    const noSession = await runCoral(["debug", "detach", "dbg-0000000000", ...remote], { env });
    expect(noSession.code).toBe(2);
    expect(noSession.stderr).toMatch(/no debug session "dbg-0000000000"/);
  });
});
