// Issue 20: the always-on CPU profiler, colony side. A registered agent
// publishes TelemetryBatches carrying per-minute profile windows on its NATS
// subject (as the agent does); the colony rolls them up per service and
// minute, and QueryCpuProfile merges a window of minutes into one profile.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { RunningColony } from "@coral/colony";
import type { CpuProfile } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { describe, expect, it } from "vitest";
import { colonyApi, createTestProject, serviceApi } from "../helpers/colony.ts";
import { rejection } from "../helpers/errors.ts";
import { profileWindow, publishProfileWindows } from "../helpers/profile-windows.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";

const minute = 60_000;
const base = Math.floor(Date.now() / minute) * minute - 60 * minute;
const ts = (ms: number) => timestampFromDate(new Date(ms));
const win = profileWindow;
const publish = publishProfileWindows;

async function count(colony: RunningColony, sql: string): Promise<number> {
  const reader = await colony.store.read((c) => c.runAndReadAll(sql));
  return Number(reader.getRows()[0]![0]);
}

/** "root;…;leaf" → samples, from a merged profile. */
function stacksOf(p: CpuProfile | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of p?.stacks ?? []) out[s.frameIds.map((id) => p!.frames[id]!.function).join(";")] = Number(s.samples);
  return out;
}

describe("stored always-on CPU profiles", () => {
  it("stores the agents' profile windows per minute and answers QueryCpuProfile", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    const agents = ["prof-a", "prof-b"].map((agentId, i) => new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId, serviceName: "checkout", port: 7300 + i }));
    try {
      for (const a of agents) {
        await a.register();
        await a.heartbeat();
        await a.connectNats();
      }
      const [a, b] = agents as [SyntheticAgent, SyntheticAgent];
      // Minute 0: two agents' windows add up. Minute 1: a second window. Minute 10: outside the queried range. Minute -30: the baseline.
      await publish(a, "a-1", [win(base, { "main;handle;parse": 30, "main;handle;tick": 5 }, 2), win(base + minute, { "main;handle;parse": 10 })]);
      await publish(b, "b-1", [win(base + 7_000, { "main;handle;parse": 3, "main;gc": 4 })]);
      await publish(a, "a-2", [win(base + 10 * minute, { "main;idle": 1000 })]);
      await publish(a, "a-base", [win(base - 30 * minute, { "main;handle;parse": 8 }, 1)]);
      // A redelivery (same Nats-Msg-Id, or past the stream's dedupe window) must not count twice.
      await publish(a, "a-1", [win(base, { "main;handle;parse": 30, "main;handle;tick": 5 }, 2), win(base + minute, { "main;handle;parse": 10 })]);
      await waitFor("four profile minutes stored", async () => (await count(colony, "SELECT count(*) FROM profile_minutes")) === 4, { timeoutMs: 60_000, intervalMs: 200 });

      // A read token is enough: stored stacks never touch the processes.
      const created = await colonyApi(colony.url, project.localToken).createToken({ name: "reader", scope: 1 });
      const api = serviceApi(ProfileService, colony.url, created.token);
      const res = await api.queryCpuProfile({
        serviceName: "checkout",
        start: ts(base),
        end: ts(base + 2 * minute),
        baselineStart: ts(base - 40 * minute),
        baselineEnd: ts(base - 20 * minute),
      });
      expect(res.serviceName).toBe("checkout");
      expect(res.minutes).toBe(2);
      expect(stacksOf(res.profile)).toEqual({ "main;handle;parse": 43, "main;handle;tick": 5, "main;gc": 4 });
      const p = res.profile!;
      expect(p).toMatchObject({ totalSamples: 54n, hz: 19, durationMs: 2 * minute, method: "continuous", pids: [] });
      expect(p.startedAt?.seconds).toBe(BigInt(base / 1000));
      expect(p.note).toMatch(/^2 minutes of the always-on profiler at 19 Hz; 2 samples in stacks beyond the top kept per minute$/);
      // Frames are shared between stacks: main appears once.
      expect(p.frames.filter((f) => f.function === "main")).toHaveLength(1);
      expect(p.frames.find((f) => f.function === "tick")).toMatchObject({ module: "[kernel]", kernel: true });
      expect(res.baselineMinutes).toBe(1);
      expect(stacksOf(res.baseline)).toEqual({ "main;handle;parse": 8 });
      expect(res.baseline).toMatchObject({ totalSamples: 9n, durationMs: minute });

      // No baseline asked for: none answered. End unset = now (every minute so far).
      const noBase = await api.queryCpuProfile({ serviceName: "checkout", start: ts(base) });
      expect(noBase.baseline).toBeUndefined();
      expect(noBase.minutes).toBe(3);
      expect(stacksOf(noBase.profile)["main;idle"]).toBe(1000);

      // A malformed window (a frame id out of range) sets its batch aside; the next good batch is stored.
      const bad = win(base + 20 * minute, { "main;x": 1 });
      bad.stacks = [{ frameIds: [0, 9], samples: 1n, pid: 1 }];
      await publish(a, "a-bad", [bad]);
      await publish(a, "a-3", [win(base + 21 * minute, { "main;after": 6 })]);
      await waitFor("the good batch after the bad one stored", async () => (await count(colony, "SELECT count(*) FROM profile_minutes")) === 5, { timeoutMs: 60_000, intervalMs: 200 });
      await waitFor("the bad batch set aside", async () => (await count(colony, "SELECT count(*) FROM dead_letters WHERE batch_id = 'a-bad'")) === 1, { timeoutMs: 60_000, intervalMs: 200 });
      const reason = await colony.store.read(async (c) => (await c.runAndReadAll("SELECT reason FROM dead_letters WHERE batch_id = 'a-bad'")).getRows()[0]![0]);
      expect(String(reason)).toMatch(/profile window #0 stack #0 has frame id 9, out of range/);
      expect(await count(colony, "SELECT total FROM dead_letter_counts WHERE agent_id = 'prof-a'")).toBe(1);
      const after = await api.queryCpuProfile({ serviceName: "checkout", start: ts(base + 20 * minute), end: ts(base + 22 * minute) });
      expect(stacksOf(after.profile)).toEqual({ "main;after": 6 });

      // Retention: metrics_1m's. Everything before base + 11 minutes goes.
      const deleted = await colony.store.applyRetention(new Date(base + 11 * minute + colony.store.retention.metrics_1m));
      expect(deleted).toMatchObject({ profile_minutes: 4 });
      const kept = await api.queryCpuProfile({ serviceName: "checkout", start: ts(base - 60 * minute) });
      expect(kept.minutes).toBe(1);
      expect(stacksOf(kept.profile)).toEqual({ "main;after": 6 });
      expect((await api.queryCpuProfile({ serviceName: "checkout", start: ts(base), end: ts(base + 2 * minute) })).minutes).toBe(0);

      // Bad requests name the field; an unknown service is NotFound.
      const now = Date.now();
      for (const [req, message] of [
        [{ start: ts(base) }, /service_name: required/],
        [{ serviceName: "checkout" }, /start: required/],
        [{ serviceName: "checkout", start: ts(base), end: ts(base - minute) }, /start: must be before end/],
        [{ serviceName: "checkout", start: ts(now - 40 * 24 * 60 * minute) }, /end: the window is at most 31 days/],
        [{ serviceName: "checkout", start: ts(base), baselineStart: ts(base - 60 * minute) }, /baseline_end: set both/],
        [{ serviceName: "checkout", start: ts(base), baselineStart: ts(base), baselineEnd: ts(base - minute) }, /baseline_start: must be before baseline_end/],
      ] as const) {
        const err = await rejection(api.queryCpuProfile(req));
        expect(err.code, err.rawMessage).toBe(Code.InvalidArgument);
        expect(err.rawMessage).toMatch(message);
      }
      const unknown = await rejection(api.queryCpuProfile({ serviceName: "nope", start: ts(base) }));
      expect(unknown.code).toBe(Code.NotFound);
      expect(unknown.rawMessage).toMatch(/no agent has ever observed nope/);
    } finally {
      for (const a of agents) await a[Symbol.asyncDispose]().catch(() => {});
    }
  }, 180_000);
});
