// The colony container and the compose topology, for real with podman: the
// image is built from infra/colony/Containerfile on a local Debian base image
// (no registry here), started with a volume, reached from the host with a
// token, joined by agents, restarted; then the compose file's topology runs as
// colony, app and agent containers, the agents in the app's network and
// process namespaces (compose's network_mode/pid "service:<app>"). Agents
// enroll with the colony's standing invitation (CORAL_ENROLL_SECRET), each with
// its own key; a weak secret (the Kubernetes example's old all-zero one, its
// placeholder) keeps the colony from starting.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { coralBin, runCoral } from "../helpers/cli.ts";
import { freePort } from "../helpers/ports.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";
import { Cleanup, buildImage, containerIp, ensureBaseImage, limits, podman, podmanMissing, podmanResult, repoRoot, uniqueName } from "./podman.ts";

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

interface InvitationJson {
  invitationId: string;
  uses: number;
  maxUses: number;
  state: string;
}

async function invitationsOf(url: string, token: string): Promise<InvitationJson[]> {
  const res = await runCoral(["colony", "invitations", "--colony-url", url, "--token", token, "--json"]);
  if (res.code !== 0) throw new Error(`coral colony invitations: ${res.stderr}`);
  return (JSON.parse(res.stdout) as { invitations?: InvitationJson[] }).invitations ?? [];
}

