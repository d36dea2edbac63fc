// Rollbacks end to end with real parts: the colony's rollback actors, real
// agents (`coral connect`), an app process using the Coral SDK, and the CLI.
// systemctl and kubectl cannot run here: the systemd and kubernetes tests
// put STAND-IN executables named systemctl and kubectl first on the agent's
// PATH; they only record their arguments.
import { spawn } from "node:child_process";
import { chmod, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { ControlService, StartRollbackRequestSchema, type Rollback } from "@coral/proto/gen/coral/control/v1/control_pb";
import { RollbackStrategy } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { describe, expect, it } from "vitest";
import { sampleComponentScript } from "../../colony/src/sample-app/index.ts";
import { startColony } from "../../colony/src/runtime/colony.ts";
import { runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject, quietLogger } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { sdkDir, startConnect, startSdkApp } from "./harness.ts";

function controlApi(url: string, token: string) {
  const auth: Interceptor = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  return createClient(ControlService, createConnectTransport({ baseUrl: url, httpVersion: "1.1", interceptors: [auth] }));
}

const ended = new Set(["completed", "failed", "rolled_back"]);

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
    await project.setConfig(["control", "services"], {
      api: { systemd: { unit: "api@{version}.service" }, kubernetes: { deployment: "api", namespace: "shop", revisions: { "1.9.0": 7 } } },
      worker: { systemd: { unit: "worker.service" } },
    });
    const colony = await project.start();
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port };
    // STAND-INS for systemctl and kubectl: record "<tool> <args>" and succeed.
    const bin = await mkdtemp(join(tmpdir(), "coral-standin-bin-"));
    const log = join(bin, "calls.log");
    for (const tool of ["systemctl", "kubectl"]) {
      await writeFile(join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> "${log}"\necho "${tool} stand-in: ok"\n`);
      await chmod(join(bin, tool), 0o755);
    }
    const empty = await mkdtemp(join(tmpdir(), "coral-empty-path-"));
    const [apiPort, workerPort] = [await freePort(), await freePort()];
    const apps = [
      spawn(process.execPath, [sampleComponentScript, "store", String(apiPort)], { stdio: "ignore" }),
      spawn(process.execPath, [sampleComponentScript, "store", String(workerPort)], { stdio: "ignore" }),
    ];
    const agents = [
      await startConnect(project.dir, { ...env, PATH: `${bin}:${process.env.PATH}` }, "api", apiPort, ["--tags", "version=2.0.0"]),
      // No systemctl anywhere on this agent's PATH.
      await startConnect(project.dir, { ...env, PATH: empty }, "worker", workerPort, ["--tags", "version=5.0.0"]),
    ];
    const api = controlApi(colony.url, project.localToken);
    const calls = async () => (await readFile(log, "utf8").catch(() => "")).trim().split("\n").filter(Boolean);
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
      expect(await calls()).toEqual(["kubectl rollout undo deployment/api --namespace=shop", "kubectl rollout status deployment/api --namespace=shop --timeout=300s"]);

      // systemd to 1.9.0: the commands run, but the app never reports 1.9.0: failed by the verify deadline.
      const sd = await api.startRollback({ service: "api", targetVersion: "1.9.0", strategy: RollbackStrategy.SYSTEMD });
      const sdEnd = await rollbackEnd(api, sd.rollback!.rollbackId);
      expect(sdEnd.state).toBe("failed");
      expect(sdEnd.error).toBe("timed out after 4s waiting for api: api reports version 2.0.0, healthy");
      expect((await calls()).slice(2)).toEqual(["systemctl stop api@2.0.0.service", "systemctl start api@1.9.0.service"]);

      // auto picks systemd from config; the worker's agent has no systemctl.
      const missing = await api.startRollback({ service: "worker", targetVersion: "4.0.0" });
      expect(missing.rollback!.strategy).toBe("systemd");
      const missingEnd = await rollbackEnd(api, missing.rollback!.rollbackId);
      expect(missingEnd.state).toBe("failed");
      expect(missingEnd.error).toBe("systemctl is not installed on the agent's machine (not on PATH); the systemd strategy needs it");

      // A strategy with nothing configured is refused before anything starts.
      const unconfigured = await api.startRollback({ service: "worker", targetVersion: "4.0.0", strategy: RollbackStrategy.KUBERNETES }).catch((e: Error) => e);
      expect(String(unconfigured)).toContain("the kubernetes strategy needs control.services.worker.kubernetes.deployment");
    } finally {
      for (const a of agents) await a.stop();
      for (const a of apps) a.kill("SIGKILL");
    }
  }, 600_000);
});
