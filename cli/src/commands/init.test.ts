import { mkdir, readFile, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { currentColony, listColonies, loadColonyConfig, loadColonyKeys, readLocalToken } from "@coral/colony";
import { tempDir, useTempCoralHome } from "@coral/colony/testing";
import { initCommand, runInit, type InitIo } from "./init.ts";

let root: string;
let dir: string;
let restoreHome: () => Promise<void>;
beforeEach(async () => {
  ({ restore: restoreHome } = await useTempCoralHome());
  root = await tempDir();
  dir = join(root, "My Shop");
  await mkdir(dir);
});
afterEach(async () => {
  vi.restoreAllMocks();
  await rm(root, { recursive: true, force: true });
  await restoreHome();
});

const quiet = (): InitIo => ({ input: new PassThrough(), output: new PassThrough(), interactive: false });
const mode = async (path: string) => (await stat(path)).mode & 0o777;
const idPattern = /^my-shop-dev-[0-9a-f]{6}$/;

describe("coral init --yes", () => {
  it("creates config, keys and token, and registers the colony as current", async () => {
    const result = await runInit({ app: "my-shop", env: "dev", yes: true, dir }, quiet());
    expect(result.colonyId).toMatch(idPattern);
    expect(result.configPath).toBe(join(dir, ".coral", "config.yaml"));

    const config = await loadColonyConfig(dir, { env: {} });
    expect(config.colony).toMatchObject({ app_name: "my-shop", environment: "dev", colony_id: result.colonyId });
    expect(config.discovery.endpoint).toBeUndefined();

    const keys = await loadColonyKeys(dir);
    expect(keys.identity.publicKey).toBe(result.identityPublicKey);
    expect(keys.wireguard.publicKey).toBe(result.wireguardPublicKey);
    expect(await mode(join(dir, ".coral", "keys"))).toBe(0o700);
    for (const name of ["identity.key", "wireguard.key"]) expect(await mode(join(dir, ".coral", "keys", name))).toBe(0o600);
    expect(await mode(join(dir, ".coral", "local.token"))).toBe(0o600);
    expect(await readLocalToken(dir)).toMatch(/^coral_local_/);
    expect(await readFile(join(dir, ".coral", ".gitignore"), "utf8")).toContain("*\n!.gitignore\n!config.yaml\n");

    expect(await currentColony()).toMatchObject({ colony_id: result.colonyId, app_name: "my-shop", environment: "dev", project_dir: dir });
  });

  it("refuses a second init without --force, replaces the colony with it", async () => {
    const first = await runInit({ app: "my-shop", env: "dev", yes: true, dir }, quiet());
    const err = await runInit({ app: "my-shop", env: "dev", yes: true, dir }, quiet()).catch((e: unknown) => e);
    expect((err as Error).message).toBe(
      `a colony is already initialized in ${dir} (${first.colonyId}): ${join(dir, ".coral", "config.yaml")} exists. ` +
        "Pass --force to replace it (new keys: agents that joined must join again), or start it with: coral colony start",
    );
    expect((await loadColonyConfig(dir, { env: {} })).colony.colony_id).toBe(first.colonyId);

    const second = await runInit({ app: "my-shop", env: "dev", yes: true, dir, force: true }, quiet());
    expect(second.colonyId).toMatch(idPattern);
    expect(second.colonyId).not.toBe(first.colonyId);
    expect((await loadColonyKeys(dir)).identity.publicKey).not.toBe(first.identityPublicKey);
    expect((await listColonies()).map((c) => c.colony_id)).toEqual([second.colonyId]);
    expect((await currentColony())?.colony_id).toBe(second.colonyId);
  });

  it("defaults the app to the folder name and the env to dev", async () => {
    const result = await runInit({ yes: true, dir }, quiet());
    expect(result.appName).toBe("my-shop");
    expect(result.environment).toBe("dev");
    expect(result.colonyId).toMatch(idPattern);
  });

  it("writes the discovery endpoint", async () => {
    await runInit({ app: "my-shop", env: "prod", discovery: "http://localhost:8080/", yes: true, dir }, quiet());
    const config = await loadColonyConfig(dir, { env: {} });
    expect(config.discovery.endpoint).toBe("http://localhost:8080");
    expect(config.colony.colony_id).toMatch(/^my-shop-prod-[0-9a-f]{6}$/);
  });

  it("keeps other colonies registered and makes the new one current", async () => {
    const other = join(root, "blog");
    await mkdir(other);
    const blog = await runInit({ app: "blog", env: "dev", yes: true, dir: other }, quiet());
    const shop = await runInit({ app: "my-shop", env: "dev", yes: true, dir }, quiet());
    expect((await listColonies()).map((c) => c.colony_id)).toEqual([blog.colonyId, shop.colonyId]);
    expect((await currentColony())?.colony_id).toBe(shop.colonyId);
  });
});

describe("coral init input errors", () => {
  it.each([
    [{ app: "My Shop", yes: true }, '--app: "My Shop" may only contain lowercase letters, digits and hyphens, starting and ending with a letter or digit; try "my-shop"'],
    [{ app: "-shop", yes: true }, '--app: "-shop" may only contain lowercase letters, digits and hyphens, starting and ending with a letter or digit; try "shop"'],
    [{ app: "", yes: true }, "--app: is empty"],
    [{ app: "shop", env: "Prod", yes: true }, '--env: "Prod" may only contain lowercase letters, digits and hyphens, starting and ending with a letter or digit; try "prod"'],
    [{ app: "shop", env: "production-eu-west-1", yes: true }, '--env: "production-eu-west-1" is 20 characters; at most 15 are allowed'],
    [{ app: "shop", discovery: "discovery.example.com", yes: true }, '--discovery: "discovery.example.com" is not a URL; use e.g. https://discovery.example.com or http://localhost:8080'],
    [{ app: "shop", discovery: "ftp://x.example.com", yes: true }, '--discovery: "ftp://x.example.com" must start with http:// or https://'],
    [{ env: "dev" }, 'no application name: pass --app <name> --env <env> (e.g. coral init --app my-shop --env dev), or --yes to use the defaults (app "my-shop", env "dev")'],
  ])("%j", async (options, message) => {
    await expect(runInit({ ...options, dir }, quiet())).rejects.toThrow(message);
    // Nothing was written.
    await expect(stat(join(dir, ".coral"))).rejects.toThrow(/ENOENT/);
  });

  it("uses dev without a TTY when only --app is given", async () => {
    const result = await runInit({ app: "my-shop", dir }, quiet());
    expect(result.colonyId).toMatch(idPattern);
  });
});

describe("coral init prompts", () => {
  /** Answers each prompt (a line ending in ": ") with the next answer. */
  function terminal(answers: string[]): InitIo & { transcript: () => string } {
    const input = new PassThrough();
    const output = new PassThrough();
    let text = "";
    output.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (text.endsWith(": ")) {
        const next = answers.shift();
        if (next === undefined) input.end();
        else input.write(`${next}\n`);
      }
    });
    return { input, output, interactive: true, transcript: () => text };
  }

  it("asks for the app and env with defaults, and again after a bad answer", async () => {
    const io = terminal(["Bad Name", "", "staging"]);
    const result = await runInit({ dir }, io);
    expect(result.appName).toBe("my-shop");
    expect(result.environment).toBe("staging");
    expect(io.transcript()).toBe(
      "Application name (my-shop): " +
        '  "Bad Name" may only contain lowercase letters, digits and hyphens, starting and ending with a letter or digit; try "bad-name"\n' +
        "Application name (my-shop): " +
        "Environment (dev): ",
    );
  });

  it("asks only for what is missing", async () => {
    const io = terminal(["prod"]);
    const result = await runInit({ app: "shop", dir }, io);
    expect(result.colonyId).toMatch(/^shop-prod-[0-9a-f]{6}$/);
    expect(io.transcript()).toBe("Environment (dev): ");
  });

  it("fails when the input ends", async () => {
    await expect(runInit({ dir }, terminal([]))).rejects.toThrow("init cancelled (input ended); pass --app and --env, or --yes for the defaults");
  });

  it("does not prompt with --yes", async () => {
    const io = terminal([]);
    await runInit({ yes: true, dir }, io);
    expect(io.transcript()).toBe("");
  });
});