/** The Connect code a promise rejects with (or "resolved"). */
async function connectCode(promise: Promise<unknown>): Promise<{ code: Code | "resolved"; message: string }> {
  try {
    await promise;
    return { code: "resolved", message: "" };
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
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
    // The standing invitation arrives as a file, as Docker/Kubernetes secrets do.
    const secretFile = join(tmp, "enroll-secret");
    await writeFile(secretFile, `${secret}\n`, { mode: 0o644 });
    cleanup.containers.push(name);
    cleanup.volumes.push(volume);
    await podman(["volume", "create", volume]);
    await podman([
      "run", "-d", "--name", name, ...limits,
      "-v", `${volume}:/data`,
      "-v", `${secretFile}:/run/secrets/enroll-secret:ro`,
      "-p", `127.0.0.1:${apiPort}:9000`,
      "-p", `127.0.0.1:${natsPort}:4333`,
      "-e", "CORAL_APP_NAME=shop",
      "-e", "CORAL_ENVIRONMENT=prod",
      "-e", "CORAL_ENROLL_SECRET_FILE=/run/secrets/enroll-secret",
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

    // The standing invitation from the file is there: id "env", unlimited, never expiring, unused.
    expect((await invitationsOf(url, token)).find((i) => i.invitationId === "env")).toMatchObject({ maxUses: 0, uses: 0, state: "active" });

    // An app component and its agent on the host, enrolling its own key with the standing invitation.
    const appPort = await freePort();
    const app = spawn(process.execPath, [join(repoRoot, "cli/dist/sample-app/component.mjs"), "store", String(appPort)], { stdio: "ignore" });
    children.push(app);
    let agentOut = "";
    const agent = spawn(process.execPath, [coralBin, "connect", "store", "--port", String(appPort), "--summary-interval", "1s"], {
      env: { ...process.env, NO_COLOR: "1", CORAL_HOME: join(tmp, "home"), CORAL_COLONY_URL: url, CORAL_ENROLL_SECRET: secret, CORAL_COLONY_ID: first.colonyId },
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
    // Its own key, private to it, enrolled through the standing invitation (one use counted).
    const identityPath = join(tmp, "home", "agents", first.colonyId, "store", "identity.json");
    expect((await stat(identityPath)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(identityPath, "utf8"))).toMatchObject({ version: 1, enrolled: true, public_key: expect.any(String) });
    expect((await invitationsOf(url, token)).find((i) => i.invitationId === "env")).toMatchObject({ uses: 1, state: "active" });
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
      "-e", "CORAL_APP_NAME=my-shop", "-e", "CORAL_ENVIRONMENT=prod", "-e", `CORAL_ENROLL_SECRET=${secret}`,
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
        "-e", "CORAL_COLONY_ID=my-shop-prod", "-e", "CORAL_COLONY_URL=http://coral-colony:9000", "-e", `CORAL_ENROLL_SECRET=${secret}`,
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

    // Each sidecar made its own key (0600, in its data folder) and enrolled it with the one standing invitation.
    const keys = new Map<string, { agentId: string; publicKey: string }>();
    for (const [component] of components) {
      const dataDir = `/data/agent/agents/my-shop-prod/${component}`;
      const agentName = `${app}-${component}-agent`;
      expect(await podman(["exec", agentName, "stat", "-c", "%a", `${dataDir}/identity.json`]), component).toBe("600");
      const identity = JSON.parse(await podman(["exec", agentName, "cat", `${dataDir}/identity.json`])) as { public_key: string; enrolled: boolean };
      expect(identity.enrolled, component).toBe(true);
      keys.set(component, { agentId: await podman(["exec", agentName, "cat", `${dataDir}/agent-id`]), publicKey: identity.public_key });
    }
    expect(new Set([...keys.values()].map((k) => k.publicKey)).size).toBe(3);
    expect((await invitationsOf(url, token)).find((i) => i.invitationId === "env")).toMatchObject({ uses: 3, state: "active" });

    // What the standing invitation does and does not let its holder do, against the deployed colony.
    const invitation = { invitationId: "env", invitationSecret: secret };
    // It enrolls a NEW agent, with that agent's own key and its own credentials...
    await using newcomer = new SyntheticAgent({ colonyUrl: url, invitation, agentId: "newcomer-0a1b2c", serviceName: "newcomer", port: 9999 });
    const enrolled = await newcomer.register();
    expect(enrolled.agentToken).toMatch(/\S{16,}/);
    expect(enrolled.nats?.user).toBeTruthy();
    // ...but cannot take over a running sidecar's id with another key,
    const impostor = new SyntheticAgent({ colonyUrl: url, invitation, agentId: keys.get("frontend")!.agentId, serviceName: "frontend", port: 3000 });
    const takeover = await connectCode(impostor.register());
    expect(takeover.code).toBe(Code.PermissionDenied);
    expect(takeover.message).toMatch(/enrolled with another key/);
    // and a wrong secret enrolls nobody.
    const stranger = new SyntheticAgent({ colonyUrl: url, invitation: { invitationId: "env", invitationSecret: randomBytes(32).toString("hex") }, agentId: "stranger-0a1b2c", serviceName: "stranger", port: 9998 });
    expect((await connectCode(stranger.register())).code).toBe(Code.Unauthenticated);
  }, 600_000);

  it("refuses to start with a weak enroll secret and says why: all zeros, the Kubernetes example's placeholder, the old name too", async () => {
    const shipped = (YAML.parse(await readFile(join(repoRoot, "infra/kubernetes/secret.yaml"), "utf8")) as { stringData: Record<string, string> }).stringData["enroll-secret"]!;
    const placeholderFile = join(tmp, "placeholder-secret");
    await writeFile(placeholderFile, `${shipped}\n`, { mode: 0o644 });
    const zerosFile = join(tmp, "zeros-secret");
    await writeFile(zerosFile, `${"0".repeat(64)}\n`, { mode: 0o644 });
    const cases = [
      { what: "all zeros", env: ["-e", `CORAL_ENROLL_SECRET=${"0".repeat(64)}`], expected: /CORAL_ENROLL_SECRET is not random[^\n]*openssl rand -hex 32/ },
      { what: "secret.yaml's placeholder, as a file", env: ["-v", `${placeholderFile}:/run/secrets/enroll-secret:ro`, "-e", "CORAL_ENROLL_SECRET_FILE=/run/secrets/enroll-secret"], expected: /CORAL_ENROLL_SECRET must be 64 hex characters/ },
      // The old name is still read (through its _FILE too), and checked the same way.
      { what: "all zeros under the old name", env: ["-v", `${zerosFile}:/run/secrets/colony-secret:ro`, "-e", "CORAL_COLONY_SECRET_FILE=/run/secrets/colony-secret"], expected: /CORAL_COLONY_SECRET is not random/ },
    ];
    const results = await Promise.all(
      cases.map(async (c) => {
        const name = uniqueName("weak");
        const volume = uniqueName("data");
        cleanup.containers.push(name);
        cleanup.volumes.push(volume);
        await podman(["volume", "create", volume]);
        // In the foreground: podman run returns the container's exit code.
        const res = await podmanResult(["run", "--name", name, ...limits, "--no-healthcheck", "-v", `${volume}:/data`, ...c.env, "-e", "CORAL_APP_NAME=shop", colonyImage], 300_000);
        const state = await podman(["inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", name]);
        return { ...c, res, state, logs: `${res.stdout}\n${res.stderr}` };
      }),
    );
    for (const r of results) {
      expect(r.state, r.what).toMatch(/^exited [1-9]\d*$/);
      expect(r.res.code, r.what).not.toBe(0);
      expect(r.logs, r.what).toMatch(r.expected);
      // It stopped before serving: no API came up.
      expect(r.logs, r.what).not.toMatch(/Press Ctrl\+C to stop/);
    }
  }, 600_000);
});
