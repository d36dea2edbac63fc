// Spans and log records in a real SQLite file: what the filters of
// `coral traces` and `coral logs` select, newest `limit` returned oldest first.
import { describe, expect, it } from "vitest";
import type { LogRecordRow, SpanRecord } from "../otlp/records.ts";
import { tempStores } from "./testing.ts";

const base = Date.UTC(2026, 11, 6, 0, 0, 0);
const ns = (ms: number) => BigInt(base + ms) * 1_000_000n;
const span = (i: number, extra: Partial<SpanRecord> = {}): SpanRecord => ({
  traceId: i.toString(16).padStart(32, "0"),
  spanId: i.toString(16).padStart(16, "0"),
  parentSpanId: "",
  service: "api",
  pid: 7,
  name: "GET /users/:id",
  kind: "server",
  startNs: ns(i * 1000),
  endNs: ns(i * 1000 + 5),
  durationMs: 5,
  error: false,
  statusMessage: "",
  attributes: '{"http.route":"/users/:id"}',
  ...extra,
});
const log = (i: number, extra: Partial<LogRecordRow> = {}): LogRecordRow => ({
  timeNs: ns(i * 1000),
  service: "api",
  pid: 7,
  severityNumber: 9,
  severityText: "INFO",
  body: `request ${i} done`,
  attributes: "{}",
  traceId: "",
  spanId: "",
  ...extra,
});

describe("OTLP storage", () => {
  it("filters spans by service, operation (literally), duration, errors, trace and time", async () => {
    await using t = await tempStores();
    const store = await t.open("agent.sqlite");
    await store.recordSpans([
      span(1),
      span(2, { service: "web" }),
      span(3, { name: "SELECT 100% of users", durationMs: 250 }),
      span(4, { error: true, statusMessage: "boom" }),
      span(5, { name: "SELECT 1000 users" }),
    ]);
    const ids = async (q: Parameters<typeof store.querySpans>[0]) => (await store.querySpans(q)).rows.map((s) => Number.parseInt(s.spanId, 16));
    expect(await ids({ limit: 10 })).toEqual([1, 2, 3, 4, 5]);
    expect(await ids({ limit: 2 })).toEqual([4, 5]);
    expect((await store.querySpans({ limit: 2 })).truncated).toBe(true);
    expect(await ids({ service: "web", limit: 10 })).toEqual([2]);
    expect(await ids({ operation: "100%", limit: 10 })).toEqual([3]);
    expect(await ids({ operation: "select", limit: 10 })).toEqual([3, 5]);
    expect(await ids({ minDurationMs: 200, limit: 10 })).toEqual([3]);
    expect(await ids({ errorsOnly: true, limit: 10 })).toEqual([4]);
    expect(await ids({ traceId: span(4).traceId, limit: 10 })).toEqual([4]);
    expect(await ids({ since: new Date(base + 3000), until: new Date(base + 5000), limit: 10 })).toEqual([3, 4]);
    const [first] = (await store.querySpans({ traceId: span(4).traceId, limit: 1 })).rows;
    expect(first).toMatchObject({ service: "api", pid: 7, error: true, statusMessage: "boom", startNs: ns(4000), durationMs: 5 });
    expect(JSON.parse(first!.attributes)).toEqual({ "http.route": "/users/:id" });
  });

  it("filters log records by severity, text (literally), trace and service", async () => {
    await using t = await tempStores();
    const store = await t.open("agent.sqlite");
    await store.recordLogs([log(1), log(2, { severityNumber: 17, severityText: "ERROR", body: "payment_failed for 50%", traceId: "ab".repeat(16) }), log(3, { service: "web" })]);
    const bodies = async (q: Parameters<typeof store.queryLogs>[0]) => (await store.queryLogs(q)).rows.map((l) => l.body);
    expect(await bodies({ limit: 10 })).toEqual(["request 1 done", "payment_failed for 50%", "request 3 done"]);
    expect(await bodies({ minSeverity: 17, limit: 10 })).toEqual(["payment_failed for 50%"]);
    expect(await bodies({ grep: "PAYMENT_", limit: 10 })).toEqual(["payment_failed for 50%"]);
    expect(await bodies({ grep: "t_f", limit: 10 })).toEqual(["payment_failed for 50%"]);
    expect(await bodies({ grep: "50%", limit: 10 })).toEqual(["payment_failed for 50%"]);
    expect(await bodies({ traceId: "ab".repeat(16), limit: 10 })).toEqual(["payment_failed for 50%"]);
    expect(await bodies({ service: "web", limit: 10 })).toEqual(["request 3 done"]);
    const [l] = (await store.queryLogs({ service: "web", limit: 1 })).rows;
    expect(l!.timestamp).toEqual(new Date(base + 3000));
  });
});
