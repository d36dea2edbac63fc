// The upgrade from a DuckDB agent store: a data folder with an agent.duckdb
// written in the earlier agent's schema (its outbox and live-debugging tables,
// made here with @duckdb/node-api) opens as an SQLite store that still holds
// every pending batch (order, attempts, errors, times) and every collector
// with its events; the old file is renamed aside, and nothing is imported twice.
import { copyFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { DuckDBInstance, DuckDBTimestampValue, blobValue } from "@duckdb/node-api";
import { describe, expect, it } from "vitest";
import { openAgentStore, type StorageLogger } from "./index.ts";
import { at, tempStores } from "./testing.ts";

// The earlier agent's tables, as its migrations 1-8 left them (agent/src/storage/migrations.ts before SQLite).
const oldSchema = `
CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP NOT NULL);
CREATE SEQUENCE outbox_seq START 1;
CREATE TABLE outbox (
  seq BIGINT PRIMARY KEY DEFAULT nextval('outbox_seq'),
  batch_id TEXT NOT NULL UNIQUE,
  subject TEXT NOT NULL,
  payload BLOB NOT NULL,
  created_at TIMESTAMP NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TIMESTAMP NOT NULL,
  last_error TEXT
);
CREATE TABLE uprobe_events (
  collector_id TEXT NOT NULL, seq BIGINT NOT NULL, timestamp TIMESTAMP NOT NULL, event_type TEXT NOT NULL,
  pid INTEGER NOT NULL, tid INTEGER NOT NULL, duration_ns BIGINT, args JSON, return_value TEXT, goroutine TEXT,
  PRIMARY KEY (collector_id, seq)
);
CREATE TABLE uprobe_collectors (
  collector_id TEXT PRIMARY KEY, label TEXT NOT NULL, function_name TEXT NOT NULL, duration_ms BIGINT NOT NULL,
  capture_args INTEGER NOT NULL, capture_return BOOLEAN NOT NULL, sample_rate INTEGER NOT NULL, max_events BIGINT NOT NULL,
  started_at TIMESTAMP NOT NULL, expires_at TIMESTAMP NOT NULL, binary_path TEXT NOT NULL, is_go BOOLEAN NOT NULL,
  pid INTEGER NOT NULL, ended_at TIMESTAMP, stop_reason TEXT, stop_detail TEXT
);
ALTER TABLE uprobe_collectors ADD COLUMN slow_threshold_ms INTEGER DEFAULT 100;
ALTER TABLE uprobe_events ADD COLUMN value TEXT;
ALTER TABLE uprobe_collectors ADD COLUMN kind TEXT DEFAULT 'function';
ALTER TABLE uprobe_collectors ADD COLUMN expression TEXT DEFAULT '';
ALTER TABLE uprobe_collectors ADD COLUMN condition TEXT DEFAULT '';
ALTER TABLE uprobe_collectors ADD COLUMN snapshot_count INTEGER DEFAULT 0;
`;

const tsv = (d: Date) => new DuckDBTimestampValue(BigInt(d.getTime()) * 1000n);

/** An agent.duckdb as the earlier agent left it: three pending batches (one retried), a running collector with two events. */
async function oldStore(file: string): Promise<void> {
  const instance = await DuckDBInstance.create(file);
  const c = await instance.connect();
  try {
    await c.run(oldSchema);
    const insert = "INSERT INTO outbox (batch_id, subject, payload, created_at, attempts, next_attempt_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7)";
    await c.run(insert, ["b1", "coral.c.telemetry.a", blobValue(new Uint8Array([1, 0, 255])), tsv(at(1)), 3, tsv(at(40)), "nats down"]);
    await c.run(insert, ["b2", "coral.c.telemetry.a", blobValue(new Uint8Array([2])), tsv(at(2)), 0, tsv(at(2)), null]);
    await c.run(insert, ["b3", "coral.c.events.a", blobValue(new Uint8Array(70_000).fill(3)), tsv(at(3)), 0, tsv(at(3)), null]);
    await c.run(
      `INSERT INTO uprobe_collectors (collector_id, label, function_name, duration_ms, capture_args, capture_return, sample_rate, max_events,
         started_at, expires_at, binary_path, is_go, pid, ended_at, stop_reason, stop_detail, slow_threshold_ms, kind, expression, condition, snapshot_count)
       VALUES ('c1', 'dbg-1', 'app.mjs:12', 600000, 0, false, 1, 100, $1, $2, '/usr/bin/node', false, 42, NULL, NULL, NULL, 250, 'logpoint', 'a + b', 'a > 1', 0)`,
      [tsv(at(0)), tsv(at(600))],
    );
    await c.run(
      `INSERT INTO uprobe_events (collector_id, seq, timestamp, event_type, pid, tid, duration_ns, args, return_value, goroutine, value)
       VALUES ('c1', 1, $1, 'log', 42, 42, NULL, NULL, NULL, NULL, '3'), ('c1', 2, $2, 'return', 42, 42, 1500, '["x"]', NULL, NULL, NULL)`,
      [tsv(at(5)), tsv(at(6))],
    );
  } finally {
    c.closeSync();
    instance.closeSync();
  }
}

describe("upgrading from the DuckDB store", () => {
  it("imports the pending outbox and the collectors, renames the old file aside, and never imports twice", async () => {
    await using t = await tempStores();
    const old = join(t.dir, "agent.duckdb");
    await oldStore(old);
    const logged: Record<string, unknown>[] = [];
    const logger: StorageLogger = (_level, _msg, fields) => void (fields && logged.push(fields));

    const store = await t.open("agent.sqlite", { upgradeFrom: old, logger });
    const pending = await store.peek(10);
    expect(pending.map((r) => ({ ...r, payload: r.payload.length }))).toEqual([
      { seq: expect.any(Number), batchId: "b1", subject: "coral.c.telemetry.a", payload: 3, createdAt: at(1), attempts: 3, nextAttemptAt: at(40), lastError: "nats down" },
      { seq: expect.any(Number), batchId: "b2", subject: "coral.c.telemetry.a", payload: 1, createdAt: at(2), attempts: 0, nextAttemptAt: at(2), lastError: null },
      { seq: expect.any(Number), batchId: "b3", subject: "coral.c.events.a", payload: 70_000, createdAt: at(3), attempts: 0, nextAttemptAt: at(3), lastError: null },
    ]);
    expect([...pending[0]!.payload]).toEqual([1, 0, 255]);
    expect(pending[2]!.payload.every((b) => b === 3)).toBe(true);
    expect(await store.pendingBytes()).toBe(70_004);
    const [collector] = await store.listUprobeCollectors(at(0));
    expect(collector).toMatchObject({ collectorId: "c1", kind: "logpoint", expression: "a + b", condition: "a > 1", slowThresholdMs: 250, pid: 42, endedAt: null, startedAt: at(0) });
    expect(await store.uprobeHistory("c1")).toEqual({ lastSeq: 2, count: 2, entries: 1, durationsNs: [1500] });
    expect((await store.queryUprobeEvents({ collectorId: "c1", limit: 10 })).rows.map((r) => [r.seq, r.value, r.args])).toEqual([
      [1, "3", undefined],
      [2, undefined, ["x"]],
    ]);
    expect(logged).toContainEqual(expect.objectContaining({ outbox: 3, uprobeCollectors: 1, uprobeEvents: 2, movedTo: `${old}.imported` }));
    expect(existsSync(old)).toBe(false);
    expect(existsSync(`${old}.imported`)).toBe(true);

    // The new store's own batches come after the imported ones.
    await store.enqueue({ batchId: "b4", subject: "coral.c.telemetry.a", payload: new Uint8Array([4]) });
    await store.ack("b2");
    await store.close();

    // The old file back in place (an open cut short between the import's commit and the rename):
    // it is only renamed, and b2, acked since, is not sent again.
    await copyFile(`${old}.imported`, old);
    const again = await t.open("agent.sqlite", { upgradeFrom: old, logger });
    expect((await again.peek(10)).map((r) => r.batchId)).toEqual(["b1", "b3", "b4"]);
    expect(logged.at(-1)).toMatchObject({ alreadyImported: true, outbox: 0 });
    expect(existsSync(old)).toBe(false);
  });

  it("opens normally when there is no old file, and refuses to open an old DuckDB file as the store", async () => {
    await using t = await tempStores();
    const store = await t.open("agent.sqlite", { upgradeFrom: join(t.dir, "agent.duckdb") });
    expect(await store.pendingCount()).toBe(0);
    await oldStore(join(t.dir, "old.duckdb"));
    await expect(openAgentStore(join(t.dir, "old.duckdb"))).rejects.toThrow(/not an SQLite file/);
  });
});
