// Node sessions on an app that runs the Coral SDK and handles SIGUSR1 itself
// (real processes, no mocks): SIGUSR1 cannot open its inspector, so without
// the SDK a session is refused with a clear message and the app left as it
// was; through the SDK (the agent's SdkLink, OpenInspector) the inspector is
// opened in-process on a free loopback port, function sessions, logpoints
// and function listings work, no signal is sent, and the inspector is closed
// again when the SDK opened it, left open when the app had opened it itself.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SdkLink } from "../../control/sdk-link.ts";
import { loopbackListeners, type InProcessInspector } from "../../profile/inspector.ts";
import { DebugError } from "../program.ts";
import { SessionLimiter } from "../probe-session.ts";
import { waitFor } from "../testing.ts";
import { NodeLineSession } from "./line-session.ts";
import { running } from "./inspector-session.ts";
import { NodeFunctionSession, withNodeFunctions } from "./session.ts";
import { expectClean, killAll, repo, request, startApp, testdata, type StartedApp } from "./testdata/apps.ts";

const quiet = { info: () => undefined, debug: () => undefined, warn: () => undefined };

describe("Node sessions through the app's Coral SDK (node:inspector in-process, no SIGUSR1)", () => {
  let app: StartedApp;
  let dir: string;
  let before: Set<number>;
  let inProcess: InProcessInspector;
  let nextId = 1;
  const text = async (path: string) => (await request(app.port, path)).body;
  const listenersNow = async () => [...(await loopbackListeners(app.pid))].sort((a, b) => a - b);
  const beforeSorted = () => [...before].sort((a, b) => a - b);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "coral-sdk-inspector-"));
    app = await startApp(testdata("sdk-app.mjs"), { flags: ["--inspect-port=0", "--conditions=coral-source", "--import", "tsx"], cwd: repo, env: { ...process.env, CORAL_SDK_DIR: dir } });
    expect(app.said.announcement).toBe(join(dir, `${app.pid}.json`));
    // The app's own port and the SDK's.
    before = await loopbackListeners(app.pid);
    expect(before).toEqual(new Set([app.port, app.said.sdkPort]));
    const link = new SdkLink({ announceDir: dir, logger: quiet });
    inProcess = { open: (pid) => link.openInspector(pid), close: (pid) => link.closeInspector(pid) };
  }, 60_000);

  afterAll(() => {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it("without the SDK: a clear error saying the app may handle SIGUSR1 and naming the SDK way; the app serves on with no inspector, nothing of ours", async () => {
    // The agent's link reaches no SDK (here: --sdk names a port where none listens), as for an app without one.
    const none = new SdkLink({ port: 1, logger: quiet });
    const noSdk: InProcessInspector = { open: (pid) => none.openInspector(pid), close: (pid) => none.closeInspector(pid) };
    const err = await NodeFunctionSession.start({ id: `sdk-test-${nextId++}`, pid: app.pid, functionName: "add", durationMs: 60_000, limiter: new SessionLimiter(), inProcess: noSdk }).catch((e: unknown) => e);
    if (err instanceof NodeFunctionSession) await err.stop();
    expect(err).toBeInstanceOf(DebugError);
    expect((err as DebugError).message).toBe(
      `the V8 inspector of process ${app.pid} could not be used: no inspector listened on loopback within 3 s of SIGUSR1: the app may handle SIGUSR1 itself (a process.on("SIGUSR1") listener stops Node from opening its inspector on the signal), or its inspect port is taken by another program; an app that runs the Coral SDK (coral.init) is debugged without the signal, its inspector opened in-process on a free port`,
    );
    expect(running.has(app.pid)).toBe(false);
    expect(await text("/add?n=4")).toBe(String(1 + 200 + 3 + 200));
    expect(await listenersNow()).toEqual(beforeSorted());
    expect(await text("/inspector")).toBe("");
    // The signal went to the app's own handler (from outside, a handler of the app's cannot be told from Node's).
    expect(await text("/usr1")).toBe("1");
  });

  it("through the SDK: a function session opens the inspector in-process on a free loopback port, counts exactly, captures returns, sends no signal, and closes it", async () => {
    const signals = await text("/usr1");
    const s = await NodeFunctionSession.start({ id: `sdk-test-${nextId++}`, pid: app.pid, functionName: "sdk-app.mjs:19", durationMs: 60_000, limiter: new SessionLimiter(), inProcess, captureArgs: 2, captureReturn: true });
    expect(s.inspector).toBe("sdk-inspector");
    expect(s.method).toBe("instrumented");
    const url = new URL(await text("/inspector"));
    expect([url.protocol, url.hostname]).toEqual(["ws:", "127.0.0.1"]);
    expect(before.has(Number(url.port))).toBe(false);
    expect(await loopbackListeners(app.pid)).toContain(Number(url.port));
    expect(await text("/add?n=6")).toBe(String(1 + 200 + 3 + 200 + 5 + 200));
    const summary = await s.stop();
    expect([summary.entries, summary.calls, summary.stopReason]).toEqual([6, 6, "stopped"]);
    expect(s.events.filter((e) => e.type === "entry").map((e) => e.args)).toEqual([0, 200, 2, 200, 4, 200].map((a) => [String(a), "1"]));
    expect(s.events.filter((e) => e.type === "return").map((e) => e.ret)).toEqual(["1", "200", "3", "200", "5", "200"]);
    // Closed by the SDK that opened it; no signal reached the app.
    expect(await listenersNow()).toEqual(beforeSorted());
    expect(await text("/inspector")).toBe("");
    expect(await text("/usr1")).toBe(signals);
    await expectClean(app.pid, before, { inProcess, script: "sdk-app.mjs" });
    expect(await text("/usr1")).toBe(signals);
  });

  it("through the SDK: a logpoint records each value, and coral debug functions lists the app's functions", async () => {
    const fns = await withNodeFunctions(app.pid, { inProcess }, (f) => f);
    const add = fns.find((f) => f.name === "add" && f.file.endsWith("sdk-app.mjs"));
    expect(add).toMatchObject({ line: 19, async: false, params: ["a", "b"] });
    await waitFor(async () => (await text("/inspector")) === "", 10_000, "the listing's inspector to close");
    const s = await NodeLineSession.start({ id: `sdk-test-${nextId++}`, pid: app.pid, kind: "logpoint", location: `${add!.file}:20`, expression: "a * 10 + b", durationMs: 60_000, inProcess });
    expect(s.inspector).toBe("sdk-inspector");
    expect(await text("/add?n=4")).toBe(String(1 + 200 + 3 + 200));
    await waitFor(() => s.events.length === 4, 10_000, "4 values");
    await s.stop();
    expect(s.events.map((e) => e.value)).toEqual(["1", "2001", "21", "2001"]);
    await expectClean(app.pid, before, { inProcess });
  });

  it("an inspector the app opened itself is used through the SDK and left open at the end", async () => {
    const own = await text("/inspector?open=1");
    expect(own).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\//);
    const s = await NodeFunctionSession.start({ id: `sdk-test-${nextId++}`, pid: app.pid, functionName: "sdk-app.mjs:19", durationMs: 60_000, inProcess });
    expect(s.inspector).toBe("sdk-inspector");
    await text("/add?n=2");
    expect((await s.stop()).calls).toBe(2);
    expect(await text("/inspector")).toBe(own);
    expect(await text("/inspector?close=1")).toBe("");
    await expectClean(app.pid, before, { inProcess, script: "sdk-app.mjs" });
  });
});
