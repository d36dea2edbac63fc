import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TelemetryBatchSchema, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { describe, expect, it } from "vitest";
import { splitBatch } from "./split.ts";

const when = timestampFromDate(new Date("2026-01-01T00:00:00Z"));

function batch(metrics: number, extra: Pick<MessageInitShape<typeof TelemetryBatchSchema>, "events" | "connections"> = {}): TelemetryBatch {
  return create(TelemetryBatchSchema, {
    batchId: "agent-1-b1",
    agentId: "agent-1",
    serviceName: "api",
    createdAt: when,
    metrics: Array.from({ length: metrics }, (_, i) => ({ metricName: `series_${i}`, interval: "1m", timestamp: when, p50: i, p95: i, p99: i, mean: i, max: i, min: i, count: 60n })),
    ...extra,
  });
}

describe("splitBatch", () => {
  it("leaves a batch that fits alone, byte for byte", () => {
    const payload = toBinary(TelemetryBatchSchema, batch(10));
    expect(splitBatch("agent-1-b1", payload, payload.length)).toEqual({ parts: [{ batchId: "agent-1-b1", payload }], droppedItems: 0 });
  });

  it("packs 15,000 series into parts under the limit, in order, with stable part ids", () => {
    const original = batch(15_000, {
      events: [{ eventId: "e1", eventType: "restart", timestamp: when, detailsJson: "{}" }],
      connections: [{ localAddr: "127.0.0.1:1", remoteAddr: "10.0.0.1:5432", state: "ESTABLISHED", observedAt: when, count: 2 }],
    });
    const payload = toBinary(TelemetryBatchSchema, original);
    const limit = 256 * 1024;
    expect(payload.length).toBeGreaterThan(4 * limit);
    const split = splitBatch(original.batchId, payload, limit);
    expect(split.droppedItems).toBe(0);
    expect(split.parts.length).toBeGreaterThanOrEqual(5);
    const decoded = split.parts.map((p) => {
      expect(p.payload.length).toBeLessThanOrEqual(limit);
      return fromBinary(TelemetryBatchSchema, p.payload);
    });
    expect(decoded.map((d) => d.batchId)).toEqual(split.parts.map((_, i) => `agent-1-b1:${i + 1}/${split.parts.length}:${limit}`));
    expect(decoded.every((d) => d.agentId === "agent-1" && d.serviceName === "api")).toBe(true);
    expect(decoded.flatMap((d) => d.metrics.map((m) => m.metricName))).toEqual(original.metrics.map((m) => m.metricName));
    expect(decoded.flatMap((d) => d.events)).toEqual(original.events);
    expect(decoded.flatMap((d) => d.connections)).toEqual(original.connections);
    // Same input, same parts: a retry publishes the same messages with the same ids.
    const again = splitBatch(original.batchId, payload, limit);
    expect(again.parts.map((p) => p.batchId)).toEqual(split.parts.map((p) => p.batchId));
    expect(again.parts.every((p, i) => Buffer.from(p.payload).equals(Buffer.from(split.parts[i]!.payload)))).toBe(true);
  });

  it("drops and counts an item too big for any message, and sends the rest", () => {
    const original = batch(3);
    original.metrics[1]!.labels = { huge: "x".repeat(5_000) };
    const split = splitBatch(original.batchId, toBinary(TelemetryBatchSchema, original), 2_000);
    expect(split.droppedItems).toBe(1);
    const names = split.parts.flatMap((p) => fromBinary(TelemetryBatchSchema, p.payload).metrics.map((m) => m.metricName));
    expect(names).toEqual(["series_0", "series_2"]);
  });

  it("says so when the payload is not a batch", () => {
    const split = splitBatch("x", new Uint8Array(3_000).fill(0xff), 1_000);
    expect(split.parts).toEqual([]);
    expect(split.error).toMatch(/not a TelemetryBatch/);
  });
});
