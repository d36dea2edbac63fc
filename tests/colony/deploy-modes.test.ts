// A colony that registers with a real discovery service, serves its API over
// TLS, and runs as a daemon.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject } from "../helpers/colony.ts";
import { discoveryClient, startTestDiscovery } from "../helpers/discovery.ts";
import { freePort } from "../helpers/ports.ts";
import { loadColonyKeys } from "@coral/colony";

describe("colony deployment modes", () => {
  it("registers with discovery so a lookup verified against its key finds it", async () => {
    await using discovery = await startTestDiscovery();
    await using project = await createTestProject();
    await project.setConfig(["discovery", "endpoint"], discovery.url);
    const colony = await project.start();
    const keys = await loadColonyKeys(project.dir);
    const answer = await discoveryClient(discovery.url).lookupColony(project.colonyId, { pinnedKey: keys.identity.publicKey });
    expect(answer.connectPort).toBe(Number(new URL(colony.url).port));
    expect(answer.pubkey).toBe(keys.wireguard.publicKey);
    expect(answer.meshIpv4).toBe("10.42.0.1");
    expect(answer.metadata).toEqual({ application: "shop", environment: "dev" });
    expect((await colonyApi(colony.url, project.localToken).getStatus({})).discoveryStatus).toBe("registered");
  });

  it("serves the API over TLS with the configured certificate", async () => {
    await using project = await createTestProject();
    const cert = join(project.dir, "colony.crt");
    const key = join(project.dir, "colony.key");
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
      "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", cert], { stdio: "ignore" });
    await project.setConfig(["colony", "api", "tls"], { cert, key });
    const colony = await project.start();
    expect(colony.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await runCoral(["status", "--json"], {
      cwd: project.dir,
      env: { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port, NODE_EXTRA_CA_CERTS: cert },
    });
    expect(res.stderr).toBe("");
    expect(JSON.parse(res.stdout).colonyId).toBe(project.colonyId);
    const untrusted = await runCoral(["status"], { cwd: project.dir, env: { CORAL_HOME: project.home, CORAL_API_PORT: new URL(colony.url).port } });
    expect(untrusted.code).toBe(1);
  });

  it("starts as a daemon, reports its status and stops", async () => {
    await using project = await createTestProject();
    const env = { CORAL_HOME: project.home, CORAL_API_PORT: String(await freePort()) };
    await project.setConfig(["nats", "port"], await freePort());
    const started = await runCoral(["colony", "start", "--daemon"], { cwd: project.dir, env });
    expect(started.stderr).toBe("");
    expect(started.stdout).toMatch(/✓ Colony shop-dev-[0-9a-f]{6} started in the background \(pid \d+\)/);
    const status = await runCoral(["colony", "status", "--json"], { cwd: project.dir, env });
    expect(JSON.parse(status.stdout)).toMatchObject({ colonyId: project.colonyId, natsStatus: "connected" });
    const again = await runCoral(["colony", "start", "--daemon"], { cwd: project.dir, env });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already running/);
    const stopped = await runCoral(["colony", "stop"], { cwd: project.dir, env });
    expect(stopped.stdout).toMatch(/✓ Colony .* stopped/);
    const after = await runCoral(["colony", "status"], { cwd: project.dir, env });
    expect(after.code).toBe(3);
  });
});
