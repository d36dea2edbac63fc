// Bad input to CPU profiling, at the colony's edge and the CLI's: each a
// clear error and exit code, nothing sent to an agent. A real colony (no
// agent is needed to refuse these).
import { Code } from "@connectrpc/connect";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import type { RunningColony } from "@coral/colony";
import { all } from "@coral/common/duckdb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject, serviceApi, type TestProject } from "../helpers/colony.ts";
import { rejection } from "../helpers/errors.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";

let project: TestProject;
let colony: RunningColony;

beforeAll(async () => {
  project = await createTestProject();
  colony = await project.start();
  const agent = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "api-1", serviceName: "api", port: 0 });
  await agent.register();
}, 120_000);
afterAll(async () => {
  await project?.[Symbol.asyncDispose]();
});

describe("CPU profiling refuses bad input", () => {
  it("at the colony: out-of-range hz and duration, no service, an unknown service, a read token", async () => {
    const api = serviceApi(ProfileService, colony.url, project.localToken);
    const hz = await rejection(api.profileCpu({ serviceName: "api", hz: 5000, durationMs: 1000 }));
    expect([hz.code, hz.rawMessage]).toEqual([Code.InvalidArgument, "hz: must be from 1 to 1000 samples per second (got 5000)"]);
    const long = await rejection(api.profileCpu({ serviceName: "api", durationMs: 400_000 }));
    expect([long.code, long.rawMessage]).toEqual([Code.InvalidArgument, "duration_ms: at most 5 minutes (got 400s)"]);
    const none = await rejection(api.profileCpu({ serviceName: "" }));
    expect(none.code).toBe(Code.InvalidArgument);
    const unknown = await rejection(api.profileCpu({ serviceName: "nope", durationMs: 1000 }));
    expect([unknown.code, unknown.rawMessage]).toEqual([Code.NotFound, 'unknown service "nope" (known: api)']);

    const { token } = await colonyApi(colony.url, project.localToken).createToken({ name: "viewer", scope: TokenScope.READ });
    const denied = await rejection(serviceApi(ProfileService, colony.url, token).profileCpu({ serviceName: "api", durationMs: 1000 }));
    expect(denied.code).toBe(Code.PermissionDenied);
    expect(denied.rawMessage).toMatch(/ProfileCpu needs an admin token; "viewer" has scope read/);
    // Nothing reached an agent, so nothing was audited as a profile.
    const rows = await colony.store.read((c) => all(c, "SELECT action FROM audit_log WHERE action LIKE 'profile.%'"));
    expect(rows).toEqual([]);
  });

  it("in the CLI: usage errors exit 2 before anything is asked", async () => {
    const env = { CORAL_HOME: project.home, CORAL_TOKEN: undefined, CORAL_COLONY_URL: undefined };
    for (const [args, message] of [
      [["--hz", "0"], /--hz <n>.*must be an integer from 1 to 1000/],
      [["--duration", "10m"], /--duration <time>.*must be from 1s to 5m/],
      [["-o", "profile.png"], /\.pb\.gz \(pprof\), \.svg \(flame graph\) or \.folded/],
      [["--json", "--folded"], /--json and --folded: pick one/],
    ] as const) {
      const res = await runCoral(["profile", "cpu", "api", ...args], { cwd: project.dir, env });
      expect(res.code, `${args.join(" ")}: ${res.stderr}`).toBe(2);
      expect(res.stderr).toMatch(message);
    }
    const unknown = await runCoral(["profile", "cpu", "nope", "--duration", "1s"], { cwd: project.dir, env });
    expect(unknown.code).toBe(2); // an unknown name is a usage error, as in every command
    expect(unknown.stderr).toContain('unknown service "nope" (known: api)');
  });
});
