// Issue 20: the always-on CPU profiler end to end. A real agent (its
// profiler on, short windows) observes a real C server compiled here; the
// windows are kept in the agent's store, travel in telemetry batches over
// NATS, are rolled up by the colony and read back with QueryCpuProfile and
// `coral profile cpu --since`. Restarting the agent (same data folder) picks
// profiling up again, and nothing is left attached after it stops.
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { CpuProfile } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import type { RunningAgent } from "@coral/agent";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testAgent } from "../helpers/agents.ts";
import { runCoral } from "../helpers/cli.ts";
import { serviceApi } from "../helpers/colony.ts";
import { waitFor } from "../helpers/wait.ts";
import { bpfSkipReason, startObservedTarget, type ObservedTarget } from "../debug/helpers.ts";

const skip = bpfSkipReason(["gcc"]);
if (skip) console.log(`profile continuous.test: SKIPPING the always-on profiler end to end: ${skip}`);

function compileBusyServer(): string {
  const out = join(mkdtempSync(join(tmpdir(), "coral-profile-c-")), "busy-server");
  execFileSync("gcc", ["-O1", "-fno-omit-frame-pointer", "-pthread", "-o", out, fileURLToPath(new URL("./testdata/busy-server.c", import.meta.url))]);
  return out;
}

/** Self samples by leaf function. */
function selfSamples(p: CpuProfile | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of p?.stacks ?? []) {
    const leaf = p!.frames[s.frameIds[s.frameIds.length - 1]!]!.function;
    out.set(leaf, (out.get(leaf) ?? 0) + Number(s.samples));
  }
  return out;
}

/** Running bpftrace processes whose program is seeded with `pid`. */
function tracersOf(pid: number): number {
  try {
    return execFileSync("pgrep", ["-f", `@pids\\[${pid}\\] = 1;`], { encoding: "utf8" }).split("\n").filter(Boolean).length;
  } catch {
    return 0;
  }
}

const continuousProfile = { hz: 99, windowMs: 2000 };

describe.skipIf(skip !== undefined)("the always-on CPU profiler, agent to colony", () => {
  let fixture: ObservedTarget | undefined;
  /** The agent after the restart (the fixture closes only its own). */
  let restarted: RunningAgent | undefined;

  beforeAll(async () => {
    fixture = await startObservedTarget(compileBusyServer(), "checkout", { pattern: "parse_request", agent: { continuousProfile } });
  }, 180_000);
  afterAll(async () => {
    await restarted?.close();
    await fixture?.[Symbol.asyncDispose]();
  });

  it("keeps windows in the agent's store, rolls them up in the colony, and carries on after a restart", async () => {
    const f = fixture!;
    const api = serviceApi(ProfileService, f.colony.url, f.project.localToken);
    const query = () => api.queryCpuProfile({ serviceName: "checkout", start: timestampFromDate(new Date(Date.now() - 10 * 60_000)) });
    const first = await waitFor(
      "the colony to hold a few windows of samples",
      async () => {
        const res = await query();
        return (selfSamples(res.profile).get("parse_request") ?? 0) > 300 ? res : undefined;
      },
      { timeoutMs: 180_000, intervalMs: 1000 },
    );
    const self = selfSamples(first.profile);
    const parse = self.get("parse_request")!;
    const render = self.get("render_page") ?? 0;
    // By self time the server splits 75/25 between the two (the clock reads in between go to libc and the kernel).
    expect((100 * parse) / (parse + render)).toBeGreaterThan(65);
    expect((100 * parse) / (parse + render)).toBeLessThan(85);
    expect(first.profile).toMatchObject({ hz: 99, method: "continuous" });
    expect(f.agent.continuousProfile()).toMatchObject({ state: "running", hz: 99, windowMs: 2000, programs: 1 });

    // The agent keeps the same windows for its raw-retention window.
    const stored = await f.agent.store.queryProfileWindows({ limit: 1000 });
    expect(stored.rows.length).toBeGreaterThanOrEqual(2);
    const storedParse = stored.rows.flatMap((w) => w.stacks.filter((s) => w.frames[s.frameIds.at(-1)!]!.function === "parse_request")).reduce((n, s) => n + s.samples, 0);
    expect(storedParse).toBeGreaterThan(0);
    for (const w of stored.rows) expect(w.hz).toBe(99);

    // Stop the agent: its last partial window is kept, and no bpftrace stays on the server.
    const before = Number(first.profile!.totalSamples);
    await f.agent.close("restart test");
    await waitFor("no bpftrace left on the server", () => tracersOf(f.target.pid!) === 0, { timeoutMs: 20_000 });
    const restartedAt = Date.now();
    const agent = (restarted = await testAgent(f.project, f.colony.url, "checkout", f.port, { healthUrl: undefined, continuousProfile }));
    await waitFor("windows after the restart in the agent's store", async () => (await agent.store.queryProfileWindows({ since: new Date(restartedAt), limit: 10 })).rows.length >= 1, {
      timeoutMs: 90_000,
      intervalMs: 500,
    });
    await waitFor("the colony to count samples taken after the restart", async () => Number((await query()).profile?.totalSamples ?? 0) > before + 150, { timeoutMs: 90_000, intervalMs: 1000 });

    // Read with the CLI as a person would: stored profiles, no process touched.
    const res = await runCoral(["profile", "cpu", "checkout", "--since", "10m", "--json"], {
      cwd: f.project.dir,
      env: { CORAL_HOME: f.project.home, CORAL_TOKEN: undefined, CORAL_COLONY_URL: undefined },
    });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain("parse_request");
  }, 400_000);
});
