// `coral --version` and the read commands stay light: the built bin, run with
// a module loader hook that records every module URL it resolves, never loads
// DuckDB, NATS, XState, WireGuard or Miniflare/workerd. The commands talk to a
// port nobody listens on, so each runs its whole path up to the failed call.
// Needs the build (npm run build), like every test that runs the bin.
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { coralBin, type CliResult } from "../helpers/cli.ts";
import { freePort } from "../helpers/ports.ts";

const recorder = fileURLToPath(new URL("./record-modules.mjs", import.meta.url));
const forbidden = ["@duckdb", "@nats-io", "xstate", "miniflare", "workerd", "common/dist/wireguard"];

let dir: string;
let colonyUrl: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "coral-lazy-load-"));
  colonyUrl = `http://127.0.0.1:${await freePort()}`;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the bin with the recorder; the URLs it loaded, and what it printed. */
async function loadedBy(name: string, args: string[]): Promise<CliResult & { urls: string[] }> {
  const file = join(dir, `${name}.txt`);
  const result = await new Promise<CliResult>((resolve) => {
    execFile(
      process.execPath,
      ["--import", recorder, coralBin, ...args],
      // In an empty folder with an empty CORAL_HOME: no local colony to find.
      { cwd: dir, env: { ...process.env, NO_COLOR: "1", CORAL_HOME: join(dir, "home"), CORAL_RECORD_MODULES: file, NODE_OPTIONS: "" }, timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
    );
  });
  const urls = (await readFile(file, "utf8").catch(() => "")).split("\n").filter(Boolean);
  return { ...result, urls };
}

const cases: Array<[string, () => string[]]> = [
  ["--version", () => ["--version"]],
  ["status", () => ["status", "--colony-url", colonyUrl]],
  ["topology", () => ["topology", "--colony-url", colonyUrl]],
  ["events", () => ["events", "--since", "1h", "--colony-url", colonyUrl]],
  ["metrics", () => ["metrics", "api", "cpu_percent", "--since", "10m", "--colony-url", colonyUrl]],
  ["history", () => ["history", "api", "--colony-url", colonyUrl]],
];

describe("read commands load only what they use", () => {
  it.each(cases)("coral %s loads no DuckDB, NATS, XState, WireGuard or Miniflare", async (name, args) => {
    const run = await loadedBy(name, args());
    if (name === "--version") {
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^\d+\.\d+\.\d+/);
    } else {
      expect(run.stderr).toMatch(/colony not reachable at http:\/\/127\.0\.0\.1:\d+/);
      expect(run.code).toBe(1);
    }
    // The recorder worked and the command ran the built CLI.
    expect(run.urls.some((url) => url.includes("/cli/dist/"))).toBe(true);
    const heavy = run.urls.filter((url) => forbidden.some((name) => url.includes(name)));
    expect(heavy).toEqual([]);
  });

  it("a read command with no colony URL and no project loads the colony's configuration only", async () => {
    const run = await loadedBy("status-local", ["status"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/no colony here/);
    expect(run.urls.filter((url) => forbidden.some((name) => url.includes(name)))).toEqual([]);
  });
});

describe("the bundled read entry", () => {
  // The bin runs dist/bundle/read.js for these; dist/main.js must agree with it.
  const mainJs = new URL("../../cli/dist/main.js", import.meta.url).href;
  const viaMain = (args: string[]) =>
    new Promise<CliResult>((resolve) => {
      const script = `const { main } = await import(${JSON.stringify(mainJs)}); process.exitCode = await main(["node", "coral", ...${JSON.stringify(args)}]);`;
      execFile(process.execPath, ["--input-type=module", "-e", script], { cwd: dir, env: { ...process.env, NO_COLOR: "1", CORAL_HOME: join(dir, "home") } }, (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
      );
    });

  it.each([["status"], ["topology"], ["events"], ["metrics"], ["history"]])("coral %s prints the same help and usage errors as dist/main.js", async (name) => {
    for (const args of [[name, "--help"], [name, "--bogus"]]) {
      const [bundled, unbundled] = await Promise.all([loadedBy(`${name}-help`, args), viaMain(args)]);
      expect(bundled.urls.some((url) => url.includes("/cli/dist/bundle/"))).toBe(true);
      expect({ code: bundled.code, stdout: bundled.stdout, stderr: bundled.stderr }).toEqual(unbundled);
    }
  });
});
