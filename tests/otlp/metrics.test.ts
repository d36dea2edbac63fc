// OTLP metrics, and the series the agent derives from spans and logs, end to
// end. OpenTelemetry's own JavaScript metrics SDK and its
// OTLP/HTTP protobuf exporter (a real third-party client) send a counter, a
// gauge and a histogram to a real agent's OTLP endpoint; the agent stores
// them as its own metric points, its summaries reach a real colony, and
// `coral metrics` (the built CLI) and QueryMetrics show them with the values
// sent. A second service.name sending to the same agent keeps its name as a
// label. Spans and log records sent through OpenTelemetry's trace and logs
// SDKs become per-operation latency summaries of every span (kept or not)
// and per-interval error counts in the colony.
import { SpanStatusCode } from "@opentelemetry/api";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { LOG_ERRORS_METRIC, SPAN_ERRORS_METRIC, spanMetricName } from "@coral/common/span-metric-name";
import { OTLPMetricExporter } from "@opentelemetry/exporter-metrics-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider, PeriodicExportingMetricReader } from "@opentelemetry/sdk-metrics";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "@coral/agent";
import type { RunningColony } from "@coral/colony";
import { testAgent } from "../helpers/agents.ts";
import { runCoral } from "../helpers/cli.ts";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

describe("OTLP metrics into coral metrics", () => {
  let project: TestProject | undefined;
  let colony: RunningColony;
  let agent: RunningAgent | undefined;

  beforeAll(async () => {
    project = await createTestProject();
    colony = await project.start();
    agent = await testAgent(project, colony.url, "shop", await freePort(), { healthUrl: undefined, otlp: { httpPort: 0, grpcPort: 0 } });
    const port = agent.otlp()!.httpPort;
    const send = async (service: string, record: (p: MeterProvider) => void) => {
      const reader = new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter({ url: `http://127.0.0.1:${port}/v1/metrics` }), exportIntervalMillis: 3_600_000 });
      const provider = new MeterProvider({ resource: resourceFromAttributes({ "service.name": service }), readers: [reader] });
      record(provider);
      await provider.forceFlush();
      await provider.shutdown();
    };
    await send("shop", (p) => {
      const meter = p.getMeter("shop");
      meter.createCounter("orders.placed").add(5, { region: "eu" });
      meter.createObservableGauge("queue.depth").addCallback((r) => r.observe(7));
      const duration = meter.createHistogram("checkout.duration", { unit: "ms" });
      for (const ms of [10, 20, 30]) duration.record(ms);
    });
    await send("billing", (p) => p.getMeter("billing").createCounter("invoices.sent").add(2));
  }, 120_000);

  afterAll(async () => {
    await agent?.close();
    await project?.[Symbol.asyncDispose]();
  });

  it("stores every data point as the agent's own metric, as Prometheus would name it", { timeout: 120_000 }, async () => {
    const stats = agent!.otlp()!;
    expect(stats.state).toBe("running");
    const api = colonyApi(colony.url, project!.localToken);
    const maxOf = async (metricName: string) => {
      const res = await api.queryMetrics({ service: "shop", metricName });
      const points = res.series.flatMap((s) => s.points);
      return points.length ? Math.max(...points.map((p) => p.max)) : undefined;
    };
    const values = await waitFor(
      "the OTLP metrics summarised in the colony",
      async () => {
        const v = { orders: await maxOf("orders_placed"), queue: await maxOf("queue_depth"), count: await maxOf("checkout_duration_count"), sum: await maxOf("checkout_duration_sum"), invoices: await maxOf("invoices_sent") };
        return Object.values(v).every((x) => x !== undefined) ? v : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    expect(values).toEqual({ orders: 5, queue: 7, count: 3, sum: 60, invoices: 2 });

    // Labels: the counter's attribute, and the other service's name on its points.
    const raw = await api.queryMetrics({ service: "shop", raw: true, limit: 1000 });
    const labelsOf = (name: string) => raw.rawPoints.find((p) => p.metricName === name)?.labels;
    expect(labelsOf("orders_placed")).toEqual({ region: "eu" });
    expect(labelsOf("invoices_sent")).toEqual({ "service.name": "billing" });
  });

  it("shows them with coral metrics", async () => {
    const res = await runCoral(["metrics", "shop", "checkout_duration_sum", "--since", "10m", "--colony-url", colony.url, "--token", project!.localToken], { env: { CORAL_HOME: project!.home } });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain("checkout_duration_sum");
    expect(res.stdout).toMatch(/\b60\b/);
  });

  it("summarises every span per operation (kept or not) and counts the interval's errors", { timeout: 120_000 }, async () => {
    const port = agent!.otlp()!.httpPort;
    const tracer = new BasicTracerProvider({
      resource: resourceFromAttributes({ "service.name": "shop" }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: `http://127.0.0.1:${port}/v1/traces` }), { maxExportBatchSize: 512 })],
    });
    const t0 = Date.now() - 10_000;
    // 200 fast spans of one operation, 1–200 ms (none slow enough to keep, keep share 10 %), 4 of them failed.
    for (let i = 1; i <= 200; i++) {
      const span = tracer.getTracer("shop").startSpan("GET /users/{id}", { startTime: t0 + i });
      if (i % 50 === 0) span.setStatus({ code: SpanStatusCode.ERROR, message: "boom" });
      span.end(t0 + i + i * 0.999);
    }
    await tracer.forceFlush();
    await tracer.shutdown();
    const logs = new LoggerProvider({ resource: resourceFromAttributes({ "service.name": "shop" }), processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `http://127.0.0.1:${port}/v1/logs` }) })] });
    for (let i = 0; i < 5; i++) logs.getLogger("shop").emit({ severityNumber: i < 3 ? SeverityNumber.ERROR : SeverityNumber.INFO, body: `line ${i}` });
    await logs.forceFlush();
    await logs.shutdown();

    const api = colonyApi(colony.url, project!.localToken);
    const sums = async (metricName: string) => {
      const points = (await api.queryMetrics({ service: "shop", metricName })).series.flatMap((s) => s.points);
      return { count: points.reduce((n, p) => n + Number(p.count), 0), meanSum: points.reduce((n, p) => n + p.mean * Number(p.count), 0), max: Math.max(0, ...points.map((p) => p.max)) };
    };
    const latency = spanMetricName("GET /users/{id}");
    const got = await waitFor(
      "the span and log series in the colony",
      async () => {
        const v = { latency: await sums(latency), spanErrors: await sums(SPAN_ERRORS_METRIC), logErrors: await sums(LOG_ERRORS_METRIC) };
        return v.latency.count >= 200 && v.spanErrors.meanSum >= 4 && v.logErrors.meanSum >= 3 ? v : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );
    expect(got.latency.count).toBe(200);
    expect(got.latency.max).toBeCloseTo(199.8, 0);
    expect(got.spanErrors.meanSum).toBe(4);
    expect(got.logErrors.meanSum).toBe(3);
    // Fewer spans were kept than summarised: the summaries do not depend on the keep rules.
    expect(agent!.otlp()!.ingest.sampler.kept).toBeLessThan(200);
  });
});
