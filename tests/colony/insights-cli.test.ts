// `coral insights` and the status line against a real colony (DuckDB store,
// Connect API): the scripted incident is written into the colony's store and
// judged by its own insights engine, then read through the CLI's commands.
import { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { insightsCommand, formatStatus } from "@coral/cli/testing";
import { startColony, type RunningColony } from "@coral/colony";
import { leakingFrontend, runInsights, timeline } from "@coral/colony/testing";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createTestProject, quietLogger, serviceApi, type TestProject } from "../helpers/colony.ts";

let project: TestProject;
let colony: RunningColony;
let server: { url: string };
let localToken: string;

beforeEach(async () => {
  project = await createTestProject();
  // The colony's own insights loop stays out of the way: the test runs the engine.
  colony = await startColony({ projectDir: project.dir, logger: quietLogger(), apiPort: 0, natsPort: 0, insightsIntervalMs: 3_600_000 });
  server = { url: colony.url };
  localToken = project.localToken;
});

afterEach(async () => {
  await colony.close();
  await project[Symbol.asyncDispose]();
});

/** The scripted incident, ending now (the API judges expiry by the real clock). */
async function incidentNow(): Promise<void> {
  const at = timeline(new Date(Date.now() - 126 * 60_000));
  await leakingFrontend(colony.store, at);
  await runInsights(colony.store, at(126));
}

/** Runs `coral insights …` (the command object) and returns what it printed. */
async function coral(...args: string[]): Promise<string> {
  const out: string[] = [];
  const log = vi.spyOn(console, "log").mockImplementation((...parts: unknown[]) => void out.push(parts.join(" ")));
  try {
    const cmd = insightsCommand().exitOverride();
    cmd.commands.forEach((c) => c.exitOverride());
    await cmd.parseAsync(args, { from: "user" });
  } finally {
    log.mockRestore();
  }
  return out.join("\n");
}

describe("coral insights against a colony", () => {
  it("the status view counts active insights only when there are some", async () => {
    const client = serviceApi(ColonyService, colony.url, localToken);
    expect(formatStatus(await client.getStatus({}), { color: false })).not.toContain("Insights:");
    await incidentNow();
    const status = await client.getStatus({});
    expect(status.insightCount).toBe(5);
    expect(formatStatus(status, { color: false }).split("\n").slice(-2)).toEqual(["", "Insights: 5 active (view details: coral insights)"]);
  });

  it("coral insights prints the cards and dismisses by id", async () => {
    const remote = ["--colony-url", server.url, "--token", localToken];
    expect(await coral(...remote)).toMatch(/^INSIGHTS \(0 active\)\n━+\n\nNo active insights\./);
    await incidentNow();

    const text = await coral(...remote);
    const lines = text.split("\n");
    expect(lines[0]).toBe("INSIGHTS (5 active)");
    expect(lines[1]).toMatch(/^━{56}$/);
    expect(lines.slice(3, 10)).toEqual([
      "⚠️  ANOMALY DETECTED                       [High Priority]",
      "─".repeat(56),
      "Created: just now",
      "Service: frontend",
      "Issue: frontend memory 3.0× its usual (100 MB → 300 MB)",
      "",
      "frontend's memory averaged 300 MB over the last 5 minutes, 3.0× its 1h baseline of 100 MB.",
    ]);
    expect(text).toContain("Evidence:\n  - memory_bytes mean 300 MB over the last 5 min (5 samples, peak 340 MB)");
    expect(text).toContain("⚠️  RESTART LOOP");
    expect(text).toContain("Issue: frontend has restarted 3× in 15 min - possible memory leak");
    expect(text).toContain("⚠️  DEGRADED AFTER DEPLOY");
    expect(text).toContain("  → Roll back frontend to 1.9.1");
    expect(text).toContain("ℹ️  CONNECTION CHANGE");
    expect(text).toContain("Service: frontend (also affects legacy)");
    const ids = [...text.matchAll(/^Dismiss: coral insights dismiss (\d+)$/gm)].map((m) => m[1]!);
    expect(ids).toHaveLength(5);

    const json = JSON.parse(await coral(...remote, "--json")) as { insights: Array<{ id: string; title: string }> };
    expect(json.insights.map((i) => i.id)).toEqual(ids);

    // Remote options before or after "dismiss".
    expect(await coral(...remote, "dismiss", ids[0]!)).toBe(
      `✓ Dismissed insight ${ids[0]}: frontend memory 3.0× its usual (100 MB → 300 MB)\n  It will not be raised again while its condition lasts.`,
    );
    expect(JSON.parse(await coral("dismiss", `insight-${ids[1]}`, ...remote, "--json"))).toMatchObject({ insight: { id: ids[1], status: "dismissed" } });
    expect((await coral(...remote)).split("\n")[0]).toBe("INSIGHTS (3 active)");
    const all = await coral(...remote, "--all");
    expect(all.split("\n")[0]).toBe("INSIGHTS (3 active, 2 dismissed)");
    expect(all).toContain("Status: dismissed");

    await expect(coral(...remote, "dismiss", "999999")).rejects.toThrow(/no insight with id 999999/);
    await expect(coral(...remote, "dismiss", "abc")).rejects.toThrow(/must be an insight id/);
  });
});
