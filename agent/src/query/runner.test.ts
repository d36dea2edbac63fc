// Read-only SQL over a real agent store while the agent's own connection has
// it open and writes: values and types, the row and byte caps, every kind of
// statement that would change something refused (and nothing changed), the
// timeout that stops an endless query (with the agent's event loop ticking
// meanwhile), a reader that runs out of memory, and the schema.
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { pollUntil } from "@coral/common/async";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openAgentStore, type AgentStore } from "../storage/index.ts";
import { QueryError, QueryRunner, type QueryErrorKind } from "./index.ts";

const endless = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM r) SELECT count(*) FROM r";
const t0 = new Date("2024-05-01T10:00:00.000Z");

const repoRoot = fileURLToPath(new URL("../../..", import.meta.url));

/** A process's parent pid and state from /proc, or undefined once it is gone. */
function procStat(pid: number): { ppid: number; state: string } | undefined {
  try {
    // pid (comm) state ppid …: comm may hold spaces, so read after its last ")".
    const [state, ppid] = readFileSync(`/proc/${pid}/stat`, "utf8").split(")").pop()!.trim().split(" ");
    return { state: state!, ppid: Number(ppid) };
  } catch {
    return undefined;
  }
}

/** The reader processes (node -e with the reader's program) whose parent is `parent`. */
const readersOf = (parent: number) =>
  readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => procStat(pid)?.ppid === parent && readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("better-sqlite3"));

async function failure(p: Promise<unknown>): Promise<QueryError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof QueryError)) throw new Error(`expected a QueryError, got ${String(err)}`);
  return err;
}

