// OTLP metrics end to end: OpenTelemetry's own JavaScript metrics SDK and its
// OTLP/HTTP protobuf exporter (a real third-party client) send a counter, a
// gauge and a histogram to a real agent's OTLP endpoint; the agent stores
// them as its own metric points, its summaries reach a real colony, and
// `coral metrics` (the built CLI) and QueryMetrics show them with the values
// sent. A second service.name sending to the same agent keeps its name as a
// label.
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

  it("stores every data point as the agent's own metric, as Prometheus would name it", async () => {
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
      { timeoutMs: 60_000, intervalMs: 500 },
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
});