describe("initCommand", () => {
  it("prints the summary like the design docs", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    await initCommand().exitOverride().parseAsync(["--app", "my-shop", "--env", "dev", "--yes", "--dir", dir], { from: "user" });
    const lines = log.mock.calls.map((c) => String(c[0])).join("\n").split("\n");
    expect(lines[0]).toMatch(/^✓ Colony initialized: my-shop-dev-[0-9a-f]{6}$/);
    expect(lines[1]).toBe(`  Config: ${join(dir, ".coral", "config.yaml")}`);
    expect(lines[2]).toBe(`  Keys: ${join(dir, ".coral", "keys")} (private: back them up, never commit them)`);
    expect(lines).toContain("  coral colony start");
  });

  it("prints JSON with --json", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    await initCommand().exitOverride().parseAsync(["--app", "my-shop", "--yes", "--json", "--dir", dir], { from: "user" });
    const out = JSON.parse(String(log.mock.calls[0]?.[0])) as Record<string, unknown>;
    expect(out).toMatchObject({ app_name: "my-shop", environment: "dev", project_dir: dir, config: join(dir, ".coral", "config.yaml"), discovery: null });
    expect(out.colony_id).toMatch(idPattern);
  });

  it("rejects a second init without --force", async () => {
    vi.spyOn(console, "log").mockImplementation(() => undefined);
    const args = ["--app", "my-shop", "--env", "dev", "--yes", "--dir", dir];
    await initCommand().exitOverride().parseAsync(args, { from: "user" });
    await expect(initCommand().exitOverride().parseAsync(args, { from: "user" })).rejects.toThrow("a colony is already initialized");
    await initCommand().exitOverride().parseAsync([...args, "--force"], { from: "user" });
  });
});
