// OpenTelemetry end to end: OpenTelemetry's own JavaScript SDK and OTLP
// exporters (a real third-party client) send traces and logs to two agents'
// OTLP endpoints; the agents keep them by their tail rules; `coral traces`,
// `coral traces show` and `coral logs` (the built CLI) read them through a
// real colony, the filters running at the agents. Bad flags are refused
// with exit code 2 before anything is asked.
import { context, trace, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPTraceExporter as GrpcTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "@coral/agent";
import { testAgent } from "../helpers/agents.ts";
import { runCoral } from "../helpers/cli.ts";
import { createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

interface SpanJson {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  service: string;
  name: string;
  durationMs: number;
  error: boolean;
  statusMessage: string;
}

describe("coral traces and coral logs: OTLP into agents, read through the colony", () => {
  let project: TestProject | undefined;
  const agents: RunningAgent[] = [];
  let remote: string[] = [];
  const ids = { slow: "", error: "", plain: "" };

  beforeAll(async () => {
    project = await createTestProject();
    const colony = await project.start();
    remote = ["--colony-url", colony.url, "--token", project.localToken];
    // Two agents, as on a host with two services: the web tier's spans reach one, the api's the other.
    for (const name of ["web", "api"]) agents.push(await testAgent(project, colony.url, name, await freePort(), { healthUrl: undefined, otlp: { httpPort: 0, grpcPort: 0, keepShare: 0, slowMs: 100 } }));
    const [web, api] = agents.map((a) => a.otlp()!);
    expect(web!.state).toBe("running");

    const tracers = {
      web: new BasicTracerProvider({ resource: resourceFromAttributes({ "service.name": "web" }), spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `http://127.0.0.1:${web!.httpPort}/v1/traces` }))] }),
      api: new BasicTracerProvider({ resource: resourceFromAttributes({ "service.name": "api" }), spanProcessors: [new SimpleSpanProcessor(new GrpcTraceExporter({ url: `http://127.0.0.1:${api!.grpcPort}` }))] }),
    };
    const logs = new LoggerProvider({ resource: resourceFromAttributes({ "service.name": "api" }), processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `http://127.0.0.1:${api!.httpPort}/v1/logs` }) })] });
    const t0 = Date.now() - 5_000;
    // One trace across both services per case: web's server span, api's child (its parent id crosses the wire as it would in W3C headers).
    for (const kind of ["slow", "error", "plain"] as const) {
      const root = tracers.web.getTracer("web").startSpan(`GET /checkout ${kind}`, { kind: SpanKind.SERVER, startTime: t0 });
      const child = tracers.api.getTracer("api").startSpan("charge card", { kind: SpanKind.SERVER, startTime: t0 + 2 }, trace.setSpan(context.active(), root));
      if (kind === "error") child.setStatus({ code: SpanStatusCode.ERROR, message: "card declined" });
      child.end(t0 + (kind === "slow" ? 240 : 12));
      root.end(t0 + (kind === "slow" ? 250 : 15));
      ids[kind] = root.spanContext().traceId;
      logs.getLogger("api").emit({
        severityNumber: kind === "error" ? SeverityNumber.ERROR : SeverityNumber.INFO,
        severityText: kind === "error" ? "ERROR" : "INFO",
        body: `charge ${kind}`,
        timestamp: t0 + 10 + Object.values(ids).filter(Boolean).length, // in order, one ms apart
        context: trace.setSpan(context.active(), child),
      });
    }
    await Promise.all([tracers.web.forceFlush(), tracers.api.forceFlush(), logs.forceFlush()]);
    await Promise.all([tracers.web.shutdown(), tracers.api.shutdown(), logs.shutdown()]);
    // Kept traces reach the stores after the keep rules' wait (5 s). Each agent decides on what it
    // saw: web keeps its slow root span; api keeps its slow span and its error span (the error
    // trace's web span was neither slow nor an error, and the keep share is 0).
    await waitFor("the kept spans stored", async () => (await agents[0]!.store.querySpans({ limit: 10 })).rows.length >= 1 && (await agents[1]!.store.querySpans({ limit: 10 })).rows.length >= 2, { timeoutMs: 60_000 });
  }, 240_000);

  afterAll(async () => {
    for (const a of agents) await a.close();
    await project?.[Symbol.asyncDispose]();
  });

  it("lists the kept spans from both agents: the slow trace whole, the error span, not the plain trace (keep share 0)", async () => {
    const r = await runCoral(["traces", "--json", ...remote]);
    expect(r.code, r.stderr).toBe(0);
    const { spans, unavailable } = JSON.parse(r.stdout) as { spans: SpanJson[]; unavailable: string[] };
    expect(unavailable).toEqual([]);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([ids.slow, ids.error]));
    expect(spans.map((s) => `${s.service}:${s.name}`).sort()).toEqual(["api:charge card", "api:charge card", "web:GET /checkout slow"]);
    const table = await runCoral(["traces", "--errors", ...remote], { env: { NO_COLOR: "1" } });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/charge card\s+10\.0 ms\s+error: card declined\s+[0-9a-f]{32}/);
    expect(table.stdout).not.toContain("GET /checkout slow");
  });

  it("filters at the agents: service, operation, minimum duration", async () => {
    const pick = async (args: string[]) => (JSON.parse((await runCoral(["traces", "--json", ...args, ...remote])).stdout) as { spans: SpanJson[] }).spans.map((s) => s.name).sort();
    expect(await pick(["--service", "web"])).toEqual(["GET /checkout slow"]);
    expect(await pick(["--operation", "CHARGE"])).toEqual(["charge card", "charge card"]);
    expect(await pick(["--min-duration", "200ms"])).toEqual(["GET /checkout slow", "charge card"]);
  });

  it("shows one trace as a waterfall across both services", async () => {
    const r = await runCoral(["traces", "show", ids.slow, ...remote], { env: { NO_COLOR: "1" } });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe(`trace ${ids.slow}: 2 spans, 2 services, 250 ms`);
    expect(lines[2]).toMatch(/^GET \/checkout slow\s+web\s+250 ms\s+█{40}/);
    expect(lines[3]).toMatch(/^ {2}charge card\s+api\s+238 ms\s+█{38}/);
    const missing = await runCoral(["traces", "show", "0".repeat(32), ...remote]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/No spans of this trace are kept/);
  });

  it("prints log records with severity and their trace; filters by severity, text and trace", async () => {
    const all = await runCoral(["logs", "--json", ...remote]);
    expect(all.code, all.stderr).toBe(0);
    const { records } = JSON.parse(all.stdout) as { records: { body: string; severity: string; traceId: string; service: string }[] };
    expect(records.map((l) => l.body)).toEqual(["charge slow", "charge error", "charge plain"]);
    expect(records.every((l) => l.service === "api")).toBe(true);
    const errors = await runCoral(["logs", "--severity", "error", ...remote], { env: { NO_COLOR: "1" } });
    expect(errors.stdout.trim()).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d\\.\\d{3}  ERROR  api  charge error  trace=${ids.error}$`));
    const byTrace = JSON.parse((await runCoral(["logs", "--json", "--trace", ids.plain, ...remote])).stdout) as { records: { body: string }[] };
    expect(byTrace.records.map((l) => l.body)).toEqual(["charge plain"]);
    const grep = JSON.parse((await runCoral(["logs", "--json", "--grep", "SLOW", ...remote])).stdout) as { records: { body: string }[] };
    expect(grep.records.map((l) => l.body)).toEqual(["charge slow"]);
  });

  it("refuses bad flags with exit code 2 and says what is allowed", async () => {
    const dur = await runCoral(["traces", "--min-duration", "fast", ...remote]);
    expect(dur.code).toBe(2);
    expect(dur.stderr).toMatch(/must be a duration such as 200ms/);
    const sev = await runCoral(["logs", "--severity", "loud", ...remote]);
    expect(sev.code).toBe(2);
    expect(sev.stderr).toMatch(/must be one of trace, debug, info, warn, error, fatal/);
    const id = await runCoral(["traces", "show", "xyz", ...remote]);
    expect(id.code).toBe(2);
    expect(id.stderr).toMatch(/32 hex digits/);
  });
});
