import { describe, expect, it } from "vitest";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TelemetryBatchSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { Publisher, type AgentStore, type OutboxDrop, type PublishFn, type StorageLogger } from "./index.ts";
import { tempStores, waitFor } from "./testing.ts";

// The publish function here stands in for the NATS wire (JetStream publish with
// Nats-Msg-Id = batchId, awaiting the ack); it records what it was given.
interface Delivery {
  subject: string;
  payload: number[];
  msgId: string;
}

function recorder(): { deliveries: Delivery[]; publish: PublishFn } {
  const deliveries: Delivery[] = [];
  return {
    deliveries,
    publish: async (subject, payload, msgId) => {
      deliveries.push({ subject, payload: [...payload], msgId });
    },
  };
}

const subject = "coral.shop-dev.telemetry.agent-1";
// Small backoff so the retry tests run quickly in real time.
const fastBackoff = { baseMs: 5, capMs: 20 };

async function enqueueAll(store: AgentStore, ids: string[]): Promise<void> {
  for (const [i, batchId] of ids.entries()) {
    await store.enqueue({ batchId, subject, payload: new Uint8Array([i]) });
  }
}

describe("Publisher", () => {
  it("delivers pending rows in order with the batch id as message id and acks them", async () => {
    await using t = await tempStores();
    const store = await t.open();
    await enqueueAll(store, ["b1", "b2", "b3"]);
    const { deliveries, publish } = recorder();
    await using publisher = new Publisher({ store, publish });
    publisher.start();
    await waitFor("three deliveries", () => deliveries.length === 3);
    expect(deliveries).toEqual([
      { subject, payload: [0], msgId: "b1" },
      { subject, payload: [1], msgId: "b2" },
      { subject, payload: [2], msgId: "b3" },
    ]);
    await waitFor("the outbox to drain", async () => (await store.pendingCount()) === 0);
  });

  it("wakes up at once when notified after an enqueue", async () => {
    await using t = await tempStores();
    const store = await t.open();
    const { deliveries, publish } = recorder();
    let peeks = 0;
    const counting = {
      peek: async (limit: number) => {
        const rows = await store.peek(limit);
        peeks++;
        return rows;
      },
      ack: (batchId: string) => store.ack(batchId),
      fail: (batchId: string, error: unknown, now: Date) => store.fail(batchId, error, now),
    };
    // A poll interval far beyond the wait deadline: only notify() can deliver in time.
    await using publisher = new Publisher({ store: counting, publish, pollMs: 600_000 });
    publisher.start();
    await waitFor("the publisher to find the outbox empty", () => peeks === 1);
    await store.enqueue({ batchId: "late", subject, payload: new Uint8Array([7]) });
    publisher.notify();
    await waitFor("the notified delivery", () => deliveries.length === 1, 5_000);
    expect(deliveries[0]?.msgId).toBe("late");
    expect(peeks).toBe(2);
  });

  it("retries a publish that fails three times, recording attempts, then delivers each row exactly once in order", async () => {
    await using t = await tempStores();
    const store = await t.open("agent.sqlite", { backoff: fastBackoff });
    await enqueueAll(store, ["b1", "b2", "b3"]);
    const warnings: Record<string, unknown>[] = [];
    const logger: StorageLogger = (level, _msg, fields) => {
      if (level === "warn") warnings.push(fields ?? {});
    };
    const deliveries: string[] = [];
    let calls = 0;
    let headBeforeSuccess: unknown;
    const publish: PublishFn = async (_subject, _payload, msgId) => {
      calls++;
      if (calls <= 3) throw new Error(`nats down #${calls}`);
      if (calls === 4) headBeforeSuccess = (await store.peek(1))[0];
      deliveries.push(msgId);
    };
    await using publisher = new Publisher({ store, publish, logger });
    publisher.start();
    await waitFor("all rows delivered", () => deliveries.length === 3);
    await waitFor("the outbox to drain", async () => (await store.pendingCount()) === 0);

    expect(deliveries).toEqual(["b1", "b2", "b3"]);
    expect(calls).toBe(6);
    expect(headBeforeSuccess).toMatchObject({ batchId: "b1", attempts: 3, lastError: "nats down #3" });
    expect(warnings.map((w) => [w.batchId, w.attempts, w.err])).toEqual([
      ["b1", 1, "nats down #1"],
      ["b1", 2, "nats down #2"],
      ["b1", 3, "nats down #3"],
    ]);
  });

  it("stop() waits for the in-flight publish and records its outcome", async () => {
    await using t = await tempStores();
    const store = await t.open();
    await enqueueAll(store, ["b1", "b2"]);
    let release: () => void = () => {};
    let started = 0;
    const publisher = new Publisher({
      store,
      publish: () => {
        started++;
        return new Promise<void>((resolve) => {
          release = resolve;
        });
      },
    });
    publisher.start();
    await waitFor("the first publish to start", () => started === 1);
    let stopped = false;
    const stopping = publisher.stop().then(() => {
      stopped = true;
    });
    await store.pendingCount(); // a database round trip: plenty of turns for stop() to resolve if it did not wait
    expect(stopped).toBe(false);
    release();
    await stopping;
    expect(started).toBe(1);
    expect((await store.peek(10)).map((r) => r.batchId)).toEqual(["b2"]);
    expect(() => publisher.start()).toThrow(/stopped/);
    await publisher.stop(); // idempotent
  });

  it("resumes after an agent restart with the outbox it left behind", async () => {
    await using t = await tempStores();
    const before = await t.open("agent.sqlite", { backoff: fastBackoff });
    await enqueueAll(before, ["b1", "b2", "b3"]);
    let failures = 0;
    const down = new Publisher({
      store: before,
      publish: async () => {
        failures++;
        throw new Error("colony unreachable");
      },
    });
    down.start();
    await waitFor("a few failed attempts", () => failures >= 2);
    await down.stop();
    await before.close();

    const after = await t.open("agent.sqlite", { backoff: fastBackoff });
    const [head] = await after.peek(1);
    expect(head).toMatchObject({ batchId: "b1", attempts: failures, lastError: "colony unreachable" });
    const { deliveries, publish } = recorder();
    await using up = new Publisher({ store: after, publish });
    up.start();
    await waitFor("the left-behind rows to be delivered", () => deliveries.length === 3);
    expect(deliveries.map((d) => d.msgId)).toEqual(["b1", "b2", "b3"]);
    await waitFor("the outbox to drain", async () => (await after.pendingCount()) === 0);
  });

  it("stops by itself, with a warning, when its store is closed", async () => {
    await using t = await tempStores();
    const store = await t.open();
    const warnings: string[] = [];
    await store.close();
    const publisher = new Publisher({ store, publish: recorder().publish, logger: (_l, msg) => warnings.push(msg) });
    publisher.start();
    await waitFor("the publisher to give up", () => warnings.length === 1);
    expect(warnings).toEqual(["outbox publisher stopped: the store is closed"]);
    expect(publisher.running).toBe(false);
    await publisher.stop();
  });

  it("splits a row bigger than the server's max payload, sends every part under it, then acks the row", async () => {
    await using t = await tempStores();
    const store = await t.open();
    const when = timestampFromDate(new Date());
    const batch = create(TelemetryBatchSchema, {
      batchId: "big",
      agentId: "agent-1",
      serviceName: "api",
      metrics: Array.from({ length: 15_000 }, (_, i) => ({ metricName: `prom_series_${i}`, interval: "1m", timestamp: when, p50: 1, count: 1n })),
    });
    await store.enqueue({ batchId: "big", subject, payload: toBinary(TelemetryBatchSchema, batch) });
    await store.enqueue({ batchId: "after", subject, payload: new Uint8Array([1]) });
    const { deliveries, publish } = recorder();
    const maxPayload = 128 * 1024;
    await using publisher = new Publisher({ store, publish, maxPayload: () => maxPayload, headroomBytes: 1024 });
    publisher.start();
    await waitFor("the row after the big one", () => deliveries.some((d) => d.msgId === "after"));
    const parts = deliveries.filter((d) => d.msgId !== "after");
    expect(parts.length).toBeGreaterThan(1);
    expect(parts.every((d) => d.payload.length <= maxPayload - 1024)).toBe(true);
    const names = parts.flatMap((d) => fromBinary(TelemetryBatchSchema, new Uint8Array(d.payload)).metrics.map((m) => m.metricName));
    expect(names).toEqual(batch.metrics.map((m) => m.metricName));
    expect(parts.map((d) => d.msgId)).toEqual(parts.map((_, i) => `big:${i + 1}/${parts.length}:${maxPayload - 1024}`));
    await waitFor("the outbox to drain", async () => (await store.pendingCount()) === 0);
    expect(publisher.dropped()).toEqual({ rows: 0, bytes: 0, items: 0 });
  });

  it("drops, counts and reports a row that is not a batch instead of blocking the outbox", async () => {
    await using t = await tempStores();
    const store = await t.open();
    await store.enqueue({ batchId: "junk", subject, payload: new Uint8Array(5_000).fill(0xff) });
    await store.enqueue({ batchId: "next", subject, payload: new Uint8Array([2]) });
    const drops: OutboxDrop[] = [];
    const { deliveries, publish } = recorder();
    await using publisher = new Publisher({ store, publish, maxPayload: () => 4_096, headroomBytes: 1_024, onDrop: (d) => drops.push(d) });
    publisher.start();
    await waitFor("the next row", () => deliveries.length === 1);
    expect(deliveries[0]!.msgId).toBe("next");
    expect(drops).toEqual([{ reason: "undecodable", rows: 1, bytes: 5_000, items: 0, batchIds: ["junk"] }]);
    expect(publisher.dropped()).toEqual({ rows: 1, bytes: 5_000, items: 0 });
  });

  it("keeps the outbox within its bounds while the colony is unreachable, dropping the oldest with a report", async () => {
    await using t = await tempStores();
    const store = await t.open("agent.sqlite", { backoff: fastBackoff });
    const drops: OutboxDrop[] = [];
    const warnings: string[] = [];
    const down = new Publisher({
      store,
      publish: async () => {
        throw new Error("no responders");
      },
      outboxBounds: { maxBytes: 3_000 },
      trimIntervalMs: 1,
      onDrop: (d) => drops.push(d),
      logger: (level, msg) => level === "warn" && warnings.push(msg),
    });
    down.start();
    for (let i = 0; i < 6; i++) {
      await store.enqueue({ batchId: `b${i}`, subject, payload: new Uint8Array(1_000) });
      down.notify();
    }
    await waitFor("the outbox within 3,000 bytes", async () => (await store.pendingBytes()) <= 3_000 && drops.length > 0);
    await down.stop();
    expect((await store.peek(10)).map((r) => r.batchId)).toEqual(["b3", "b4", "b5"]);
    expect(drops.reduce((n, d) => n + d.rows, 0)).toBe(3);
    expect(drops.every((d) => d.reason === "size")).toBe(true);
    expect(down.dropped()).toEqual({ rows: 3, bytes: 3_000, items: 0 });
    expect(warnings).toContain("outbox over its bounds: dropped the oldest batches");
  });
});

