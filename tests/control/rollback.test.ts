// Rollbacks end to end with real parts: the colony's rollback actors, real
// agents (`coral connect`), an app process using the Coral SDK, and the CLI.
// The colony sends intents; each agent plans the commands from its own
// --rollback-* flags. systemctl and kubectl cannot run here: the systemd and kubernetes tests
// put STAND-IN executables named systemctl and kubectl first on the agent's
// PATH; they only record their arguments, and fail the calls a test lists
// (harness.ts standInTools).
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ControlService, StartRollbackRequestSchema, type Rollback } from "@coral/proto/gen/coral/control/v1/control_pb";
import { RollbackStrategy } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { describe, expect, it } from "vitest";
import { sampleComponentScript } from "@coral/cli/sample-app";
import { startColony } from "@coral/colony";
import { runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject, quietLogger } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { sdkDir, standInTools, startConnect, startSdkApp } from "./harness.ts";

function controlApi(url: string, token: string) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createClient(ControlService, createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [auth] }));
}

const ended = new Set(["completed", "failed", "rolled_back"]);
const undoSteps = (r: Rollback) => r.steps.filter((s) => s.description.startsWith("Undo: ")).map((s) => [s.description, s.outcome]);
// What the api agents may run: their own configuration.
const apiRollbackFlags = ["--rollback-systemd-unit", "api@{version}.service", "--rollback-k8s-deployment", "api", "--rollback-k8s-namespace", "shop"];
// What the kubernetes strategy runs first, so an undo can go back to the live revision.
const recordRevision = "kubectl get deployment/api --namespace=shop -o jsonpath={.metadata.annotations.deployment\\.kubernetes\\.io/revision}";

async function rollbackEnd(api: ReturnType<typeof controlApi>, id: string, timeoutMs = 90_000): Promise<Rollback> {
  return waitFor(`rollback ${id} to end`, async () => {
    const r = (await api.getRollback({ rollbackId: id })).rollback!;
    return ended.has(r.state) ? r : undefined;
  }, { timeoutMs, intervalMs: 250 });
}

async function sdkReady(url: string, token: string, service: string) {
  await waitFor(`${service}'s SDK report`, async () => ((await colonyApi(url, token).getStatus({})).services.find((s) => s.name === service)?.sdkEnabled ? true : undefined), {
    timeoutMs: 60_000,
  });
}

