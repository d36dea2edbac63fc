// The OTLP endpoints against OpenTelemetry's own JavaScript SDK and
// exporters (real third-party clients, unmodified): OTLP/HTTP protobuf,
// OTLP/HTTP JSON (hex ids), gzip, OTLP/gRPC, traces and logs; and what bad
// clients send: garbage, the wrong content type, too large a body, a gzip
// bomb. Each is refused with a status and message and counted; the
// receiver keeps serving.
import { gzipSync } from "node:zlib";
import { context, trace, SpanStatusCode } from "@opentelemetry/api";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPTraceExporter as GrpcTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter as JsonTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { OTLPTraceExporter as ProtoTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { BasicTracerProvider, SimpleSpanProcessor, type SpanExporter } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { logRecords, spanRecords, type LogRecordRow, type SpanRecord } from "./records.ts";
import { OtlpReceiver } from "./receiver.ts";

const spans: SpanRecord[] = [];
const logs: LogRecordRow[] = [];
const via: string[] = [];
const receiver = new OtlpReceiver({
  httpPort: 0,
  grpcPort: 0,
  maxBodyBytes: 64 * 1024,
  sink: {
    traces: (req, how) => void (spans.push(...spanRecords(req)), via.push(how)),
    metrics: () => undefined,
    logs: (req) => void logs.push(...logRecords(req)),
  },
});
beforeAll(() => receiver.start());
afterAll(() => receiver.stop());

const resource = resourceFromAttributes({ "service.name": "checkout", "process.pid": 4242 });

/** Two spans (a parent and an erroring child) through `exporter`; their ids. */
async function sendTrace(exporter: SpanExporter, name: string): Promise<{ traceId: string; parentId: string; childId: string }> {
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = provider.getTracer("coral-test");
  const parent = tracer.startSpan(`${name} parent`, { attributes: { "http.route": "/pay/:id", "http.status_code": 502 } });
  const child = tracer.startSpan(`${name} child`, {}, trace.setSpan(context.active(), parent));
  child.setStatus({ code: SpanStatusCode.ERROR, message: "card declined" });
  child.end();
  parent.end();
  await provider.forceFlush();
  await provider.shutdown();
  return { traceId: parent.spanContext().traceId, parentId: parent.spanContext().spanId, childId: child.spanContext().spanId };
}

const url = (path: string) => `http://127.0.0.1:${receiver.httpPort}${path}`;

describe("OTLP receiver", () => {
  for (const [label, make] of [
    ["OTLP/HTTP protobuf", () => new ProtoTraceExporter({ url: url("/v1/traces") })],
    ["OTLP/HTTP JSON", () => new JsonTraceExporter({ url: url("/v1/traces") })],
    ["OTLP/HTTP protobuf, gzip", () => new ProtoTraceExporter({ url: url("/v1/traces"), compression: "gzip" as never })],
    ["OTLP/gRPC", () => new GrpcTraceExporter({ url: `http://127.0.0.1:${receiver.grpcPort}` })],
  ] as const) {
    it(`takes spans from OpenTelemetry's exporter over ${label}`, async () => {
      const ids = await sendTrace(make(), label);
      const got = spans.filter((s) => s.traceId === ids.traceId);
      expect(got.map((s) => s.name).sort()).toEqual([`${label} child`, `${label} parent`]);
      const child = got.find((s) => s.spanId === ids.childId)!;
      expect(child).toMatchObject({ parentSpanId: ids.parentId, service: "checkout", pid: 4242, error: true, statusMessage: "card declined", kind: "internal" });
      const parent = got.find((s) => s.spanId === ids.parentId)!;
      expect(parent.parentSpanId).toBe("");
      expect(JSON.parse(parent.attributes)).toEqual({ "http.route": "/pay/:id", "http.status_code": 502 });
      expect(parent.durationMs).toBeGreaterThanOrEqual(0);
      expect(parent.endNs).toBeGreaterThanOrEqual(parent.startNs);
    });
  }

  it("the gRPC request arrived over gRPC", () => {
    expect(via).toContain("grpc");
  });

  it("takes log records over OTLP/HTTP JSON, with severity, body and the trace they belong to", async () => {
    const provider = new LoggerProvider({ resource, processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url: url("/v1/logs") }) })] });
    const tracer = new BasicTracerProvider({ resource }).getTracer("t");
    const span = tracer.startSpan("with a log");
    provider.getLogger("coral-test").emit({ severityNumber: SeverityNumber.ERROR, severityText: "ERROR", body: "payment failed", attributes: { order: 17 }, context: trace.setSpan(context.active(), span) });
    span.end();
    await provider.forceFlush();
    await provider.shutdown();
    const got = logs.find((l) => l.body === "payment failed");
    expect(got).toMatchObject({ service: "checkout", severityNumber: SeverityNumber.ERROR, severityText: "ERROR", traceId: span.spanContext().traceId, spanId: span.spanContext().spanId });
    expect(JSON.parse(got!.attributes)).toEqual({ order: 17 });
  });

  it("refuses what is not OTLP with a status and a message, counts it, and keeps serving", async () => {
    const before = receiver.stats().rejected;
    const post = (path: string, body: Uint8Array | string, headers: Record<string, string>) => fetch(url(path), { method: "POST", body: typeof body === "string" ? body : Buffer.from(body), headers });
    const garbage = await post("/v1/traces", new Uint8Array([0xff, 0xff, 0xff, 0x01]), { "content-type": "application/x-protobuf" });
    expect(garbage.status).toBe(400);
    expect(((await garbage.json()) as { message: string }).message).toMatch(/not a valid OTLP protobuf/);
    const badJson = await post("/v1/logs", '{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}', { "content-type": "application/json" });
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { message: string }).message).toMatch(/traceId "zz" is not hex/);
    const wrongType = await post("/v1/traces", "hello", { "content-type": "text/plain" });
    expect(wrongType.status).toBe(415);
    const tooBig = await post("/v1/traces", new Uint8Array(65 * 1024), { "content-type": "application/x-protobuf" });
    expect(tooBig.status).toBe(413);
    const bomb = await post("/v1/traces", gzipSync(Buffer.alloc(10 * 1024 * 1024)), { "content-type": "application/x-protobuf", "content-encoding": "gzip" });
    expect(bomb.status).toBe(413);
    expect(((await bomb.json()) as { message: string }).message).toMatch(/unzips to more than 65536 bytes/);
    const wrongPath = await fetch(url("/v1/profiles"), { method: "POST", body: "" });
    expect(wrongPath.status).toBe(404);
    expect(receiver.stats().rejected - before).toBe(6);
    // Still serving.
    const ids = await sendTrace(new ProtoTraceExporter({ url: url("/v1/traces") }), "after the bad ones");
    expect(spans.some((s) => s.traceId === ids.traceId)).toBe(true);
  });
});
