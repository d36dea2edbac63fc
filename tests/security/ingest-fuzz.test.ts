// Property-based fuzzing of the colony's telemetry decoder and edge validator
// (issue 17: every decoder at a trust boundary). Whatever bytes arrive,
// decodeTelemetryMessage never throws and answers a batch or a reason; the fast
// decoder agrees with protobuf-es's fromBinary; and every batch the validator
// accepts is one the real store (a DuckDB file) takes, so nothing that passes
// the edge can fail a transaction shared with other agents' batches.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { TelemetryBatchSchema, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { decodeBatchFast, decodeTelemetryMessage, telemetrySubject } from "@coral/colony/nats";
import { openStore, type ColonyStore } from "@coral/colony/store";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const colonyId = "fuzz";
const agentId = "agent-f";
const subject = telemetrySubject(colonyId, agentId);
const nowMs = Date.now();

let dir: string;
let store: ColonyStore;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "coral-ingest-fuzz-"));
  store = await openStore(join(dir, "colony.duckdb"));
  // Registered, as every agent holding NATS credentials is (a batch without a service name uses it).
  const t = new Date();
  await store.upsertAgent({ agentId, serviceName: "fuzzed", port: 1, address: "127.0.0.1", version: "", hostname: "", tags: {}, agentUrl: "", registeredAt: t, lastSeen: t, health: "healthy", pid: 0, processStartedAt: null, restartCount: 0, cpuPercent: 0, memoryBytes: 0 });
});
afterAll(async () => {
  await store?.close();
  await rm(dir, { recursive: true, force: true });
});

/** Outcome shape: exactly one of a batch or a non-empty reason. */
function checkOutcome(outcome: ReturnType<typeof decodeTelemetryMessage>): void {
  if ("batch" in outcome) expect(outcome.batch.agentId).toBe(agentId);
  else expect(typeof outcome.error === "string" && outcome.error.length > 0).toBe(true);
}

// Strings: ordinary, odd unicode, control characters, very long.
const text = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "grapheme", maxLength: 10 }),
  fc.constantFrom("", "cpu_percent", "http.server.duration", "a\u0000b", "x".repeat(300), "ingest.dead_letter", "restart", "__proto__", "é∂ƒ"),
);
const seconds = fc.oneof(
  fc.bigInt({ min: -(2n ** 40n), max: 2n ** 40n }),
  fc.constantFrom(0n, 946_684_799n, 946_684_800n, BigInt(Math.floor(nowMs / 1000)), BigInt(Math.floor(nowMs / 1000) + 86_400), BigInt(Math.floor(nowMs / 1000) + 86_401)),
  fc.bigInt({ min: BigInt(Math.floor(nowMs / 1000) - 86_400 * 30), max: BigInt(Math.floor(nowMs / 1000)) }),
);
const timestamp = fc.option(fc.record({ seconds, nanos: fc.oneof(fc.integer({ min: 0, max: 999_999_999 }), fc.integer()) }), { nil: undefined });
const double = fc.oneof(fc.double(), fc.constantFrom(0, -1, 1e308, Number.NaN, Number.POSITIVE_INFINITY, -0));
const count = fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constantFrom(0n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n));
const details = fc.oneof(
  fc.constant(""),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.object({ maxDepth: 2 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 30 }),
  fc.constantFrom('{"a":"\\u0000"}', '{"a":1e400}', '{"a":"\\ud800"}', "{}", "[]", "null", '{"a":1}{', '{"__proto__":{"x":1}}'),
);

const metric = fc.record({
  metricName: fc.oneof(text, fc.stringMatching(/^[a-z_][a-z0-9_:.]{0,20}$/)),
  interval: fc.constantFrom("", "1m", "5m", "15m", "1h", "1d", "2m", "1M"),
  timestamp,
  p50: double,
  p95: double,
  p99: double,
  mean: double,
  max: double,
  min: double,
  count,
  labels: fc.dictionary(text, text, { maxKeys: 4 }),
});
const event = fc.record({ eventId: text, eventType: fc.oneof(text, fc.constantFrom("deploy", "health_changed")), timestamp, detailsJson: details });
const connection = fc.record({
  localAddr: fc.oneof(text, fc.constant("127.0.0.1:1234")),
  remoteAddr: fc.oneof(text, fc.constantFrom("10.0.0.1:5432", "[::1]:80", "host:notaport")),
  state: text,
  observedAt: timestamp,
  count: fc.nat({ max: 2 ** 32 - 1 }),
  opened: fc.nat({ max: 2 ** 32 - 1 }),
  source: fc.oneof(text, fc.constantFrom("", "ebpf", "procfs")),
});
let seq = 0;
/** Batches shaped right, with anything in the fields (nearly all are refused). */
const wildBatch = fc
  .record({
    batchId: fc.oneof(fc.constant(""), text.map((t) => `${t}-${seq++}`)),
    serviceName: fc.oneof(fc.constant("api"), text),
    createdAt: timestamp,
    metrics: fc.array(metric, { maxLength: 4 }),
    events: fc.array(event, { maxLength: 3 }),
    connections: fc.array(connection, { maxLength: 2 }),
  })
  .map((b) => create(TelemetryBatchSchema, { ...b, agentId }));

