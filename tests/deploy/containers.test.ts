// The colony container and the compose topology, for real with podman: the
// image is built from infra/colony/Containerfile on a local Debian base image
// (no registry here), started with a volume, reached from the host with a
// token, joined by agents, restarted; then the compose file's topology runs as
// colony, app and agent containers, the agents in the app's network and
// process namespaces (compose's network_mode/pid "service:<app>").
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coralBin, runCoral } from "../helpers/cli.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { Cleanup, buildImage, containerIp, ensureBaseImage, limits, podman, podmanMissing, repoRoot, uniqueName } from "./podman.ts";

const skipReason = await podmanMissing();
if (skipReason) console.warn(`skipping the container tests: ${skipReason}`);

interface Status {
  colonyId: string;
  natsStatus: string;
  services?: Array<{ name: string; status: string; port?: number }>;
}

async function statusOf(url: string, token: string): Promise<Status> {
  const res = await runCoral(["status", "--colony-url", url, "--token", token, "--json"]);
  if (res.code !== 0) throw new Error(`coral status: ${res.stderr}`);
  return JSON.parse(res.stdout) as Status;
}

/** Waits until the container answers its own health check (API, store and actors up). */
async function waitHealthy(name: string): Promise<void> {
  await waitFor(`${name} to be healthy`, async () => (await podman(["healthcheck", "run", name]), true), {
    timeoutMs: 180_000,
    intervalMs: 1000,
  });
}

async function adminToken(container: string): Promise<string> {
  const out = await podman(["exec", container, "coral", "token", "create", "--name", "test", "--scope", "admin", "--json"]);
  return (JSON.parse(out) as { token: string }).token;
}

