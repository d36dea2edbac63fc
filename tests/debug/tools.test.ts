// The live-debugging tools (cli/src/tools/debug.ts) against a real colony,
// agent and bpftrace on a compiled C program: read tools with any token,
// attach and detach only with an admin token, every call audited.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningColony } from "@coral/colony";
import { debugTools, ToolError, type ToolContext } from "@coral/cli/tools";
import { colonyApi, type TestProject } from "../helpers/colony.ts";
import { thrown } from "../helpers/errors.ts";
import { bpfSkipReason, compilePayments, debugApi, request, startObservedTarget, type ObservedTarget } from "./helpers.ts";

const skip = bpfSkipReason();
if (skip) console.log(`debug tools.test: SKIPPING real bpftrace tests: ${skip}`);

const [listFunctions, attach, events, detach] = debugTools;

describe.skipIf(skip !== undefined)("live-debugging tools", () => {
  let fixture: ObservedTarget | undefined;
  let project: TestProject;
  let colony: RunningColony;
  let port: number;
  let admin: ToolContext;

  beforeAll(async () => {
    fixture = await startObservedTarget(compilePayments(), "payments", { pattern: "" });
    ({ port, project, colony } = fixture);
    admin = { colony: colonyApi(colony.url, project.localToken), debug: fixture.api };
  }, 120_000);

  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
  });

  it("lists, attaches, reads and detaches; a read token may only read", async () => {
    expect(attach.readOnly).toBe(false);
    expect(detach.readOnly).toBe(false);
    const fns = await listFunctions.run(admin, { service: "payments", pattern: "card" });
    expect(fns.text).toContain("- validate_card size=");

    const created = await admin.colony.createToken({ name: "assistant", scope: 1 });
    const reader: ToolContext = { colony: colonyApi(colony.url, created.token), debug: debugApi(colony.url, created.token) };
    const denied = await thrown(attach.run(reader, { service: "payments", function: "validate_card" }));
    expect(denied).toBeInstanceOf(ToolError);
    expect((denied as ToolError).code).toBe("permission_denied");
    await expect(attach.run(admin, { service: "payments", function: "validate_card", duration: "11m" })).rejects.toThrow(/at most 10m/);

    const started = await attach.run(admin, { service: "payments", function: "validate_card", duration: "60s", capture_args: 1 });
    const sessionId = (started.data as { sessionId: string }).sessionId;
    expect(started.text).toMatch(/is active: tracing validate_card in payments/);
    await request(port, "8 20");
    const read = await events.run(reader, { session: sessionId });
    expect(read.data).toMatchObject({ state: "active", calls: 8, entries: 8 });
    expect(read.text).toMatch(/8 call\(s\) read: avg \d/);
    const stopped = await detach.run(admin, { session: sessionId });
    // The same words as the CLI and the API's outcome.
    expect(stopped.text).toMatch(/is stopped by user: 8 call\(s\)/);
    expect(stopped.data).toMatchObject({ state: "completed", outcome: "stopped by user" });

    const audit = (await colony.store.listAudit(50)).filter((a) => a.target === sessionId).map((a) => `${a.actor}:${a.action}`).sort();
    expect(audit).toEqual(["assistant:debug.events", "local:debug.attach", "local:debug.detach"]);
    await expect(listFunctions.run({ colony: admin.colony }, { service: "payments" })).rejects.toThrow(/not available/);
  });
});
