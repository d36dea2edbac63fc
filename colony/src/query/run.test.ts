import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TelemetryBatchSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openStore, type ColonyStore } from "../store/index.ts";
import { QueryRefusedError } from "./check-sql.ts";
import { colonyQuerySchema, QueryTimeoutError, runColonyQuery } from "./run.ts";

let dir: string;
let store: ColonyStore;
const t0 = Date.parse("2026-06-01T12:00:00Z");

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "colony-query-"));
  store = await openStore(join(dir, "colony.duckdb"));
  await store.ingest([
    create(TelemetryBatchSchema, {
      batchId: "b1",
      agentId: "a1",
      serviceName: "api",
      metrics: [0, 1, 2].map((m) => ({ metricName: "cpu", interval: "1m", timestamp: timestampFromDate(new Date(t0 + m * 60_000)), mean: 10 + m, count: 60n })),
      events: [{ eventId: "e1", eventType: "restart", timestamp: timestampFromDate(new Date(t0)), detailsJson: '{"why":"oom"}' }],
    }),
  ]);
  await store.createToken({ name: "ci", tokenHash: "f".repeat(64), scope: "admin", createdAt: new Date(t0), lastUsedAt: null, revokedAt: null });
});
afterAll(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const query = (sql: string, bounds: { maxRows?: number; timeoutMs?: number; maxBytes?: number } = {}) =>
  store.adHocRead((c) => runColonyQuery(c, sql, { maxRows: bounds.maxRows ?? 1000, timeoutMs: bounds.timeoutMs ?? 10_000, maxBytes: bounds.maxBytes }));
const count = async (table: string) => Number((await store.read((c) => c.runAndReadAll(`SELECT count(*) FROM ${table}`))).getRows()[0]?.[0]);

describe("coral query on the colony", () => {
  it("returns columns with their types and every value as text, NULL as null", async () => {
    const r = await query("SELECT service_id, metric_name, mean, count, labels, timestamp FROM metric_summaries ORDER BY timestamp");
    expect(r.columns).toEqual([
      { name: "service_id", type: "VARCHAR" },
      { name: "metric_name", type: "VARCHAR" },
      { name: "mean", type: "DOUBLE" },
      { name: "count", type: "BIGINT" },
      { name: "labels", type: "VARCHAR" },
      { name: "timestamp", type: "TIMESTAMP" },
    ]);
    expect(r.rows).toEqual([
      ["api", "cpu", "10", "60", null, "2026-06-01 12:00:00"],
      ["api", "cpu", "11", "60", null, "2026-06-01 12:01:00"],
      ["api", "cpu", "12", "60", null, "2026-06-01 12:02:00"],
    ]);
    expect(r.truncated).toBe(false);
  });

  it("reads CTEs, joins, subqueries and the database's qualified names of queryable tables", async () => {
    const r = await query(`WITH m AS (SELECT service_id, avg(mean) AS avg_mean FROM main.metric_summaries GROUP BY ALL)
      SELECT m.service_id, m.avg_mean, (SELECT count(*) FROM colony.main.events e WHERE e.service_id = m.service_id) AS n FROM m, range(1)`);
    expect(r.rows).toEqual([["api", "11", "1"]]);
  });

  it("caps rows and bytes and says which cap cut", async () => {
    expect(await query("SELECT * FROM range(50000)", { maxRows: 10 })).toMatchObject({ truncated: true, truncatedBy: "rows", rows: Array.from({ length: 10 }, (_, i) => [String(i)]) });
    const big = await query("SELECT repeat('x', 1000) FROM range(100)", { maxBytes: 10_500 });
    expect(big).toMatchObject({ truncated: true, truncatedBy: "bytes" });
    expect(big.rows).toHaveLength(10);
  });

  it.each([
    ["INSERT INTO events (event_id, agent_id, service_id, timestamp, event_type, ingested_at) VALUES ('x','a','s',now(),'t',now())", /read-only/],
    ["DELETE FROM metric_summaries", /read-only/],
    ["UPDATE metric_summaries SET mean = 0", /read-only/],
    ["DROP TABLE metric_summaries", /read-only/],
    ["CREATE TABLE x AS SELECT 1", /read-only/],
    ["ATTACH '/tmp/other.duckdb' AS other", /read-only/],
    ["COPY metric_summaries TO '/tmp/out.csv'", /read-only/],
    ["INSTALL httpfs", /read-only/],
    ["PRAGMA enable_profiling", /read-only/],
    ["SET memory_limit = '1TB'", /read-only/],
    ["SELECT 1; DELETE FROM metric_summaries", /read-only/],
    ["SELECT 1; SELECT 2", /exactly one statement/],
    ["SELECT * FROM api_tokens", /cannot read "api_tokens"/],
    ["SELECT token_hash FROM main.api_tokens", /cannot read "main.api_tokens"/],
    ["SELECT (SELECT max(key_hex) FROM invitations)", /cannot read "invitations"/],
    ["SELECT * FROM information_schema.tables", /cannot read "information_schema.tables"/],
    ["SELECT * FROM read_csv('/etc/passwd')", /table functions such as read_csv/],
    ["SELECT * FROM query('SELECT * FROM api_tokens')", /table functions such as query/],
    ["SELECT * FROM '/etc/passwd'", /cannot read "\/etc\/passwd"/],
    ["WITH api_tokens AS (SELECT * FROM api_tokens) SELECT * FROM api_tokens", /CTE may not be named "api_tokens"/],
    ["SELECT * FROM (WITH x AS (SELECT 1) SELECT * FROM x), api_tokens", /cannot read "api_tokens"/],
    ["DESCRIBE api_tokens", /DESCRIBE|read-only/],
    ["SUMMARIZE api_tokens", /table functions|DESCRIBE|read-only|cannot read/],
    ["SELEC 1", /does not parse/],
  ])("refuses %s", async (sql, message) => {
    const before = [await count("metric_summaries"), await count("api_tokens")];
    await expect(query(sql)).rejects.toSatisfy((err: Error) => err instanceof QueryRefusedError && message.test(err.message));
    expect([await count("metric_summaries"), await count("api_tokens")]).toEqual(before);
  });

  it("has no file system: read_text is refused by the database even past the check", async () => {
    await expect(store.adHocRead((c) => c.run("SELECT * FROM read_text('/etc/hostname')"))).rejects.toThrow(/disabled by configuration/);
  });

  it("stops a query that runs too long, and the next one runs", async () => {
    const t = Date.now();
    await expect(query("SELECT count(*) FROM range(10000000000) a, range(10) b WHERE a.range % 7 = b.range", { timeoutMs: 300 })).rejects.toBeInstanceOf(QueryTimeoutError);
    expect(Date.now() - t).toBeLessThan(20_000);
    expect((await query("SELECT 42")).rows).toEqual([["42"]]);
  });

  it("lists the queryable tables and their columns, and no credentials", async () => {
    const tables = await store.adHocRead((c) => colonyQuerySchema(c));
    const names = tables.map((t) => t.name);
    expect(names).toContain("metric_summaries");
    expect(names).not.toContain("api_tokens");
    expect(names).not.toContain("invitations");
    expect(tables.find((t) => t.name === "events")?.columns.slice(0, 2)).toEqual([
      { name: "event_id", type: "VARCHAR" },
      { name: "agent_id", type: "VARCHAR" },
    ]);
  });
});

describe("coral query under the colony's memory limit", () => {
  it("a query that needs more memory than the database may use fails cleanly, and the next one runs", async () => {
    const small = await openStore(join(dir, "small.duckdb"), { memoryLimit: "64MB" });
    try {
      const run = (sql: string) => small.adHocRead((c) => runColonyQuery(c, sql, { maxRows: 10, timeoutMs: 30_000 }));
      // A sort bigger than the limit spills to disk and finishes.
      expect((await run("SELECT count(*) FROM (SELECT md5(range::VARCHAR) AS h FROM range(2000000) ORDER BY h)")).rows).toEqual([["2000000"]]);
      // One value bigger than the limit cannot spill: out of memory, said as such.
      await expect(run("SELECT length(list(md5(range::VARCHAR))) FROM range(5000000)")).rejects.toThrow(/Out of Memory Error/);
      expect((await run("SELECT 1")).rows).toEqual([["1"]]);
    } finally {
      await small.close();
    }
  });
});