// Plausible batches: within the rules, yet with any unicode, extreme finite numbers and odd JSON.
const recent = fc.record({
  seconds: fc.bigInt({ min: BigInt(Math.floor(nowMs / 1000) - 86_400 * 30), max: BigInt(Math.floor(nowMs / 1000) + 3_600) }),
  nanos: fc.integer({ min: 0, max: 999_999_999 }),
});
const anyText = fc.string({ unit: "binary", maxLength: 24 });
const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
const plausibleBatch = fc
  .record({
    batchId: fc.stringMatching(/^[A-Za-z0-9_-]{1,40}$/).map((id) => `${id}-${seq++}`),
    serviceName: fc.oneof(fc.constant(""), fc.constant("api"), fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/)),
    createdAt: fc.option(recent, { nil: undefined }),
    metrics: fc.array(
      fc.record({
        metricName: fc.stringMatching(/^[A-Za-z_:][A-Za-z0-9_:./-]{0,30}$/),
        interval: fc.constantFrom("", "1m", "5m", "15m", "1h", "1d"),
        timestamp: recent,
        p50: finite,
        p95: finite,
        p99: finite,
        mean: finite,
        max: finite,
        min: finite,
        count: fc.bigInt({ min: 0n, max: 2n ** 63n - 1n }),
        labels: fc.dictionary(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_.:/-]{0,12}$/), anyText, { maxKeys: 5 }),
      }),
      { maxLength: 5 },
    ),
    events: fc.array(
      fc.record({
        eventId: fc.oneof(fc.constant(""), fc.stringMatching(/^[A-Za-z0-9_.:-]{1,30}$/)),
        eventType: fc.stringMatching(/^[A-Za-z][A-Za-z0-9_.:/-]{0,20}$/),
        timestamp: recent,
        detailsJson: fc.oneof(
          fc.constant(""),
          fc.object({ maxDepth: 3, key: anyText, values: [anyText, finite, fc.boolean(), fc.constant(null), fc.bigInt().map(Number)] }).map((v) => JSON.stringify(v)),
          fc.constantFrom('{"a":"\\u0000"}', '{"a":1e308}', '{"a":1e400}', '{"a":-0}', '{"a":"\\ud800"}', '{"\\udc00":1}', '{"":{"":[]}}', '{ "spaced" : [ 1 , 2 ] }', `${"{\"a\":".repeat(70)}1${"}".repeat(70)}`),
        ),
      }),
      { maxLength: 4 },
    ),
    connections: fc.array(
      fc.record({
        localAddr: fc.oneof(fc.constant(""), fc.constant("127.0.0.1:1234"), anyText),
        remoteAddr: fc.oneof(fc.constantFrom("10.0.0.1:5432", "[::1]:80", "host:notaport", "host:99999999999"), fc.stringMatching(/^[a-z0-9.:[\]-]{1,30}$/)),
        state: fc.constantFrom("", "ESTABLISHED", "TIME_WAIT"),
        observedAt: recent,
        count: fc.nat({ max: 2 ** 32 - 1 }),
        opened: fc.nat({ max: 2 ** 32 - 1 }),
        source: fc.constantFrom("", "ebpf", "procfs"),
      }),
      { maxLength: 3 },
    ),
  })
  .map((b) => create(TelemetryBatchSchema, { ...b, agentId }));

const batchArb = fc.oneof({ arbitrary: plausibleBatch, weight: 3 }, { arbitrary: wildBatch, weight: 1 });

describe("telemetry decoding and validation under fuzzing", () => {
  it("never throws on random bytes, and answers a batch or a reason", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        checkOutcome(decodeTelemetryMessage(colonyId, subject, bytes, nowMs));
      }),
      { numRuns: 3000 },
    );
  });

  it("never throws on damaged encodings of real batches, and the fast decoder agrees with fromBinary", () => {
    fc.assert(
      fc.property(batchArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat(), (batch, flips, cut) => {
        const bytes = toBinary(TelemetryBatchSchema, batch);
        for (const [at, value] of flips) if (bytes.length > 0) bytes[at % bytes.length] = value;
        const damaged = cut % 3 === 0 ? bytes.subarray(0, cut % (bytes.length + 1)) : bytes;
        checkOutcome(decodeTelemetryMessage(colonyId, subject, damaged, nowMs));
        let fast: TelemetryBatch | undefined;
        try {
          fast = decodeBatchFast(damaged);
        } catch {
          return; // the fast path gave up: fromBinary decides, nothing to compare
        }
        // Whatever the fast path reads, fromBinary reads the same way.
        const reference = fromBinary(TelemetryBatchSchema, damaged, { readUnknownFields: false });
        expect(fast).toEqual(reference);
      }),
      { numRuns: 1500 },
    );
  });

  it("accepts only batches the real store takes: every accepted batch is stored, alone or with others", async () => {
    let accepted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(batchArb, { minLength: 1, maxLength: 6 }), async (batches) => {
        const good: TelemetryBatch[] = [];
        for (const b of batches) {
          const outcome = decodeTelemetryMessage(colonyId, subject, toBinary(TelemetryBatchSchema, b), Date.now());
          checkOutcome(outcome);
          if ("batch" in outcome) good.push(outcome.batch);
          else refused++;
        }
        accepted += good.length;
        // One call, as ingestion makes it: must not fail.
        await store.ingest(good);
      }),
      { numRuns: 300, endOnFailure: true },
    );
    // The generators reach both sides of the edge.
    expect(accepted).toBeGreaterThan(50);
    expect(refused).toBeGreaterThan(50);
  }, 300_000);
});
