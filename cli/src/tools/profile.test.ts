// coral_profile_cpu with `since` and `compare`: the colony's stored profiles
// (a stand-in ProfileService), asked for the right windows, answered compactly.
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { CpuProfileSchema } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { QueryCpuProfileResponseSchema, type ProfileService, type QueryCpuProfileRequest } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { describe, expect, it } from "vitest";
import { runTool } from "./index.ts";
import type { ToolContext } from "./types.ts";

const now = Date.parse("2026-05-01T14:00:00Z");
const frames = ["main", "parse", "render"].map((fn) => ({ function: fn, module: "/srv/app" }));
const profileOf = (parse: number, render: number) =>
  create(CpuProfileSchema, { frames, stacks: [{ frameIds: [0, 1], samples: BigInt(parse) }, { frameIds: [0, 2], samples: BigInt(render) }], totalSamples: BigInt(parse + render), hz: 19, method: "continuous" });

function ctxAnswering(res: ReturnType<typeof create<typeof QueryCpuProfileResponseSchema>>, asked: QueryCpuProfileRequest[]): ToolContext {
  const profile = {
    queryCpuProfile: (req: QueryCpuProfileRequest) => (asked.push(req), Promise.resolve(res)),
    profileCpu: () => Promise.reject(new Error("must not profile")),
  } as unknown as Client<typeof ProfileService>;
  return { colony: {} as ToolContext["colony"], profile, now: () => now };
}

describe("coral_profile_cpu over stored profiles", () => {
  it("reads the past window instead of profiling, and compares with an earlier one", async () => {
    const asked: QueryCpuProfileRequest[] = [];
    const res = create(QueryCpuProfileResponseSchema, { serviceName: "api", profile: profileOf(75, 25), baseline: profileOf(50, 50), minutes: 60, baselineMinutes: 60 });
    const out = await runTool(ctxAnswering(res, asked), "coral_profile_cpu", { service: "api", since: "1h", compare: "1d", top: 5 });
    const iso = (t: Parameters<typeof timestampDate>[0] | undefined) => timestampDate(t!).toISOString();
    expect([iso(asked[0]!.start), iso(asked[0]!.end), iso(asked[0]!.baselineStart), iso(asked[0]!.baselineEnd)]).toEqual([
      "2026-05-01T13:00:00.000Z",
      "2026-05-01T14:00:00.000Z",
      "2026-04-30T13:00:00.000Z",
      "2026-04-30T14:00:00.000Z",
    ]);
    expect(out.text.split("\n")).toEqual([
      "api: 100 samples over 60 stored minute(s) at 19 Hz (always-on), 2026-05-01T13:00:00.000Z to 2026-05-01T14:00:00.000Z.",
      "Baseline: 100 samples over 60 minute(s), 2026-04-30T13:00:00.000Z to 2026-04-30T14:00:00.000Z.",
      "Self time share, before → after (percentage points; hotter first):",
      "- +25 pts: parse 50% → 75%",
      "- -25 pts: render 50% → 25%",
    ]);

    const single = await runTool(ctxAnswering(create(QueryCpuProfileResponseSchema, { serviceName: "api", profile: profileOf(75, 25), minutes: 60 }), []), "coral_profile_cpu", { service: "api", since: "1h", top: 1 });
    expect(single.text).toContain("Most self time:\n- 75% self, 75% total: parse (/srv/app)\nHottest stacks (root → leaf):\n- 75%: main → parse");
  });

  it("says when nothing was stored, and refuses duration with since and compare without it", async () => {
    const empty = await runTool(ctxAnswering(create(QueryCpuProfileResponseSchema, { serviceName: "api", profile: profileOf(0, 0), minutes: 0 }), []), "coral_profile_cpu", { service: "api", since: "15m" });
    expect(empty.text).toMatch(/^api: no stored profile from .* the always-on profiler may be off \(coral connect --profile-hz\)/);
    const ctx = ctxAnswering(create(QueryCpuProfileResponseSchema, {}), []);
    await expect(runTool(ctx, "coral_profile_cpu", { service: "api", since: "1h", duration: "10s" })).rejects.toThrow(/since: duration and since: pick one/);
    await expect(runTool(ctx, "coral_profile_cpu", { service: "api", compare: "1d" })).rejects.toThrow(/compare: compare needs since/);
    await expect(runTool(ctx, "coral_profile_cpu", { service: "api", since: "40d" })).rejects.toThrow(/at most 31d/);
  });
});
