// `coral query` against a real colony (DuckDB store, Connect API, auth, audit),
// through the built `coral` bin as a user runs it: a read token reads the data
// tables; writes, files, credentials and several statements are refused with a
// message and exit code 1, and every attempt is in the audit log.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { TelemetryBatchSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import type { RunningColony } from "@coral/colony";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";

let project: TestProject;
let colony: RunningColony;
let readToken: string;
const t0 = Date.parse("2026-06-01T12:00:00Z");

beforeAll(async () => {
  project = await createTestProject();
  colony = await project.start();
  readToken = (await colonyApi(colony.url, project.localToken).createToken({ name: "analyst", scope: TokenScope.READ, ttlSeconds: 3600n })).token;
  await colony.store.ingest([
    create(TelemetryBatchSchema, {
      batchId: "b1",
      agentId: "a1",
      serviceName: "api",
      metrics: [0, 1].map((m) => ({ metricName: "cpu_percent", interval: "1m", timestamp: timestampFromDate(new Date(t0 + m * 60_000)), mean: 10 + m, p99: 20, count: 60n })),
      events: [{ eventId: "e1", eventType: "restart", timestamp: timestampFromDate(new Date(t0)), detailsJson: '{"reason":"oom, then \\"killed\\""}' }],
    }),
  ]);
}, 120_000);

afterAll(async () => {
  await project?.[Symbol.asyncDispose]();
});

const coral = (...args: string[]) => runCoral(["query", ...args, "--colony-url", colony.url], { cwd: project.dir, env: { CORAL_TOKEN: readToken } });

describe("coral query against a colony", () => {
  it("prints a table, JSON with numbers as numbers, and CSV", async () => {
    const sql = "SELECT service_id, metric_name, mean, count FROM metric_summaries ORDER BY timestamp";
    const table = await coral(sql);
    expect(table.code).toBe(0);
    expect(table.stdout.split("\n").slice(0, 3)).toEqual(["service_id   metric_name   mean   count", "api          cpu_percent   10     60", "api          cpu_percent   11     60"]);
    expect(table.stdout).toMatch(/2 rows from colony in \d+ ms/);

    const json = await coral(sql, "--json");
    expect(JSON.parse(json.stdout)).toEqual([
      { service_id: "api", metric_name: "cpu_percent", mean: 10, count: 60 },
      { service_id: "api", metric_name: "cpu_percent", mean: 11, count: 60 },
    ]);

    const csv = await coral("SELECT event_type, CAST(details AS VARCHAR) AS details, correlation_group FROM events", "--csv");
    expect(csv.stdout).toBe('event_type,details,correlation_group\nrestart,"{""reason"":""oom, then \\""killed\\""""}",\n');
  });

  it("says when the row cap cut, on stderr for scripts", async () => {
    const r = await coral("SELECT * FROM range(20)", "--max-rows", "5", "--json");
    expect(JSON.parse(r.stdout)).toHaveLength(5);
    expect(r.stderr).toContain("coral query: result truncated (--max-rows 5)");
  });

  it("--schema lists the data tables and never the credentials", async () => {
    const r = await coral("--schema", "--json");
    const schema = JSON.parse(r.stdout) as { source: string; engine: string; tables: Array<{ name: string; columns: Array<{ name: string }> }> };
    expect(schema).toMatchObject({ source: "colony", engine: "duckdb" });
    const names = schema.tables.map((t) => t.name);
    expect(names).toEqual(expect.arrayContaining(["metric_summaries", "events", "audit_log"]));
    for (const secret of ["api_tokens", "invitations", "agent_identities", "actor_snapshots"]) expect(names).not.toContain(secret);
  });

  it.each([
    ["DROP TABLE events", /read-only: only one SELECT statement runs/],
    ["INSERT INTO events SELECT * FROM events", /read-only/],
    ["ATTACH '/tmp/x.duckdb'", /read-only/],
    ["COPY events TO '/tmp/events.csv'", /read-only/],
    ["INSTALL httpfs", /read-only/],
    ["PRAGMA disable_checkpoint_on_shutdown", /read-only/],
    ["SELECT 1; SELECT 2", /exactly one statement/],
    ["SELECT name, token_hash FROM api_tokens", /cannot read "api_tokens"/],
    ["SELECT * FROM read_text('/etc/passwd')", /table functions such as read_text/],
    ["SELECT nope FROM events", /Binder Error/],
  ])("refuses %s with exit code 1 and audits it", async (sql, message) => {
    const r = await coral(sql);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).toBe("");
    const audit = await colony.store.listAudit(200);
    expect(audit.find((a) => a.action === "query" && a.details.sql === sql)).toMatchObject({ actor: "analyst", target: "colony", details: { outcome: "refused" } });
  });

  it("audits a query that ran, with its row count", async () => {
    const sql = "SELECT count(*) AS n FROM events";
    expect(JSON.parse((await coral(sql, "--json")).stdout)).toEqual([{ n: 1 }]);
    const row = (await colony.store.listAudit(200)).find((a) => a.action === "query" && a.details.sql === sql);
    expect(row).toMatchObject({ actor: "analyst", target: "colony", details: { outcome: "ok", rows: 1, truncated: false } });
  });

  it("needs a token, and checks its flags before asking", async () => {
    // Outside the project (no local token) and without CORAL_TOKEN.
    const noToken = await runCoral(["query", "SELECT 1", "--colony-url", colony.url], { cwd: "/", env: { CORAL_TOKEN: undefined } });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/token/i);
    const both = await coral("SELECT 1", "--json", "--csv");
    expect(both).toMatchObject({ code: 2 });
    expect(both.stderr).toContain("--json and --csv: choose one");
    const timeout = await coral("SELECT 1", "--timeout", "5m");
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toContain("must be from 1s to 60s");
    const missing = await coral();
    expect(missing.code).toBe(2);
  });
});
