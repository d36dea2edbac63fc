// OpenTelemetry end to end: OpenTelemetry's own JavaScript SDK and OTLP
// exporters (a real third-party client) send traces and logs to two agents'
// OTLP endpoints; the agents keep them by their tail rules, and an error or
// slow span one agent sees keeps the whole trace at both: that agent reports
// the trace to the real colony at once, which tells the other agent (never
// the reporter) to keep its spans of it, here web's fast span of the error
// trace; a fast trace without errors is kept by neither. A report without
// the agent's token is refused; an agent takes keep calls signed by the
// colony only, of at most 1000 ids of 32 hex digits. `coral traces`,
// `coral traces show` and `coral logs` (the built CLI) read them through a
// real colony, the filters running at the agents. Bad flags are refused
// with exit code 2 before anything is asked. The same data through
// `coral mcp server` (the MCP SDK's client over stdio): coral_query_traces,
// coral_get_trace and coral_query_logs.
import { context, trace, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPTraceExporter as GrpcTraceExporter } from "@opentelemetry/exporter-trace-otlp-grpc";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { colonyCallHeader } from "@coral/proto";
import { AgentService } from "@coral/proto/gen/coral/agent/v1/agent_pb";
import { MeshService } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "@coral/agent";
import { testAgent } from "../helpers/agents.ts";
import { runCoral } from "../helpers/cli.ts";
import { createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { callTool, stdioClient, type McpEnv } from "../mcp/helpers.ts";
import { colonySigned } from "../security/agent-harness.ts";

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
  let colonyUrl = "";
  let where: McpEnv;
  const ids = { slow: "", error: "", plain: "" };

  beforeAll(async () => {
    project = await createTestProject();
    const colony = await project.start();
    colonyUrl = colony.url;
    remote = ["--colony-url", colony.url, "--token", project.localToken];
    where = { cwd: project.dir, env: { CORAL_HOME: project.home, CORAL_API_PORT: String(new URL(colony.url).port) } };
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
    // Kept traces reach the stores after the keep rules' wait (5 s), or as soon as the other agent's
    // report arrives through the colony. web keeps its slow root span and, told by api, its fast span
    // of the error trace; api keeps its slow span and its error span; the plain trace is decided
    // (nothing waits) and kept by neither (keep share 0).
    await waitFor(
      "the kept spans stored and every trace decided",
      async () => {
        const [w, a] = agents.map((x) => x.otlp()!.ingest.sampler);
        return (
          w!.buffered === 0 &&
          a!.buffered === 0 &&
          (await agents[0]!.store.querySpans({ limit: 10 })).rows.length >= 2 &&
          (await agents[1]!.store.querySpans({ limit: 10 })).rows.length >= 2
        );
      },
      { timeoutMs: 60_000 },
    );
  }, 240_000);

  afterAll(async () => {
    for (const a of agents) await a.close();
    await project?.[Symbol.asyncDispose]();
  });

  it("lists the kept spans from both agents: the slow and error traces whole, not the plain trace (keep share 0)", async () => {
    const r = await runCoral(["traces", "--json", ...remote]);
    expect(r.code, r.stderr).toBe(0);
    const { spans, unavailable } = JSON.parse(r.stdout) as { spans: SpanJson[]; unavailable: string[] };
    expect(unavailable).toEqual([]);
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([ids.slow, ids.error]));
    expect(spans.map((s) => `${s.service}:${s.name}`).sort()).toEqual(["api:charge card", "api:charge card", "web:GET /checkout error", "web:GET /checkout slow"]);
    const table = await runCoral(["traces", "--errors", ...remote], { env: { NO_COLOR: "1" } });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/charge card\s+10\.0 ms\s+error: card declined\s+[0-9a-f]{32}/);
    expect(table.stdout).not.toContain("GET /checkout slow");
  });

  it("filters at the agents: service, operation, minimum duration", async () => {
    const pick = async (args: string[]) => (JSON.parse((await runCoral(["traces", "--json", ...args, ...remote])).stdout) as { spans: SpanJson[] }).spans.map((s) => s.name).sort();
    expect(await pick(["--service", "web"])).toEqual(["GET /checkout error", "GET /checkout slow"]);
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

  it("keeps an error trace whole across agents: web keeps its fast span because api saw the error; a fast trace is kept nowhere", async () => {
    const r = await runCoral(["traces", "show", ids.error, ...remote], { env: { NO_COLOR: "1" } });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe(`trace ${ids.error}: 2 spans, 2 services, 15.0 ms`);
    expect(lines[2]).toMatch(/^GET \/checkout error\s+web\s+15\.0 ms\s+█{40}/);
    expect(lines[3]).toMatch(/^ {2}charge card\s+api\s+10\.0 ms\s+ {5}█{27}.*card declined/);
    const plain = await runCoral(["traces", "show", ids.plain, ...remote]);
    expect(plain.code).toBe(1);
    expect(plain.stdout).toMatch(/No spans of this trace are kept/);
    for (const a of agents) expect((await a.store.querySpans({ traceId: ids.plain, limit: 10 })).rows).toEqual([]);

    // Each agent reported what it kept for itself (web: the slow trace; api: the slow and the error
    // trace) and was told only what the other reported: nothing echoed back to its sender.
    const [web, api] = agents.map((a) => a.otlp()!);
    await waitFor("both reports passed on", () => web!.ingest.sampler.told === 2 && api!.ingest.sampler.told === 1);
    expect(web!.keepReports).toEqual({ sent: 1, calls: 1, failed: 0, dropped: 0, queued: 0 });
    expect(api!.keepReports).toMatchObject({ sent: 2, failed: 0, dropped: 0, queued: 0 });
    expect(web!.ingest.sampler).toMatchObject({ received: 3, kept: 2, dropped: 1, reported: 1, told: 2, keptForOthers: 1 });
    expect(api!.ingest.sampler).toMatchObject({ received: 3, kept: 2, dropped: 1, reported: 2, told: 1, keptForOthers: 0 });
  });

  it("takes keep reports from agents only and keep calls from the colony only, at most 1000 ids of 32 hex digits", async () => {
    const web = agents[0]!;
    const failure = (p: Promise<unknown>) => p.then(() => undefined, (err: unknown) => ConnectError.from(err));
    // An agent's report needs its own agent token.
    const mesh = createClient(MeshService, createConnectTransport({ baseUrl: colonyUrl, httpVersion: "1.1" }));
    expect((await failure(mesh.reportKeptTraces({ agentId: web.agentId, traceIds: [ids.plain] })))?.code).toBe(Code.Unauthenticated);

    // The colony's call to an agent: signed with the colony's key, as the colony signs it.
    const asColony: Interceptor = (next) => async (req) => {
      if (req.stream) throw new Error("unary calls only");
      req.header.set(colonyCallHeader, await colonySigned(project!.colonyKey, web.agentId, `/${req.service.typeName}/${req.method.name}`, toBinary(req.method.input, req.message)));
      return next(req);
    };
    const signed = createClient(AgentService, createConnectTransport({ baseUrl: web.apiUrl, httpVersion: "1.1", interceptors: [asColony] }));
    const stranger = createClient(AgentService, createConnectTransport({ baseUrl: web.apiUrl, httpVersion: "1.1" }));
    const told = web.otlp()!.ingest.sampler.told;
    expect((await failure(stranger.keepTraces({ traceIds: [ids.plain] })))?.code).toBe(Code.Unauthenticated);
    const bad = await failure(signed.keepTraces({ traceIds: [ids.plain, "xyz"] }));
    expect([bad?.code, bad?.rawMessage]).toEqual([Code.InvalidArgument, 'trace_ids[1]: "xyz" must be a trace id: 32 lowercase hex digits']);
    const many = await failure(signed.keepTraces({ traceIds: Array<string>(1001).fill(ids.plain) }));
    expect([many?.code, many?.rawMessage]).toEqual([Code.InvalidArgument, "trace_ids: at most 1000 per call (got 1001)"]);
    expect(web.otlp()!.ingest.sampler.told).toBe(told);
    // A good one is taken (nothing of that trace waits here, so no span is kept now).
    expect((await signed.keepTraces({ traceIds: ["ab".repeat(16)] })).spansKept).toBe(0);
    expect(web.otlp()!.ingest.sampler.told).toBe(told + 1);
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

  it("answers the MCP tools with the same spans, trace tree and log records, and refuses bad arguments with what is allowed", async () => {
    const { client } = await stdioClient(where);
    const call = (name: string, args: Record<string, unknown>) => callTool(client, name, args);
    const spanLines = (text: string) => text.split("\n").filter((l) => l.startsWith("- ")).map((l) => l.replace(/^- \S+Z /, ""));
    try {
      const all = await call("coral_query_traces", {});
      expect(all.isError, all.text).toBe(false);
      expect(all.text).toMatch(/^Spans \S+Z → \S+Z: 4 found, newest first\.\n2 trace\(s\), 1 error span\(s\), slowest 250 ms\.\n/);
      expect(spanLines(all.text).sort()).toEqual(
        [
          `api "charge card" 10.0 ms error: card declined trace=${ids.error}`,
          `api "charge card" 238 ms ok trace=${ids.slow}`,
          `web "GET /checkout error" 15.0 ms ok trace=${ids.error}`,
          `web "GET /checkout slow" 250 ms ok trace=${ids.slow}`,
        ].sort(),
      );
      expect(spanLines((await call("coral_query_traces", { errors_only: true })).text)).toEqual([`api "charge card" 10.0 ms error: card declined trace=${ids.error}`]);
      expect(spanLines((await call("coral_query_traces", { min_duration_ms: 200 })).text).sort()).toEqual([`api "charge card" 238 ms ok trace=${ids.slow}`, `web "GET /checkout slow" 250 ms ok trace=${ids.slow}`]);
      expect(spanLines((await call("coral_query_traces", { service: "web", operation: "CHECKOUT" })).text).sort()).toEqual([
        `web "GET /checkout error" 15.0 ms ok trace=${ids.error}`,
        `web "GET /checkout slow" 250 ms ok trace=${ids.slow}`,
      ]);
      expect((await call("coral_query_traces", { operation: "nothing-like-this" })).text).toMatch(/: 0 found, newest first\.\nNone kept that match\./);

      // Upper case is read as the same id; the tree puts api's span under web's, 2 ms into the trace.
      const tree = await call("coral_get_trace", { trace_id: ids.slow.toUpperCase() });
      expect(tree.isError, tree.text).toBe(false);
      expect(tree.text.split("\n")).toEqual([
        expect.stringMatching(new RegExp(`^Trace ${ids.slow}: 2 span\\(s\\), 2 service\\(s\\), 250 ms from \\S+Z\\. Tree`)),
        "- GET /checkout slow [web] +0.00 ms, 250 ms",
        "  - charge card [api] +2.00 ms, 238 ms",
      ]);
      const failed = await call("coral_get_trace", { trace_id: ids.error });
      // The error trace whole: web's fast span (kept because api saw the error) above api's error span.
      expect(failed.text.split("\n")).toEqual([
        expect.stringMatching(new RegExp(`^Trace ${ids.error}: 2 span\\(s\\), 2 service\\(s\\), 15\\.0 ms from \\S+Z, 1 error span\\(s\\)\\. Tree`)),
        "- GET /checkout error [web] +0.00 ms, 15.0 ms",
        "  - charge card [api] +2.00 ms, 10.0 ms, error: card declined",
      ]);
      expect((await call("coral_get_trace", { trace_id: "0".repeat(32) })).text).toMatch(/^Trace 0{32}: no spans kept/);

      const logs = await call("coral_query_logs", {});
      expect(logs.isError, logs.text).toBe(false);
      expect(logs.text).toMatch(/^Log records \S+Z → \S+Z: 3 found, newest first\.\nBy severity: INFO 2, ERROR 1\.\n/);
      expect(spanLines(logs.text)).toEqual([`INFO api charge plain trace=${ids.plain}`, `ERROR api charge error trace=${ids.error}`, `INFO api charge slow trace=${ids.slow}`]);
      expect(spanLines((await call("coral_query_logs", { severity: "error" })).text)).toEqual([`ERROR api charge error trace=${ids.error}`]);
      expect(spanLines((await call("coral_query_logs", { trace_id: ids.plain, service: "api" })).text)).toEqual([`INFO api charge plain trace=${ids.plain}`]);
      expect(spanLines((await call("coral_query_logs", { grep: "SLOW" })).text)).toEqual([`INFO api charge slow trace=${ids.slow}`]);

      const refused: [string, Record<string, unknown>, RegExp][] = [
        ["coral_query_logs", { severity: "loud" }, /Must be one of trace, debug, info, warn, error, fatal/],
        ["coral_query_logs", { trace_id: "xyz" }, /must be 32 hex digits, got "xyz"/],
        ["coral_query_logs", { level: "error" }, /unknown argument "level" \(accepted: service, severity, grep, trace_id, since, until, limit\)/],
        ["coral_get_trace", { trace_id: "xyz" }, /Must be a trace id: 32 hex digits/],
        ["coral_query_traces", { min_duration_ms: 90_000_000 }, /must be from 0 to 86400000 ms \(a day\), got 90000000/],
        ["coral_query_traces", { since: "1h", until: "2h" }, /must be before until/],
        ["coral_query_logs", { since: "0001-01-01T00:00:00Z" }, /must be a time from 1970 to 9999/],
      ];
      for (const [name, args, message] of refused) {
        const r = await call(name, args);
        expect(r.isError, `${name} ${JSON.stringify(args)}: ${r.text}`).toBe(true);
        expect(r.text).toMatch(message);
      }
    } finally {
      await client.close();
    }
  }, 120_000);

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
