import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TelemetryBatchSchema, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { describe, expect, it } from "vitest";
import { decodeBatch, decodeBatchFast, decodeTelemetryMessage } from "./decode.ts";
import { telemetrySubject } from "./subjects.ts";
import { validateTelemetryBatch } from "./validate.ts";

const now = Date.parse("2026-06-01T12:00:00Z");
const ts = (ms = now) => timestampFromDate(new Date(ms));

function good(): TelemetryBatch {
  return create(TelemetryBatchSchema, {
    batchId: "agent-1-b1",
    agentId: "agent-1",
    serviceName: "api",
    createdAt: ts(),
    metrics: [{ metricName: "http_requests:rate5m", interval: "1m", timestamp: ts(), p50: 1, p95: 2, p99: 3, mean: 1.5, max: 4, min: 0, count: 60n, labels: { route: "/a" } }],
    events: [{ eventId: "e1", eventType: "ingest.dead_letter", timestamp: ts(), detailsJson: '{"a":[1,2,{"b":null}]}' }],
    connections: [{ localAddr: "127.0.0.1:1234", remoteAddr: "10.0.0.1:5432", state: "ESTABLISHED", observedAt: ts(), count: 3 }],
  });
}

describe("validateTelemetryBatch", () => {
  it("accepts a well-formed batch, and an empty details_json or interval", () => {
    expect(validateTelemetryBatch(good(), now)).toBeNull();
    const b = good();
    b.events[0]!.detailsJson = "";
    b.metrics[0]!.interval = "";
    expect(validateTelemetryBatch(b, now)).toBeNull();
  });

  it.each<[string, (b: TelemetryBatch) => void, RegExp]>([
    ["details_json that is not JSON", (b) => (b.events[0]!.detailsJson = "{not json"), /details_json is not JSON/],
    ["details_json that is a list", (b) => (b.events[0]!.detailsJson = "[1]"), /not a JSON object/],
    ["details_json over the cap", (b) => (b.events[0]!.detailsJson = JSON.stringify({ x: "y".repeat(70_000) })), /longer than 65536/],
    ["details_json with a lone surrogate (JSON.parse takes it, the store does not)", (b) => (b.events[0]!.detailsJson = '{"a":"\\ud800"}'), /lone surrogate/],
    ["details_json nested 70 deep", (b) => (b.events[0]!.detailsJson = `${'{"a":'.repeat(70)}1${"}".repeat(70)}`), /deeper than 64/],
    ["details_json with a number out of range", (b) => (b.events[0]!.detailsJson = '{"a":1e400}'), /out of range/],
    ["a count of 2^64-1", (b) => (b.metrics[0]!.count = 2n ** 64n - 1n), /count 18446744073709551615, more than the store holds/],
    ["a metric without a timestamp", (b) => (b.metrics[0]!.timestamp = undefined), /has no timestamp/],
    ["an event without a type", (b) => (b.events[0]!.eventType = ""), /has no event_type/],
    ["an event type with spaces", (b) => (b.events[0]!.eventType = "rm -rf"), /event_type "rm -rf"/],
    ["a NaN percentile", (b) => (b.metrics[0]!.p95 = Number.NaN), /non-finite p95/],
    ["an infinite max", (b) => (b.metrics[0]!.max = Number.POSITIVE_INFINITY), /non-finite max/],
    ["an empty metric name", (b) => (b.metrics[0]!.metricName = ""), /metric name is empty/],
    ["a metric name with a quote", (b) => (b.metrics[0]!.metricName = 'a"b'), /must match/],
    ["a metric name with NUL", (b) => (b.metrics[0]!.metricName = "a\u0000b"), /control characters/],
    ["an unknown interval", (b) => (b.metrics[0]!.interval = "7m"), /interval "7m"/],
    ["a timestamp before 2000", (b) => (b.metrics[0]!.timestamp = ts(Date.parse("1999-12-31T23:59:59Z"))), /before 2000-01-01/],
    ["a timestamp two days ahead", (b) => (b.events[0]!.timestamp = ts(now + 2 * 86_400_000)), /more than a day in the future/],
    ["negative nanos", (b) => (b.connections[0]!.observedAt = { ...ts(), nanos: -1 }), /nanos -1/],
    ["too many labels", (b) => (b.metrics[0]!.labels = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`l${i}`, "v"]))), /more than 64 labels/],
    ["a label value over the cap", (b) => (b.metrics[0]!.labels = { k: "v".repeat(1025) }), /label "k" is longer than 1024/],
    ["a bad label name", (b) => (b.metrics[0]!.labels = { "a b": "v" }), /label name "a b"/],
    ["a connection without a remote address", (b) => (b.connections[0]!.remoteAddr = ""), /remote_addr is empty/],
    ["a connection without a time", (b) => (b.connections[0]!.observedAt = undefined), /has no timestamp/],
    ["a batch id over the cap", (b) => (b.batchId = "x".repeat(257)), /batch_id is longer than 256/],
    ["a service name with a newline", (b) => (b.serviceName = "api\nx"), /control characters/],
    ["too many metrics", (b) => (b.metrics = Array.from({ length: 50_001 }, () => b.metrics[0]!)), /50001 metrics/],
  ])("refuses %s", (_what, spoil, why) => {
    const b = good();
    spoil(b);
    expect(validateTelemetryBatch(b, now)).toMatch(why);
  });
});

