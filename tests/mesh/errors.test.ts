// The mesh's refusals from the CLI, as a user meets them: each says what is
// wrong and what to do. No namespaces needed.
import { mkdtemp, rm, symlink, mkdir } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runInit } from "@coral/cli/init";
import { runCoral } from "../helpers/cli.ts";

describe("mesh errors from the CLI", () => {
  let work: string;
  let projectDir: string;
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "coral-mesh-errors-"));
    projectDir = join(work, "project");
    process.env.CORAL_HOME = join(work, "home");
    await runInit({ app: "shop", env: "dev", yes: true, dir: projectDir }, { input: new PassThrough(), output: new PassThrough(), interactive: false });
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it("coral connect --mesh wireguard needs a join token, and rejects an unknown mesh mode as a usage error", async () => {
    const r = await runCoral(["connect", "api", "--port", "8080", "--mesh", "wireguard"], { cwd: work, env: { CORAL_HOME: join(work, "home"), CORAL_JOIN_TOKEN: "" } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--mesh wireguard needs a join token: --join-file <file>/);
    const bad = await runCoral(["connect", "api", "--port", "8080", "--mesh", "carrier-pigeon"], { cwd: work, env: { CORAL_HOME: join(work, "home") } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/Allowed choices are loopback, wireguard/);
  });

  it("coral colony start --mesh wireguard says what is missing: root, or wireguard-go with the command to install it", async () => {
    // A PATH with iproute2 but without wireguard-go.
    const bin = join(work, "bin");
    await mkdir(bin, { recursive: true });
    for (const tool of ["ip"]) for (const dir of ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) if (existsSync(join(dir, tool)) && !existsSync(join(bin, tool))) await symlink(join(dir, tool), join(bin, tool));
    const r = await runCoral(["colony", "start", "--dir", projectDir, "--mesh", "wireguard"], { cwd: projectDir, env: { CORAL_HOME: join(work, "home"), PATH: bin }, timeoutMs: 120_000 });
    expect(r.code).toBe(1);
    if (process.getuid?.() === 0) expect(r.stderr).toMatch(/wireguard-go not found on PATH; install it with: apt-get install -y --no-install-recommends wireguard-go/);
    else expect(r.stderr).toMatch(/needs root \(CAP_NET_ADMIN\)/);
    // Nothing was left running.
    expect(existsSync(join(projectDir, ".coral", "colony.pid"))).toBe(false);
  }, 150_000);

  it("coral mesh commands say when the colony is unreachable, and refuse a malformed agent id as a usage error", async () => {
    const r = await runCoral(["mesh", "revoke", "api-123456", "--colony-url", "http://127.0.0.1:1"], { cwd: work, env: { CORAL_HOME: join(work, "home") } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/colony not reachable at http:\/\/127\.0\.0\.1:1/);
    const bad = await runCoral(["mesh", "ping", "not an id!"], { cwd: work, env: { CORAL_HOME: join(work, "home") } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/is not an agent id/);
  });
});
