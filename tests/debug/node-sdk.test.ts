// coral debug on a Node service that runs the Coral SDK and handles SIGUSR1
// itself, end to end (the real CLI, a real colony, a real agent): SIGUSR1
// cannot open its inspector, so the agent opens it through the SDK
// (OpenInspector, node:inspector in-process on a free loopback port):
// functions are listed, a function is traced with its return values, the
// app never receives a signal, and its inspector is closed again after.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loopbackListeners } from "@coral/agent/debug";
import { runCoral } from "../helpers/cli.ts";
import type { TestProject } from "../helpers/colony.ts";
import { waitFor } from "../helpers/wait.ts";
import { debugApi, startObservedTarget, type ObservedTarget } from "./helpers.ts";

const sdkAppJs = fileURLToPath(new URL("../../agent/src/debug/node/testdata/sdk-app.mjs", import.meta.url));

describe("coral debug on a Node service through its Coral SDK (no SIGUSR1)", () => {
  let fixture: ObservedTarget | undefined;
  let project: TestProject;
  let port: number;
  let pid: number;
  let remote: string[];
  let sdkDir: string;

  beforeAll(async () => {
    sdkDir = mkdtempSync(join(tmpdir(), "coral-node-sdk-"));
    // The app announces its SDK in a private folder of its own; the agent finds it through the app's environment.
    const bin = join(sdkDir, "sdk-app");
    writeFileSync(bin, `#!/bin/sh\nCORAL_SDK_DIR="${sdkDir}/announce" exec "${process.execPath}" --conditions=coral-source --import tsx "${sdkAppJs}" "$@"\n`);
    chmodSync(bin, 0o755);
    // Ready once the colony lists the app's functions: already through the SDK, as SIGUSR1 opens nothing here.
    fixture = await startObservedTarget(bin, "shop", { pattern: "add" });
    ({ port, project } = fixture);
    pid = fixture.target.pid!;
    remote = ["--colony-url", fixture.colony.url, "--token", project.localToken];
  }, 120_000);

  afterAll(async () => {
    await fixture?.[Symbol.asyncDispose]();
    rmSync(sdkDir, { recursive: true, force: true });
  });

  const text = async (path: string) => (await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(30_000) })).text();

  it("attach traces a function of the app with --capture-return; the app gets no signal and its inspector is closed after", async () => {
    const before = await loopbackListeners(pid);
    const functions = await debugApi(fixture!.colony.url, project.localToken).listFunctions({ serviceName: "shop", pattern: "add" });
    expect(functions.functions.filter((f) => f.file.endsWith("sdk-app.mjs")).map((f) => [f.name, f.line])).toEqual([["add", 19]]);
    const running = runCoral(["debug", "attach", "shop", "--function", "sdk-app.mjs:19", "--duration", "6s", "--capture-args", "1", "--capture-return", ...remote], {
      env: { CORAL_HOME: project.home },
      timeoutMs: 60_000,
    });
    const api = debugApi(fixture!.colony.url, project.localToken);
    await waitFor("session active", async () => (await api.listDebugSessions({ state: "active", serviceName: "shop" })).sessions.length === 1);
    expect(await text("/add?n=4")).toBe(String(1 + 200 + 3 + 200));
    const res = await running;
    if (res.code !== 0) console.log(res.stdout, res.stderr);
    expect(res.code).toBe(0);
    expect([...res.stdout.matchAll(/\] RETURN {2}pid=\d+ tid=\d+ duration=[\d.]+(?:µs|ms|ns|s) ret=(\S+)/g)].map((m) => m[1])).toEqual(["1", "200", "3", "200"]);
    expect(res.stdout).toMatch(/Total calls: 4\n/);
    expect(await text("/usr1")).toBe("0");
    await waitFor("the inspector closed", async () => [...(await loopbackListeners(pid))].every((p) => before.has(p)), { timeoutMs: 15_000 });
    expect(await text("/inspector")).toBe("");
  }, 90_000);
});