describe("decodeTelemetryMessage", () => {
  const subject = telemetrySubject("c", "agent-1");

  it("returns the batch when it decodes and validates, else the reason", () => {
    const ok = decodeTelemetryMessage("c", subject, toBinary(TelemetryBatchSchema, good()), now);
    expect("batch" in ok && ok.batch.metrics[0]!.labels).toEqual({ route: "/a" });
    const b = good();
    b.events[0]!.detailsJson = "nope";
    expect(decodeTelemetryMessage("c", subject, toBinary(TelemetryBatchSchema, b), now)).toEqual({ error: expect.stringMatching(/details_json is not JSON/) });
  });

  it("decodes on the fast path exactly as fromBinary does", () => {
    const bytes = toBinary(TelemetryBatchSchema, good());
    expect(decodeBatchFast(bytes)).toEqual(fromBinary(TelemetryBatchSchema, bytes));
  });

  it("refuses invalid UTF-8, as fromBinary does", () => {
    const bytes = toBinary(TelemetryBatchSchema, create(TelemetryBatchSchema, { batchId: "b", agentId: "agent-1" }));
    bytes[bytes.length - 7] = 0x80; // the first byte of "agent-1"
    expect(() => fromBinary(TelemetryBatchSchema, bytes)).toThrow();
    expect(decodeTelemetryMessage("c", subject, bytes, now)).toEqual({ error: expect.stringMatching(/not a protobuf TelemetryBatch/) });
  });

  it("merges a timestamp sent in two pieces, as protobuf says (fast path or not)", () => {
    // Field 4 (created_at) twice: seconds in the first, nanos in the second.
    const bytes = new Uint8Array([0x0a, 0x01, 0x62, 0x22, 0x02, 0x08, 0x05, 0x22, 0x02, 0x10, 0x07]);
    expect(decodeBatch(bytes).createdAt).toMatchObject({ seconds: 5n, nanos: 7 });
    expect(fromBinary(TelemetryBatchSchema, bytes).createdAt).toMatchObject({ seconds: 5n, nanos: 7 });
  });

  it("falls back to fromBinary for a known field with another wire type", () => {
    // batch_id (field 1) as a varint: the fast path gives up; fromBinary decides.
    const bytes = new Uint8Array([0x08, 0x01]);
    expect(() => decodeBatchFast(bytes)).toThrow();
    let expected: unknown;
    try {
      expected = fromBinary(TelemetryBatchSchema, bytes);
    } catch (err) {
      expected = err;
    }
    if (expected instanceof Error) expect(() => decodeBatch(bytes)).toThrow();
    else expect(decodeBatch(bytes)).toEqual(expected);
  });
});