describe.skipIf(skipReason)("colony container (podman)", () => {
  const cleanup = new Cleanup();
  const colonyImage = `localhost/${uniqueName("colony")}:test`;
  const agentImage = `localhost/${uniqueName("agent")}:test`;
  const children: ChildProcess[] = [];
  let tmp: string;

  beforeAll(async () => {
    tmp = await mkdtemp(join(tmpdir(), "coral-i9-deploy-"));
    const base = await ensureBaseImage();
    cleanup.images.push(agentImage, colonyImage);
    await buildImage("infra/colony/Containerfile", colonyImage, { BASE_IMAGE: base });
    await buildImage("infra/agent/Containerfile", agentImage, { COLONY_IMAGE: colonyImage });
  }, 1_200_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await cleanup.run();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  }, 180_000);

  it("runs as a non-root user with data on a volume, answers the host's CLI with a token, keeps data and actors across a restart", async () => {
    const name = uniqueName("colony");
    const volume = uniqueName("data");
    const apiPort = await freePort();
    const natsPort = await freePort();
    const secret = randomBytes(32).toString("hex");
    // The secret arrives as a file, as Docker/Kubernetes secrets do.
    const secretFile = join(tmp, "colony-secret");
    await writeFile(secretFile, `${secret}\n`, { mode: 0o644 });
    cleanup.containers.push(name);
    cleanup.volumes.push(volume);
    await podman(["volume", "create", volume]);
    await podman([
      "run", "-d", "--name", name, ...limits,
      "-v", `${volume}:/data`,
      "-v", `${secretFile}:/run/secrets/colony-secret:ro`,
      "-p", `127.0.0.1:${apiPort}:9000`,
      "-p", `127.0.0.1:${natsPort}:4333`,
      "-e", "CORAL_APP_NAME=shop",
      "-e", "CORAL_ENVIRONMENT=prod",
      "-e", "CORAL_COLONY_SECRET_FILE=/run/secrets/colony-secret",
      // Agents on the host reach NATS at the published port.
      "-e", `CORAL_NATS_ADVERTISE_URL=nats://127.0.0.1:${natsPort}`,
      colonyImage,
    ]);
    await waitHealthy(name);
    expect(await podman(["exec", name, "id", "-u"])).toBe("10001");
    expect(await podman(["exec", name, "sh", "-c", "ls /data"])).toMatch(/colony\.duckdb/);

    const url = `http://127.0.0.1:${apiPort}`;
    const anonymous = await runCoral(["status", "--colony-url", url]);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stderr).toMatch(/needs a token/);
    const token = await adminToken(name);
    const first = await statusOf(url, token);
    expect(first.colonyId).toMatch(/^shop-prod-[0-9a-f]{6}$/);
    expect(first.natsStatus).toBe("connected");
    const human = await runCoral(["status", "--colony-url", url, "--token", token]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain("APPLICATION: shop (prod)");

    // An app component and its agent on the host, joining with the colony secret.
    const appPort = await freePort();
    const app = spawn(process.execPath, [join(repoRoot, "cli/dist/sample-app/component.mjs"), "store", String(appPort)], { stdio: "ignore" });
    children.push(app);
    let agentOut = "";
    const agent = spawn(process.execPath, [coralBin, "connect", "store", "--port", String(appPort), "--summary-interval", "1s"], {
      env: { ...process.env, NO_COLOR: "1", CORAL_HOME: join(tmp, "home"), CORAL_COLONY_URL: url, CORAL_COLONY_SECRET: secret, CORAL_COLONY_ID: first.colonyId },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(agent);
    agent.stdout!.on("data", (d: Buffer) => (agentOut += d.toString()));
    agent.stderr!.on("data", (d: Buffer) => (agentOut += d.toString()));
    await waitFor("the agent to connect", () => agentOut.includes("✓ Connected: store") || undefined, { timeoutMs: 90_000, intervalMs: 250 });
    // Summaries travel over the container's NATS into its DuckDB.
    await waitFor("store's metrics in the colony", async () => {
      const res = await runCoral(["metrics", "store", "cpu_percent", "--since", "10m", "--colony-url", url, "--token", token, "--json"]);
      const body = JSON.parse(res.stdout || "{}") as { series?: Array<{ points?: unknown[] }> };
      return (body.series?.[0]?.points?.length ?? 0) > 0 || undefined;
    }, { timeoutMs: 120_000, intervalMs: 1000 });
    const online = await statusOf(url, token);
    expect(online.services?.map((s) => [s.name, s.status, s.port])).toEqual([["store", "online", appPort]]);
    const exited = new Promise((r) => agent.once("exit", r));
    agent.kill("SIGINT");
    await exited;

    await podman(["restart", "-t", "30", name], 180_000);
    await waitHealthy(name);
    // Same colony, same token, same agent actor, same metrics.
    const after = await statusOf(url, token);
    expect(after.colonyId).toBe(first.colonyId);
    expect(after.services?.map((s) => s.name)).toEqual(["store"]);
    const history = await runCoral(["history", "store", "--colony-url", url, "--token", token, "--json"]);
    expect(history.code).toBe(0);
    expect(history.stdout).toMatch(/online/);
    const metrics = await runCoral(["metrics", "store", "cpu_percent", "--since", "10m", "--colony-url", url, "--token", token, "--json"]);
    expect((JSON.parse(metrics.stdout) as { series: Array<{ points: unknown[] }> }).series[0]!.points.length).toBeGreaterThan(0);
    app.kill("SIGTERM");
  }, 600_000);

  it("runs the compose topology: the sample app with agent sidecars in its namespaces, seen by the colony", async () => {
    const colony = uniqueName("colony");
    const volume = uniqueName("data");
    const app = uniqueName("sample-app");
    const apiPort = await freePort();
    const secret = randomBytes(32).toString("hex");
    cleanup.containers.push(colony);
    cleanup.volumes.push(volume);
    // infra/compose/compose.yaml, service by service.
    await podman(["volume", "create", volume]);
    await podman([
      "run", "-d", "--name", colony, ...limits, "-v", `${volume}:/data`, "-p", `127.0.0.1:${apiPort}:9000`,
      "-e", "CORAL_APP_NAME=my-shop", "-e", "CORAL_ENVIRONMENT=prod", "-e", `CORAL_COLONY_SECRET=${secret}`,
      "-e", "CORAL_NATS_ADVERTISE_URL=nats://coral-colony:4333",
      colonyImage,
    ]);
    const colonyAddress = await containerIp(colony);
    expect(colonyAddress).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    // The app reaches the colony by its compose service name.
    cleanup.containers.push(app);
    await podman([
      "run", "-d", "--name", app, ...limits, "--no-healthcheck", "--add-host", `coral-colony:${colonyAddress}`, "--entrypoint", "sh", colonyImage, "-c",
      "cd /opt/coral/cli/dist/sample-app; node component.mjs store 3002 & node component.mjs api 3001 3002 & node component.mjs frontend 3000 3001 & wait",
    ]);
    await waitHealthy(colony);
    const components = [["frontend", 3000], ["api", 3001], ["store", 3002]] as const;
    for (const [component, port] of components) {
      const agentName = `${app}-${component}-agent`;
      cleanup.containers.push(agentName);
      // network_mode and pid "service:sample-app".
      await podman([
        "run", "-d", "--name", agentName, "--network", `container:${app}`, "--pid", `container:${app}`, ...limits,
        "-e", "CORAL_COLONY_ID=my-shop-prod", "-e", "CORAL_COLONY_URL=http://coral-colony:9000", "-e", `CORAL_COLONY_SECRET=${secret}`,
        "-e", `CORAL_COMPONENT=${component}`, "-e", `CORAL_PORT=${port}`,
        "-e", `CORAL_HEALTH_URL=http://127.0.0.1:${port}/health`, "-e", `CORAL_METRICS_URL=http://127.0.0.1:${port}/metrics`,
        agentImage, "--summary-interval", "2s",
      ]);
    }

    const url = `http://127.0.0.1:${apiPort}`;
    const token = await adminToken(colony);
    const topology = await waitFor("the sample app's topology in the colony", async () => {
      const res = await runCoral(["topology", "--colony-url", url, "--token", token, "--json"]);
      if (res.code !== 0) return undefined;
      const body = JSON.parse(res.stdout) as { services?: Array<{ name: string; status: string }>; edges?: Array<{ fromService: string; toService: string }> };
      const edges = (body.edges ?? []).map((e) => `${e.fromService}→${e.toService}`);
      return edges.includes("frontend→api") && edges.includes("api→store") ? body : undefined;
    }, { timeoutMs: 240_000, intervalMs: 2000 });
    expect(topology.services?.map((s) => s.name).sort()).toEqual(["api", "frontend", "store"]);
    expect(topology.services?.every((s) => s.status === "online")).toBe(true);
    const human = await runCoral(["topology", "--colony-url", url, "--token", token]);
    expect(human.stdout).toMatch(/frontend[^\n]*\n\s+→ api/);
  }, 600_000);
});