describe("QueryRunner over the agent's store", () => {
  let dir: string;
  let store: AgentStore;
  let runner: QueryRunner;
  const run = (sql: string, maxRows = 1000, timeoutMs = 10_000) => runner.query({ sql, maxRows, timeoutMs });
  const eventCount = async () => (await store.queryEvents({ limit: 10_000 })).rows.length;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "coral-query-"));
    store = await openAgentStore(join(dir, "agent.sqlite"));
    for (let i = 0; i < 30; i++)
      await store.recordEvent({ eventId: `e${String(i).padStart(2, "0")}`, timestamp: new Date(t0.getTime() + i * 1000), eventType: i % 2 ? "stop" : "start", details: { i } });
    await store.recordEvent({ eventId: "with-process", timestamp: t0, eventType: "deploy", processName: "node", details: null });
    runner = new QueryRunner({ storePath: store.path });
  });

  afterAll(async () => {
    await runner?.close();
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("returns columns with their declared types, values as text and NULL as null", async () => {
    const r = await run("SELECT event_id, timestamp, event_type, process_name FROM events WHERE event_id IN ('e00', 'with-process') ORDER BY event_id");
    expect(r.columns).toEqual([
      { name: "event_id", type: "TEXT" },
      { name: "timestamp", type: "INTEGER" },
      { name: "event_type", type: "TEXT" },
      { name: "process_name", type: "TEXT" },
    ]);
    expect(r.rows).toEqual([
      ["e00", String(t0.getTime()), "start", null],
      ["with-process", String(t0.getTime()), "deploy", "node"],
    ]);
    expect(r).toMatchObject({ truncated: false, truncatedBy: "" });
  });

  it("gives expressions the storage class of their first value: exact big integers, reals, BLOBs as \\x hex", async () => {
    const r = await run("SELECT 9007199254740993 AS big, 1.5 AS real, x'00ff10' AS blob, 'hé' AS text, NULL AS empty, -0.25 * 2 AS neg");
    expect(r.columns).toEqual([
      { name: "big", type: "INTEGER" },
      { name: "real", type: "REAL" },
      { name: "blob", type: "BLOB" },
      { name: "text", type: "TEXT" },
      { name: "empty", type: "" },
      { name: "neg", type: "REAL" },
    ]);
    expect(r.rows).toEqual([["9007199254740993", "1.5", "\\x00ff10", "hé", null, "-0.5"]]);
  });

  it("sees what the agent writes while it keeps the store open", async () => {
    const count = async () => (await run("SELECT count(*) FROM events WHERE event_type = 'late'")).rows[0]![0];
    expect(await count()).toBe("0");
    await store.recordEvent({ eventId: "late-1", timestamp: t0, eventType: "late" });
    expect(await count()).toBe("1");
    await store.recordEvent({ eventId: "late-2", timestamp: t0, eventType: "late" });
    expect(await count()).toBe("2");
  });

  it("cuts the result at max_rows (truncated by rows), reading only one row more", async () => {
    const r = await run("SELECT event_id FROM events WHERE event_id LIKE 'e%' ORDER BY event_id", 10);
    expect(r.rows.map((row) => row[0])).toEqual(Array.from({ length: 10 }, (_, i) => `e0${i}`));
    expect(r).toMatchObject({ truncated: true, truncatedBy: "rows" });
    const exact = await run("SELECT event_id FROM events WHERE event_id LIKE 'e%'", 30);
    expect(exact.rows).toHaveLength(30);
    expect(exact).toMatchObject({ truncated: false, truncatedBy: "" });
  });

  it("cuts the result at the byte cap (truncated by bytes)", async () => {
    await using small = new QueryRunner({ storePath: store.path, maxBytes: 1_000 });
    // 300 bytes a row: three fit in 1,000.
    const r = await small.query({ sql: "SELECT printf('%.*c', 300, 'x') FROM events", maxRows: 1000, timeoutMs: 10_000 });
    expect(r.rows).toHaveLength(3);
    expect(r.rows[0]![0]).toHaveLength(300);
    expect(r).toMatchObject({ truncated: true, truncatedBy: "bytes" });
  });

  const refused: [string, string][] = [
    ["INSERT", "INSERT INTO events (event_id, timestamp, event_type) VALUES ('x', 0, 'x')"],
    ["UPDATE", "UPDATE events SET event_type = 'changed'"],
    ["DELETE", "DELETE FROM events"],
    ["DROP TABLE", "DROP TABLE events"],
    ["CREATE TABLE", "CREATE TABLE sneaky (a)"],
    ["ATTACH", "ATTACH DATABASE '{dir}/attached.sqlite' AS other"],
    ["PRAGMA query_only = 0", "PRAGMA query_only = 0"],
    ["PRAGMA journal_mode = delete", "PRAGMA journal_mode = delete"],
    ["PRAGMA behind a comment and EXPLAIN", "/* x */ ; EXPLAIN QUERY PLAN PRAGMA locking_mode = EXCLUSIVE"],
    ["two statements", "SELECT 1; SELECT 2"],
    ["a write after a read", "SELECT 1; DELETE FROM events"],
    ["VACUUM INTO", "VACUUM INTO '{dir}/copy.sqlite'"],
    ["INSERT … RETURNING", "INSERT INTO events (event_id, timestamp, event_type) VALUES ('y', 0, 'y') RETURNING event_id"],
    ["BEGIN IMMEDIATE", "BEGIN IMMEDIATE"],
  ];

  it.each(refused)("refuses %s, saying so, and nothing changes", async (_, template) => {
    const sql = template.replaceAll("{dir}", dir);
    const tables = async () => (await run("SELECT name FROM sqlite_schema ORDER BY name")).rows.map((r) => r[0]);
    const before = { events: await eventCount(), tables: await tables() };
    const err = await failure(run(sql));
    expect(err.kind).toBe("refused");
    expect(err.message).toMatch(/^coral query is read-only: .+ \(only SELECT-like statements run\)$/);
    expect({ events: await eventCount(), tables: await tables() }).toEqual(before);
    expect(existsSync(join(dir, "attached.sqlite"))).toBe(false);
    expect(existsSync(join(dir, "copy.sqlite"))).toBe(false);
    // The reader still answers, read-only as before.
    expect((await run("SELECT count(*) FROM events")).rows).toEqual([[String(before.events)]]);
  });

  it.each<[string, QueryErrorKind, RegExp]>([
    ["SELECT * FROM no_such_table", "invalid", /no such table: no_such_table/],
    ["SELEC 1", "invalid", /syntax error/],
    ["  -- only a comment", "invalid", /holds no statement/],
  ])("answers %j with the error kind %s", async (sql, kind, message) => {
    const err = await failure(run(sql));
    expect(err.kind).toBe(kind);
    expect(err.message).toMatch(message);
  });

  it("stops a query that never ends at its timeout, keeps the event loop ticking meanwhile, and answers the next query", { timeout: 60_000 }, async () => {
    let last = Date.now();
    let longestGap = 0;
    let ticks = 0;
    const ticker = setInterval(() => {
      const now = Date.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
      ticks++;
    }, 10);
    const started = Date.now();
    try {
      const err = await failure(run(endless, 10, 1_500));
      expect(err.kind).toBe("timeout");
      expect(err.message).toMatch(/ran past its 1500 ms timeout/);
    } finally {
      clearInterval(ticker);
    }
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(ticks).toBeGreaterThan(5);
    expect(longestGap).toBeLessThan(1_000);
    expect((await run("SELECT 41 + 1")).rows).toEqual([["42"]]);
  });

  it("lets a waiting query run after the one ahead of it times out", { timeout: 60_000 }, async () => {
    const stuck = failure(run(endless, 10, 500));
    const waiting = run("SELECT 'after'", 10, 30_000);
    expect((await stuck).kind).toBe("timeout");
    expect((await waiting).rows).toEqual([["after"]]);
  });

  it("stops a query whose caller goes away", { timeout: 60_000 }, async () => {
    const abort = new AbortController();
    const p = failure(runner.query({ sql: endless, maxRows: 10, timeoutMs: 30_000, signal: abort.signal }));
    abort.abort();
    expect((await p).kind).toBe("cancelled");
    expect((await run("SELECT 1")).rows).toEqual([["1"]]);
  });

  it("answers with a limit error when the reader runs out of memory, and the next query still runs", { timeout: 60_000 }, async () => {
    await using tight = new QueryRunner({ storePath: store.path, heapMb: 16, maxBytes: 1024 * 1024 * 1024 });
    const sql = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 40) SELECT printf('%.*c', 2000000, 'x') FROM r";
    const err = await failure(tight.query({ sql, maxRows: 1000, timeoutMs: 30_000 }));
    expect(err.kind).toBe("limit");
    expect(err.message).toMatch(/more memory than its reader may use \(16 MiB\)/);
    expect((await tight.query({ sql: "SELECT 'alive'", maxRows: 1, timeoutMs: 30_000 })).rows).toEqual([["alive"]]);
  });

  it("ends the reader when the agent is killed in the middle of an endless query", { timeout: 60_000 }, async () => {
    const script = join(dir, "agent.mjs");
    await writeFile(
      script,
      `const { QueryRunner } = await import(${JSON.stringify(pathToFileURL(join(repoRoot, "agent/src/query/index.ts")).href)});
       const runner = new QueryRunner({ storePath: ${JSON.stringify(store.path)} });
       runner.query({ sql: ${JSON.stringify(endless)}, maxRows: 1, timeoutMs: 60000 }).catch(() => {});
       setInterval(() => {}, 1000);`,
    );
    const agent = spawn(process.execPath, ["--conditions=coral-source", "--import", "tsx", script], { cwd: repoRoot, stdio: "ignore" });
    try {
      const reader = await pollUntil(() => readersOf(agent.pid!)[0], { what: "the reader process", timeoutMs: 20_000, intervalMs: 50 });
      // Inside the endless statement: running, not waiting for a request.
      await pollUntil(() => (procStat(reader)?.state === "R" ? true : undefined), { what: `reader ${reader} to run the query`, timeoutMs: 20_000, intervalMs: 20 });
      const exited = new Promise((r) => agent.once("exit", r));
      agent.kill("SIGKILL");
      await exited;
      await pollUntil(() => (["Z", undefined].includes(procStat(reader)?.state) ? true : undefined), { what: `reader ${reader} to end`, timeoutMs: 15_000, intervalMs: 100 });
    } finally {
      agent.kill("SIGKILL");
    }
  });

  it("lists the store's tables and their columns, not SQLite's own", async () => {
    const tables = await runner.schema();
    const names = tables.map((t) => t.name);
    expect(names).toContain("events");
    expect(names).toContain("metrics");
    expect(names.filter((n) => n.startsWith("sqlite_"))).toEqual([]);
    expect(tables.find((t) => t.name === "events")!.columns).toEqual([
      { name: "event_id", type: "TEXT" },
      { name: "timestamp", type: "INTEGER" },
      { name: "event_type", type: "TEXT" },
      { name: "process_name", type: "TEXT" },
      { name: "details", type: "TEXT" },
    ]);
  });

  it("refuses queries once closed", async () => {
    const closed = new QueryRunner({ storePath: store.path });
    expect((await closed.query({ sql: "SELECT 1", maxRows: 1, timeoutMs: 10_000 })).rows).toEqual([["1"]]);
    await closed.close();
    expect((await failure(closed.query({ sql: "SELECT 1", maxRows: 1, timeoutMs: 10_000 }))).kind).toBe("unavailable");
  });
});
