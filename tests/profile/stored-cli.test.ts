// `coral profile cpu --since` end to end: a real colony, an agent's
// always-on profile windows published as the agent does, and the real CLI
// (read token only) printing the stored minutes, JSON, a comparison with an
// earlier window, a differential flame graph, and its errors.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunningColony } from "@coral/colony";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { profileWindow, publishProfileWindows } from "../helpers/profile-windows.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";

const minute = 60_000;
// Whole minutes well inside `--since 10m` and, for `--compare 30m`, inside 40 to 30 minutes ago,
// so a minute ticking over during the test changes nothing.
const now = Math.floor(Date.now() / minute) * minute;

describe("coral profile cpu --since (stored always-on profiles)", () => {
  let project: TestProject;
  let colony: RunningColony;
  let agent: SyntheticAgent;
  let readToken: string;
  let dir: string;
  const coral = (args: string[]) =>
    runCoral(["profile", "cpu", ...args], { cwd: project.dir, env: { CORAL_HOME: project.home, CORAL_COLONY_URL: colony.url, CORAL_TOKEN: readToken } });

  beforeAll(async () => {
    project = await createTestProject();
    colony = await project.start();
    agent = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "api-1", serviceName: "api", port: 7400 });
    await agent.register();
    await agent.heartbeat();
    await agent.connectNats();
    // Now: 80 samples, parse 60 %, render 20 %, gc 15 %, tick (kernel) 5 %. 30 minutes earlier: 40 samples, 50 / 40 / 5 / 5 %.
    await publishProfileWindows(agent, "now-1", [profileWindow(now - 5 * minute, { "main;handle;parse": 30, "main;handle;render": 16 }), profileWindow(now - 3 * minute, { "main;handle;parse": 18, "main;gc": 12, "main;handle;tick": 4 })]);
    await publishProfileWindows(agent, "before-1", [profileWindow(now - 35 * minute, { "main;handle;parse": 20, "main;handle;render": 16, "main;gc": 2, "main;handle;tick": 2 })]);
    await waitFor(
      "three profile minutes stored",
      async () => Number((await colony.store.read((c) => c.runAndReadAll("SELECT count(*) FROM profile_minutes"))).getRows()[0]![0]) === 3,
      { timeoutMs: 60_000, intervalMs: 200 },
    );
    readToken = (await colonyApi(colony.url, project.localToken).createToken({ name: "reader", scope: 1 })).token;
    dir = mkdtempSync(join(tmpdir(), "coral-stored-profile-"));
  }, 120_000);

  afterAll(async () => {
    await agent?.[Symbol.asyncDispose]().catch(() => {});
    await project?.[Symbol.asyncDispose]();
  });

  it("prints the stored minutes as the hottest functions, with a read token", async () => {
    const res = await coral(["api", "--since", "10m"]);
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.split("\n");
    expect(lines[0]).toMatch(/^CPU profile of api \(always-on, 19 Hz\): 80 samples over 2 minutes \((\d{4}-\d\d-\d\d )?\d\d:\d\d–(\d{4}-\d\d-\d\d )?\d\d:\d\d UTC\)$/);
    const rows = lines.filter((l) => /^\d+\.\d%/.test(l)).map((l) => l.split(/\s{2,}/).slice(0, 4));
    expect(rows).toEqual([
      ["60.0%", "60.0%", "48", "parse"],
      ["20.0%", "20.0%", "16", "render"],
      ["15.0%", "15.0%", "12", "gc"],
      ["5.0%", "5.0%", "4", "tick [k]"],
      ["0.0%", "100.0%", "0", "main"],
      ["0.0%", "85.0%", "0", "handle"],
    ]);
    expect(res.stderr).toBe(""); // no progress line: nothing is being sampled
  }, 60_000);

  it("answers JSON and folded stacks, and --until leaves out the last minutes", async () => {
    const json = await coral(["api", "--since", "10m", "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const body = JSON.parse(json.stdout) as { serviceName: string; minutes: number; profile: { totalSamples: string; hz: number; method: string; durationMs: number } };
    expect(body).toMatchObject({ serviceName: "api", minutes: 2, profile: { totalSamples: "80", hz: 19, method: "continuous", durationMs: 120_000 } });

    const folded = await coral(["api", "--since", "10m", "--folded"]);
    expect(folded.code, folded.stderr).toBe(0);
    expect(folded.stdout.trim().split("\n")).toEqual(["api;main;handle;parse 48", "api;main;handle;render 16", "api;main;gc 12", "api;main;handle;tick_[k] 4"]);

    // Up to 3.5 minutes before \`now\`: only the minute 5 minutes before it. Measured from the
    // real clock, so a slow start (beforeAll on a loaded machine) does not let the later minute in.
    const untilSeconds = Math.round((Date.now() - now) / 1000) + 210;
    const until = await coral(["api", "--since", "10m", "--until", `${untilSeconds}s`]);
    expect(until.code, until.stderr).toBe(0);
    expect(until.stdout.split("\n")[0]).toMatch(/: 46 samples over 1 minute \(/);
  }, 60_000);

  it("compares with the same window earlier: deltas in points, hotter first, and a differential flame graph", async () => {
    const svg = join(dir, "diff.svg");
    const res = await coral(["api", "--since", "10m", "--compare", "30m", "-o", svg]);
    expect(res.code, res.stderr).toBe(0);
    const lines = res.stdout.split("\n");
    expect(lines[0]).toMatch(/^CPU profile of api \(always-on, 19 Hz\): 80 samples over 2 minutes/);
    expect(lines[1]).toMatch(/^ {2}compared with 40 samples over 1 minute \(/);
    const rows = lines.filter((l) => /^\d+\.\d%/.test(l)).map((l) => l.split(/\s{2,}/).slice(0, 4));
    expect(rows).toEqual([
      ["50.0%", "60.0%", "+10.0", "parse"],
      ["5.0%", "15.0%", "+10.0", "gc"],
      ["40.0%", "20.0%", "−20.0", "render"],
      ["5.0%", "5.0%", "±0.0", "tick [k]"],
    ]);
    expect(res.stdout).toContain(`📄 Saved ${svg} (differential flame graph: red grew, blue shrank)`);
    const picture = readFileSync(svg, "utf8");
    // The largest change (render, −20 points) is the deepest blue; parse and gc (+10) half-way red.
    expect(picture).toMatch(/<title>render \(\/srv\/app\): 16 samples, 20\.00% \(−20\.00 points\)<\/title><rect [^>]*fill="rgb\(60,60,255\)"/);
    expect(picture).toMatch(/<title>parse \(\/srv\/app\): 48 samples, 60\.00% \(\+10\.00 points\)<\/title><rect [^>]*fill="rgb\(255,148,148\)"/);

    const json = await coral(["api", "--since", "10m", "--compare", "30m", "--json", "--top", "2"]);
    expect(json.code, json.stderr).toBe(0);
    const body = JSON.parse(json.stdout) as { minutes: number; baselineMinutes: number; diff: { function: string; beforePercent: number; afterPercent: number; delta: number }[]; profile: { totalSamples: string }; baseline: { totalSamples: string } };
    expect(body).toMatchObject({ minutes: 2, baselineMinutes: 1, profile: { totalSamples: "80" }, baseline: { totalSamples: "40" } });
    // Top 2 by |delta|: render (−20), then parse (+10, the larger share now); hotter first.
    expect(body.diff.map((d) => [d.function, d.beforePercent, d.afterPercent, d.delta])).toEqual([
      ["parse", 50, 60, 10],
      ["render", 40, 20, -20],
    ]);
  }, 60_000);

  it("says so when nothing was stored, and refuses flags that do not fit", async () => {
    const empty = await coral(["api", "--since", "2m"]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain("no stored profile for api in the last 2m: is the always-on profiler running? (coral connect --profile-hz)");
    const noBaseline = await coral(["api", "--since", "10m", "--compare", "2h"]);
    expect(noBaseline.code).toBe(1);
    expect(noBaseline.stderr).toContain("no stored profile for api in the baseline");

    for (const [args, message] of [
      [["api", "--since", "1h", "--duration", "10s"], /--duration and --since: pick one/],
      [["api", "--since", "1h", "--hz", "49"], /--hz and --since: pick one/],
      [["api", "--compare", "1d"], /--compare needs --since/],
      [["api", "--until", "5m"], /--until needs --since/],
      [["api", "--since", "10m", "--until", "1h"], /--until 1h must be less than --since 10m/],
      [["api", "--since", "40d"], /must be at most 31d/],
      [["api", "--since", "10m", "--compare", "1h", "--folded"], /--compare and --folded: pick one/],
    ] as const) {
      const res = await coral([...args]);
      expect(res.code, `${args.join(" ")}: ${res.stderr}`).toBe(2);
      expect(res.stderr).toMatch(message);
    }
  }, 60_000);
});