describe("rollbacks", () => {
  it("sdk strategy: runs the app's handler, completes only after the app reports the target version; a throwing handler fails with its message", async () => {
    await using project = await createTestProject();
    await project.setConfig(["control", "verify_timeout"], "60s");
    await project.setConfig(["control", "rollback_timeout"], "60s");
    const colony = await project.start();
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port };
    const announce = await sdkDir();
    const [checkoutPort, paymentsPort] = [await freePort(), await freePort()];
    const checkout = await startSdkApp(checkoutPort, "2.0.0", "switch", announce);
    const payments = await startSdkApp(paymentsPort, "3.1.0", "throw", announce, "payments");
    const agents = [
      await startConnect(project.dir, { ...env, CORAL_SDK_DIR: announce }, "checkout", checkoutPort),
      await startConnect(project.dir, { ...env, CORAL_SDK_DIR: announce }, "payments", paymentsPort),
    ];
    const api = controlApi(colony.url, project.localToken);
    try {
      await sdkReady(colony.url, project.localToken, "checkout");
      await sdkReady(colony.url, project.localToken, "payments");
      const cli = (args: string[]) => runCoral(args, { cwd: project.dir, env, timeoutMs: 180_000 });

      // Dry run: the plan, nothing changes.
      const dry = await cli(["rollback", "checkout", "--to", "1.9.0", "--dry-run"]);
      expect(dry.stdout).toContain("Dry run: roll checkout back from 2.0.0 to 1.9.0 with the sdk strategy");
      expect(dry.stdout).toContain("Nothing was changed.");
      expect(dry.code).toBe(0);
      expect(checkout.events().some((e) => e.event === "rollback")).toBe(false);
      expect((await api.listRollbacks({})).rollbacks).toEqual([]);

      // No earlier version known and no --to: a clear refusal.
      const noTarget = await api.startRollback({ service: "checkout" }).catch((e: Error) => e);
      expect(String(noTarget)).toContain("no earlier version of checkout is known");

      // The handler runs; completed comes only after the app reports 1.9.0.
      const rb = await cli(["rollback", "checkout", "--to", "1.9.0"]);
      expect({ code: rb.code, stdout: rb.stdout, stderr: rb.stderr }).toMatchObject({ code: 0, stderr: "" });
      expect(rb.stdout).toContain("Rolling back checkout 2.0.0 → 1.9.0 (sdk)");
      expect(rb.stdout).toContain("✓ Running the app's rollback handler (sdk)");
      expect(rb.stdout).toContain("✓ Waiting for checkout to report version 1.9.0 and healthy");
      expect(rb.stdout).toContain("✓ completed");
      const handled = checkout.events().filter((e) => e.event === "rollback");
      expect(handled.map((e) => [e.target, e.from])).toEqual([["1.9.0", "2.0.0"]]);
      const switched = checkout.events().find((e) => e.event === "version")!;
      const id = /rollback (rb-[0-9a-f]+)/.exec(rb.stdout)![1]!;
      const done = (await api.getRollback({ rollbackId: id })).rollback!;
      expect(done.state).toBe("completed");
      // The app switched 1.5 s after its handler returned; verification waited for it.
      expect(Number(done.completedAt!.seconds) * 1000 + done.completedAt!.nanos / 1e6).toBeGreaterThanOrEqual(switched.at - 5);
      const transitions = await colony.store.transitionsFor(id, { limit: 20 });
      expect(transitions.map((t) => t.toState)).toEqual(expect.arrayContaining(["pending", "executing", "verifying", "completed"]));

      // A handler that throws: failed, with its message.
      const thrown = await api.startRollback({ service: "payments", targetVersion: "3.0.0" });
      const failed = await rollbackEnd(api, thrown.rollback!.rollbackId);
      expect(failed.state).toBe("failed");
      expect(failed.error).toBe("cannot downgrade: schema migration 42 is not reversible");

      // History (newest first) and audit rows for who asked.
      const history = await cli(["rollback", "history", "--json"]);
      const rows = (JSON.parse(history.stdout) as { rollbacks: Array<{ service: string; state: string; initiatedBy: string }> }).rollbacks;
      expect(rows.map((r) => [r.service, r.state, r.initiatedBy])).toEqual([
        ["payments", "failed", "local"],
        ["checkout", "completed", "local"],
      ]);
      const audit = await colony.store.listAudit(100);
      expect(audit.filter((a) => a.action.startsWith("rollback.")).map((a) => [a.action, a.target]).reverse()).toEqual([
        ["rollback.start", "checkout"],
        ["rollback.completed", "checkout"],
        ["rollback.start", "payments"],
        ["rollback.failed", "payments"],
      ]);
    } finally {
      for (const a of agents) await a.stop();
      await checkout.stop();
      await payments.stop();
    }
  }, 600_000);

  it("a colony restart mid-rollback still ends it, and the app's handler runs once", async () => {
    await using project = await createTestProject();
    await project.setConfig(["control", "verify_timeout"], "60s");
    await project.setConfig(["control", "rollback_timeout"], "90s");
    const [apiPort, natsPort] = [await freePort(), await freePort()];
    let colony = await startColony({ projectDir: project.dir, logger: quietLogger(), apiPort, natsPort });
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: String(apiPort) };
    const announce = await sdkDir();
    const appPort = await freePort();
    const app = await startSdkApp(appPort, "2.0.0", "slow", announce);
    const agent = await startConnect(project.dir, { ...env, CORAL_SDK_DIR: announce }, "checkout", appPort);
    try {
      await sdkReady(colony.url, project.localToken, "checkout");
      const started = await controlApi(colony.url, project.localToken).startRollback(
        create(StartRollbackRequestSchema, { service: "checkout", targetVersion: "1.9.0", strategy: RollbackStrategy.SDK }),
      );
      const id = started.rollback!.rollbackId;
      // The handler is running (it takes 4 s): stop the colony now.
      await waitFor("the app's handler to start", () => app.events().some((e) => e.event === "rollback"), { timeoutMs: 60_000 });
      expect((await controlApi(colony.url, project.localToken).getRollback({ rollbackId: id })).rollback!.state).toBe("executing");
      await colony.close();

      colony = await startColony({ projectDir: project.dir, logger: quietLogger(), apiPort, natsPort });
      const api = controlApi(colony.url, project.localToken);
      const end = await rollbackEnd(api, id, 150_000);
      expect({ state: end.state, error: end.error }).toEqual({ state: "completed", error: "" });
      expect(app.events().filter((e) => e.event === "rollback")).toHaveLength(1);
      const history = await api.listRollbacks({ service: "checkout" });
      expect(history.rollbacks.map((r) => [r.rollbackId, r.state])).toEqual([[id, "completed"]]);
    } finally {
      await agent.stop();
      await app.stop();
      await colony.close();
    }
  }, 600_000);

  it("systemd and kubernetes strategies run the configured commands (stand-in executables); a missing tool and a verify timeout fail with reasons", async () => {
    await using project = await createTestProject();
    await project.setConfig(["control", "verify_timeout"], "4s");
    // The colony knows only which revision a version was; the agents know what to run.
    await project.setConfig(["control", "services"], { api: { kubernetes: { revisions: { "1.9.0": 7 } } } });
    const colony = await project.start();
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port };
    // STAND-INS for systemctl and kubectl: record "<tool> <args>" and succeed.
    const { bin, calls } = await standInTools();
    const empty = await mkdtemp(join(tmpdir(), "coral-empty-path-"));
    const [apiPort, workerPort] = [await freePort(), await freePort()];
    const apps = [
      spawn(process.execPath, [sampleComponentScript, "store", String(apiPort)], { stdio: "ignore" }),
      spawn(process.execPath, [sampleComponentScript, "store", String(workerPort)], { stdio: "ignore" }),
    ];
    const agents = [
      await startConnect(project.dir, { ...env, PATH: `${bin}:${process.env.PATH}` }, "api", apiPort, ["--tags", "version=2.0.0", ...apiRollbackFlags]),
      // No systemctl anywhere on this agent's PATH.
      await startConnect(project.dir, { ...env, PATH: empty }, "worker", workerPort, ["--tags", "version=5.0.0", "--rollback-systemd-unit", "worker.service"]),
    ];
    const api = controlApi(colony.url, project.localToken);
    try {
      await waitFor("both agents healthy", async () => {
        const s = (await colonyApi(colony.url, project.localToken).getStatus({})).services;
        return s.filter((x) => x.health === "healthy").length === 2 ? true : undefined;
      }, { timeoutMs: 60_000 });

      // Dry run shows the exact commands and runs none.
      const dry = await runCoral(["rollback", "api", "--to", "1.9.0", "--strategy", "kubernetes", "--dry-run"], { cwd: project.dir, env, timeoutMs: 180_000 });
      expect(dry.code).toBe(0);
      expect(dry.stdout).toContain("1. kubectl rollout undo deployment/api --namespace=shop --to-revision=7");
      expect(await calls()).toEqual([]);

      // kubernetes without a version: undo to the previous revision; verified by health.
      const k8s = await api.startRollback({ service: "api", strategy: RollbackStrategy.KUBERNETES });
      const k8sEnd = await rollbackEnd(api, k8s.rollback!.rollbackId);
      expect({ state: k8sEnd.state, error: k8sEnd.error }).toEqual({ state: "completed", error: "" });
      expect(await calls()).toEqual([
        recordRevision,
        "kubectl rollout undo deployment/api --namespace=shop",
        "kubectl rollout status deployment/api --namespace=shop --timeout=135s",
      ]);

      // systemd to 1.9.0: the commands run, but the app never reports 1.9.0: failed by the verify deadline.
      const sd = await api.startRollback({ service: "api", targetVersion: "1.9.0", strategy: RollbackStrategy.SYSTEMD });
      const sdEnd = await rollbackEnd(api, sd.rollback!.rollbackId);
      expect(sdEnd.state).toBe("failed");
      expect(sdEnd.error).toBe("timed out after 4s waiting for api: api reports version 2.0.0, healthy");
      expect((await calls()).slice(3)).toEqual(["systemctl stop api@2.0.0.service", "systemctl start api@1.9.0.service"]);

      // auto picks systemd, what the worker's agent was started for; it has no systemctl.
      const missing = await api.startRollback({ service: "worker", targetVersion: "4.0.0" });
      expect(missing.rollback!.strategy).toBe("systemd");
      const missingEnd = await rollbackEnd(api, missing.rollback!.rollbackId);
      expect(missingEnd.state).toBe("failed");
      expect(missingEnd.error).toBe("systemctl is not installed on the agent's machine (not on PATH); the systemd strategy needs it");

      // A strategy with nothing configured is refused before anything starts.
      const unconfigured = await api.startRollback({ service: "worker", targetVersion: "4.0.0", strategy: RollbackStrategy.KUBERNETES }).catch((e: Error) => e);
      expect(String(unconfigured)).toContain("this agent is not configured for the kubernetes strategy (start it with coral connect worker … --rollback-k8s-deployment NAME");
    } finally {
      for (const a of agents) await a.stop();
      for (const a of apps) a.kill("SIGKILL");
    }
  }, 600_000);

  it("a failing step is undone and ends rolled_back (kubernetes back to the recorded revision; the SDK handler that undid itself); a failing undo ends failed with both errors", async () => {
    await using project = await createTestProject();
    await project.setConfig(["control", "services"], { api: { kubernetes: { revisions: { "1.9.0": 7 } } } });
    const colony = await project.start();
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port };
    const tools = await standInTools();
    const announce = await sdkDir();
    const [apiPort, paymentsPort] = [await freePort(), await freePort()];
    const apiApp = spawn(process.execPath, [sampleComponentScript, "store", String(apiPort)], { stdio: "ignore" });
    const payments = await startSdkApp(paymentsPort, "3.1.0", "revert", announce, "payments");
    const agents = [
      await startConnect(project.dir, { ...env, PATH: `${tools.bin}:${process.env.PATH}` }, "api", apiPort, ["--tags", "version=2.0.0", ...apiRollbackFlags]),
      await startConnect(project.dir, { ...env, CORAL_SDK_DIR: announce }, "payments", paymentsPort),
    ];
    const api = controlApi(colony.url, project.localToken);
    const cli = (args: string[]) => runCoral(args, { cwd: project.dir, env, timeoutMs: 180_000 });
    try {
      await waitFor("api healthy", async () => ((await colonyApi(colony.url, project.localToken).getStatus({})).services.find((s) => s.name === "api")?.health === "healthy" ? true : undefined), {
        timeoutMs: 60_000,
      });
      await sdkReady(colony.url, project.localToken, "payments");

      // The dry run shows the undo with the plan.
      const dry = await cli(["rollback", "api", "--to", "1.9.0", "--strategy", "kubernetes", "--dry-run"]);
      expect(dry.stdout).toContain(`first: ${recordRevision} (records the live revision for an undo)`);
      expect(dry.stdout).toContain("if a step fails, undo it:\n    1. kubectl rollout undo deployment/api --namespace=shop --to-revision={revision}\n");

      // kubernetes: the new pods never get ready; the undo goes back to revision 9 (live before) and checks it.
      const status = "kubectl rollout status deployment/api --namespace=shop --timeout=135s";
      await tools.failNext([status]);
      const k8s = await api.startRollback({ service: "api", targetVersion: "1.9.0", strategy: RollbackStrategy.KUBERNETES });
      const k8sEnd = await rollbackEnd(api, k8s.rollback!.rollbackId);
      expect(await tools.calls()).toEqual([
        recordRevision,
        "kubectl rollout undo deployment/api --namespace=shop --to-revision=7",
        status,
        "kubectl rollout undo deployment/api --namespace=shop --to-revision=9",
        status,
      ]);
      expect(k8sEnd.state).toBe("rolled_back");
      expect(k8sEnd.error).toBe(
        `undone, api is back on 2.0.0 (the undo was checked): ${status} failed (exit 3): kubectl stand-in: failing as told; fix that, then roll back again`,
      );
      expect(k8sEnd.steps.slice(1).map((s) => [s.description, s.outcome])).toEqual([
        [`${recordRevision} → revision 9`, "done"],
        ["kubectl rollout undo deployment/api --namespace=shop --to-revision=7 → ok", "done"],
        [`${status} → exit 3`, "failed"],
        ["Undo: kubectl rollout undo deployment/api --namespace=shop --to-revision=9 → ok", "done"],
        [`Undo: ${status} → ok`, "done"],
      ]);
      expect(k8sEnd.undoPlan).toEqual(["kubectl rollout undo deployment/api --namespace=shop --to-revision={revision}", status]);

      // The CLI: status and list show it rolled back with the reason; --json carries it.
      const shown = await cli(["rollback", "status", k8sEnd.rollbackId]);
      expect(shown.stdout).toContain(`(kubernetes) ↺ rolled back`);
      expect(shown.stdout).toContain(`  Reason: ${k8sEnd.error}`);
      expect(shown.stdout).toContain(`  ✓ Undo: kubectl rollout undo deployment/api --namespace=shop --to-revision=9 → ok`);
      const listed = await cli(["rollback", "list", "api"]);
      expect(listed.stdout).toMatch(new RegExp(`${k8sEnd.rollbackId} .*↺ rolled back .*undone, api is back on 2\\.0\\.0`));
      const json = JSON.parse((await cli(["rollback", "status", k8sEnd.rollbackId, "--json"])).stdout) as { rollback: { state: string; error: string } };
      expect(json.rollback).toMatchObject({ state: "rolled_back", error: k8sEnd.error });

      // systemd: starting 1.9.0 fails, and so does starting 2.0.0 again: failed, with both errors.
      await tools.failNext(["systemctl start api@1.9.0.service", "systemctl start api@2.0.0.service"]);
      const sd = await api.startRollback({ service: "api", targetVersion: "1.9.0", strategy: RollbackStrategy.SYSTEMD });
      const sdEnd = await rollbackEnd(api, sd.rollback!.rollbackId);
      expect((await tools.calls()).slice(5)).toEqual([
        "systemctl stop api@2.0.0.service",
        "systemctl start api@1.9.0.service",
        "systemctl stop api@1.9.0.service",
        "systemctl start api@2.0.0.service",
      ]);
      expect(sdEnd.state).toBe("failed");
      expect(sdEnd.error).toBe(
        "systemctl start api@1.9.0.service failed (exit 3): systemctl stand-in: failing as told; the undo failed too: systemctl start api@2.0.0.service failed (exit 3): systemctl stand-in: failing as told; api may be left between 2.0.0 and 1.9.0: check it by hand",
      );
      expect(undoSteps(sdEnd)).toEqual([
        ["Undo: systemctl stop api@1.9.0.service → ok", "done"],
        ["Undo: systemctl start api@2.0.0.service → exit 3", "failed"],
      ]);

      // sdk: the app's handler fails part-way and reports that it undid itself.
      const sdk = await api.startRollback({ service: "payments", targetVersion: "3.0.0" });
      const sdkEnd = await rollbackEnd(api, sdk.rollback!.rollbackId);
      expect(sdkEnd.state).toBe("rolled_back");
      expect(sdkEnd.error).toBe(
        "undone, payments is back on 3.1.0 (the app's rollback handler undid its changes): migration 43 failed half-way: disk full; fix that, then roll back again",
      );
      expect(undoSteps(sdkEnd)).toEqual([
        ["Undo: restored schema 42", "done"],
        ["Undo: kept serving 3.1.0", "done"],
      ]);

      const audit = await colony.store.listAudit(100);
      expect(audit.filter((a) => a.action.startsWith("rollback.") && a.action !== "rollback.start").map((a) => [a.action, a.target]).reverse()).toEqual([
        ["rollback.rolled_back", "api"],
        ["rollback.failed", "api"],
        ["rollback.rolled_back", "payments"],
      ]);
    } finally {
      for (const a of agents) await a.stop();
      await payments.stop();
      apiApp.kill("SIGKILL");
    }
  }, 600_000);
});
