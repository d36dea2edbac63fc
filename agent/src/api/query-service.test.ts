// AgentQueryService through the agent's API, signed as its colony signs: rows
// and NULL cells, the schema, and the Connect code of each kind of refusal.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { generateIdentityKey } from "@coral/proto";
import { AgentQueryService } from "@coral/proto/gen/coral/agent/v1/query_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyClient } from "../profile/testing.ts";
import { openAgentStore, type AgentStore } from "../storage/index.ts";
import { parseQueryRequest } from "./query-service.ts";
import { startAgentApi, type AgentApiServer } from "./server.ts";

async function codeOf(p: Promise<unknown>): Promise<{ code: Code; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = ConnectError.from(err);
    return { code: e.code, message: e.rawMessage };
  }
  throw new Error("expected the call to fail");
}

describe("parseQueryRequest", () => {
  it.each([
    [{ sql: "SELECT 1", maxRows: 0, timeoutMs: 0 }, { sql: "SELECT 1", maxRows: 1000, timeoutMs: 10_000 }],
    [{ sql: "SELECT 1", maxRows: 1, timeoutMs: 1 }, { sql: "SELECT 1", maxRows: 1, timeoutMs: 1 }],
    [{ sql: "SELECT 1", maxRows: 10_000, timeoutMs: 60_000 }, { sql: "SELECT 1", maxRows: 10_000, timeoutMs: 60_000 }],
  ])("%j → %j", (req, parsed) => {
    expect(parseQueryRequest(req)).toEqual(parsed);
  });

  it.each([
    ["empty SQL", { sql: "", maxRows: 0, timeoutMs: 0 }, /^sql: required/],
    ["blank SQL", { sql: " \n\t", maxRows: 0, timeoutMs: 0 }, /^sql: required/],
    ["long SQL", { sql: `SELECT '${"x".repeat(100_000)}'`, maxRows: 0, timeoutMs: 0 }, /^sql: 100009 characters, over the limit of 100000/],
    ["too many rows", { sql: "SELECT 1", maxRows: 10_001, timeoutMs: 0 }, /^max_rows: must be 1\.\.10000/],
    ["too long a timeout", { sql: "SELECT 1", maxRows: 0, timeoutMs: 60_001 }, /^timeout_ms: must be 1\.\.60000/],
  ])("refuses %s", (_, req, error) => {
    const parsed = parseQueryRequest(req);
    expect("error" in parsed && parsed.error).toMatch(error);
  });
});

describe("AgentQueryService through the agent API", () => {
  let dir: string;
  let store: AgentStore;
  let api: AgentApiServer;
  let client: Client<typeof AgentQueryService>;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "coral-query-api-"));
    store = await openAgentStore(join(dir, "agent.sqlite"), { writeBufferMs: 60_000 });
    const key = await generateIdentityKey();
    api = await startAgentApi({ store, agentId: "checkout-abc123", colonyPublicKey: () => key.publicKey, query: { serviceName: "checkout" } });
    client = colonyClient(AgentQueryService, api.url, "checkout-abc123", key);
    await store.recordEvent({ eventId: "e1", timestamp: new Date(1_000), eventType: "start" });
  });

  afterAll(async () => {
    await api?.close();
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("answers rows as text cells, NULL unset, with the engine and no truncation", async () => {
    const res = await client.query({ sql: "SELECT event_id, timestamp, process_name FROM events", serviceName: "checkout" });
    expect(res.columns.map((c) => [c.name, c.type])).toEqual([
      ["event_id", "TEXT"],
      ["timestamp", "INTEGER"],
      ["process_name", "TEXT"],
    ]);
    expect(res.rows.map((r) => r.cells.map((c) => c.text))).toEqual([["e1", "1000", undefined]]);
    expect(res.rows[0]!.cells[2]!.text).toBeUndefined();
    expect(res).toMatchObject({ truncated: false, truncatedBy: "", engine: "sqlite" });
  });

  it("sees samples the store still buffers (it flushes first)", async () => {
    await store.recordMetrics([{ name: "buffered_total", value: 3, timestamp: new Date(2_000), labels: {} }]);
    const res = await client.query({ sql: "SELECT value FROM metrics WHERE metric_name = 'buffered_total'" });
    expect(res.rows.map((r) => r.cells[0]!.text)).toEqual(["3"]);
  });

  it("truncates at max_rows", async () => {
    const res = await client.query({ sql: "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 50) SELECT i FROM r", maxRows: 5 });
    expect(res.rows).toHaveLength(5);
    expect(res).toMatchObject({ truncated: true, truncatedBy: "rows" });
  });

  it("lists the tables and their columns", async () => {
    const res = await client.getQuerySchema({});
    expect(res.engine).toBe("sqlite");
    expect(res.tables.find((t) => t.name === "events")?.columns.map((c) => c.name)).toEqual(["event_id", "timestamp", "event_type", "process_name", "details"]);
  });

  it.each([
    ["empty SQL", { sql: "" }, Code.InvalidArgument, /^sql: required/],
    ["SQL over 100,000 characters", { sql: `SELECT '${"x".repeat(100_000)}'` }, Code.InvalidArgument, /^sql: .* over the limit of 100000/],
    ["max_rows over 10000", { sql: "SELECT 1", maxRows: 10_001 }, Code.InvalidArgument, /^max_rows: /],
    ["timeout_ms over 60000", { sql: "SELECT 1", timeoutMs: 60_001 }, Code.InvalidArgument, /^timeout_ms: /],
    ["a write", { sql: "DELETE FROM events" }, Code.InvalidArgument, /^coral query is read-only: /],
    ["a PRAGMA", { sql: "PRAGMA query_only = 0" }, Code.InvalidArgument, /^coral query is read-only: PRAGMA/],
    ["two statements", { sql: "SELECT 1; SELECT 2" }, Code.InvalidArgument, /^coral query is read-only: .*more than one statement/],
    ["an unknown table", { sql: "SELECT * FROM nope" }, Code.InvalidArgument, /no such table: nope/],
    ["another service", { sql: "SELECT 1", serviceName: "payments" }, Code.NotFound, /observes checkout, not payments/],
    [
      "a query past its timeout",
      { sql: "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r) SELECT count(*) FROM r", timeoutMs: 300 },
      Code.DeadlineExceeded,
      /ran past its 300 ms timeout/,
    ],
  ])("answers %s with its code", { timeout: 30_000 }, async (_, req, code, message) => {
    const err = await codeOf(client.query(req));
    expect(err.code).toBe(code);
    expect(err.message).toMatch(message);
    expect((await client.query({ sql: "SELECT count(*) FROM events" })).rows[0]!.cells[0]!.text).toBe("1");
  });
});
