// OpenTelemetry's exporter → the OTLP endpoint → the keep rules → a real
// DuckDB store: the error trace and the slow trace are kept whole, the
// others (share 0) are not; every log record is stored.
import { context, trace, SpanStatusCode } from "@opentelemetry/api";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BatchLogRecordProcessor, LoggerProvider } from "@opentelemetry/sdk-logs";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { pollUntil } from "@coral/common/async";
import { describe, expect, it } from "vitest";
import { tempStores } from "../storage/testing.ts";
import { OtlpIngest } from "./ingest.ts";
import { OtlpReceiver } from "./receiver.ts";

describe("OTLP ingest", () => {
  it("stores the traces the keep rules keep, whole, and every log record", async () => {
    await using t = await tempStores();
    const store = await t.open("agent.duckdb");
    const ingest = new OtlpIngest({ store, defaultService: "api", sampler: { keepShare: 0, slowMs: 100, decisionWaitMs: 200 }, flushEveryMs: 100 });
    const receiver = new OtlpReceiver({ httpPort: 0, grpcPort: null, sink: ingest });
    await receiver.start();
    ingest.start();
    try {
      const resource = resourceFromAttributes({ "service.name": "shop" });
      const provider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `http://127.0.0.1:${receiver.httpPort}/v1/traces` }))] });
      const logs = new LoggerProvider({ resource, processors: [new BatchLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `http://127.0.0.1:${receiver.httpPort}/v1/logs` }) })] });
      const tracer = provider.getTracer("t");
      const t0 = Date.now();
      const traces: { id: string; kind: string }[] = [];
      for (let i = 0; i < 10; i++) {
        const kind = i === 3 ? "error" : i === 7 ? "slow" : "plain";
        const root = tracer.startSpan(`order ${i}`, { startTime: t0 });
        const child = tracer.startSpan("db query", { startTime: t0 }, trace.setSpan(context.active(), root));
        if (kind === "error") child.setStatus({ code: SpanStatusCode.ERROR, message: "deadlock" });
        child.end(t0 + (kind === "slow" ? 150 : 2));
        root.end(t0 + (kind === "slow" ? 160 : 3));
        traces.push({ id: root.spanContext().traceId, kind });
        logs.getLogger("l").emit({ severityNumber: kind === "error" ? SeverityNumber.ERROR : SeverityNumber.INFO, body: `order ${i} ${kind}`, context: trace.setSpan(context.active(), root) });
      }
      await provider.forceFlush();
      await logs.forceFlush();
      const stored = await pollUntil(
        async () => {
          const s = await store.querySpans({ limit: 100 });
          return s.rows.length >= 4 && ingest.sampler.stats().buffered === 0 ? s.rows : undefined;
        },
        { timeoutMs: 30_000, what: "the kept spans stored" },
      );
      const keptTraces = new Set(stored.map((s) => s.traceId));
      expect([...keptTraces].sort()).toEqual(traces.filter((x) => x.kind !== "plain").map((x) => x.id).sort());
      expect(stored).toHaveLength(4);
      expect(stored.every((s) => s.service === "shop")).toBe(true);
      expect(stored.filter((s) => s.error).map((s) => s.statusMessage)).toEqual(["deadlock"]);
      expect(ingest.stats().sampler).toMatchObject({ received: 20, kept: 4, dropped: 16 });
      const stored_logs = await pollUntil(async () => {
        const l = await store.queryLogs({ limit: 100 });
        return l.rows.length === 10 ? l.rows : undefined;
      }, { timeoutMs: 30_000, what: "10 log records stored" });
      const errorLog = stored_logs.find((l) => l.severityNumber === SeverityNumber.ERROR)!;
      expect(errorLog.body).toBe("order 3 error");
      expect(errorLog.traceId).toBe(traces[3]!.id);
      await provider.shutdown();
      await logs.shutdown();
    } finally {
      await receiver.stop();
      await ingest.stop();
    }
  });
});
