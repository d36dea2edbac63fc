import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TelemetryBatchSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { deadLetterEventType, listDeadLetters, openStore, readIngestHealth, recordDeadLetters, type ColonyStore, type DeadLetterInput } from "./index.ts";

let dir: string;
let store: ColonyStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "colony-dead-letter-"));
  store = await openStore(join(dir, "colony.duckdb"));
});

afterEach(async () => {
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

const t0 = new Date("2026-06-01T12:00:00Z");

function letter(n: number, fields: Partial<DeadLetterInput> = {}): DeadLetterInput {
  return {
    key: `${n}-abc`,
    at: new Date(t0.getTime() + n * 1000),
    agentId: "agent-1",
    subject: "coral.c.agent.agent-1.telemetry",
    batchId: `b-${n}`,
    reason: `reason ${n}`,
    payload: new Uint8Array(3000).fill(n),
    streamSeq: n,
    deliveries: 1,
    ...fields,
  };
}

describe("dead letters", () => {
  it("records each once with the first bytes of its payload, counts it and stores one event per agent and minute", async () => {
    await store.upsertAgent({
      agentId: "agent-1",
      serviceName: "checkout",
      port: 1,
      address: "127.0.0.1",
      version: "",
      hostname: "",
      tags: {},
      agentUrl: "",
      registeredAt: t0,
      lastSeen: t0,
      health: "healthy",
      pid: 0,
      processStartedAt: null,
      restartCount: 0,
      cpuPercent: 0,
      memoryBytes: 0,
    });
    expect(await store.write((c) => recordDeadLetters(c, [letter(1), letter(2)], { payloadBytes: 100 }))).toBe(2);
    // A redelivered message is the same letter: not counted twice.
    expect(await store.write((c) => recordDeadLetters(c, [letter(2), letter(3, { agentId: "agent-2", subject: "coral.c.agent.agent-2.telemetry" })]))).toBe(1);

    const rows = await store.read((c) => listDeadLetters(c));
    expect(rows.map((r) => [r.key, r.agentId, r.batchId, r.reason, r.payloadBytes])).toEqual([
      ["3-abc", "agent-2", "b-3", "reason 3", 3000],
      ["2-abc", "agent-1", "b-2", "reason 2", 3000],
      ["1-abc", "agent-1", "b-1", "reason 1", 3000],
    ]);
    expect(rows[2]!.payload).toEqual(new Uint8Array(100).fill(1));
    expect(rows[0]!.payload).toHaveLength(1024);

    const health = await store.read((c) => readIngestHealth(c, new Date(t0.getTime() + 1500)));
    expect(health).toEqual({ batchesStored: 0, batchesSetAside: 3, setAsideRecent: 2, last: { agentId: "agent-2", at: new Date(t0.getTime() + 3000), reason: "reason 3" } });

    const events = await store.queryEvents({ eventType: deadLetterEventType, since: new Date(t0.getTime() - 60_000), until: new Date(t0.getTime() + 60_000), limit: 10 });
    // agent-1's two letters fall in one minute: one event, for its service; the unregistered agent's under its id.
    expect(events.map((e) => e.service).sort()).toEqual(["agent-2", "checkout"]);
    expect(JSON.parse(events.find((e) => e.service === "checkout")!.detailsJson)).toMatchObject({ reason: "reason 1", batch_id: "b-1", payload_bytes: 3000 });
  });

  it("keeps only the newest rows but never forgets the count", async () => {
    const letters = Array.from({ length: 30 }, (_, i) => letter(i + 1));
    await store.write((c) => recordDeadLetters(c, letters, { keepRows: 10 }));
    const rows = await store.read((c) => listDeadLetters(c, 100));
    expect(rows).toHaveLength(10);
    expect(rows[0]!.key).toBe("30-abc");
    expect((await store.read((c) => readIngestHealth(c, t0))).batchesSetAside).toBe(30);
  });

  it("counts stored batches next to the set-aside ones", async () => {
    await store.ingest([create(TelemetryBatchSchema, { batchId: "ok-1", agentId: "a", serviceName: "s", events: [{ eventId: "e", eventType: "start", timestamp: timestampFromDate(t0) }] })]);
    const health = await store.read((c) => readIngestHealth(c, t0));
    expect(health).toEqual({ batchesStored: 1, batchesSetAside: 0, setAsideRecent: 0, last: null });
  });
});
