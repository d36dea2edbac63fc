// OTLP attributed by the sending process, through a real agent: the app is
// a real process that the agent observes (it listens on the service's
// port) and that exports with OpenTelemetry's own JavaScript SDK and OTLP
// exporters, its resource naming no service (the SDK's default,
// unknown_service:node). The agent finds the sender of each loopback
// connection among its service's processes, so the spans and log records
// are stored as the service's, with the app's pid.
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningAgent } from "@coral/agent";
import { testAgent } from "../helpers/agents.ts";
import { createTestProject, type TestProject } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";

const repo = fileURLToPath(new URL("../..", import.meta.url));

// Serves APP_PORT; GET /send?otlp=<url> exports one span (OTLP/HTTP protobuf) and one log record (OTLP/HTTP JSON), then answers.
const app = `
import { createServer } from "node:http";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
createServer(async (req, res) => {
  const otlp = new URL(req.url, "http://x").searchParams.get("otlp");
  if (!otlp) return void res.end("ok");
  const traces = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: otlp + "/v1/traces" }))] });
  const logs = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url: otlp + "/v1/logs" }) })] });
  traces.getTracer("app").startSpan("GET /cart").end();
  logs.getLogger("app").emit({ body: "cart shown" });
  await Promise.all([traces.forceFlush(), logs.forceFlush()]);
  await Promise.all([traces.shutdown(), logs.shutdown()]);
  res.end("sent");
}).listen(Number(process.env.APP_PORT), "127.0.0.1");
`;

describe("an observed app's OTLP without service.name is its service's", () => {
  let project: TestProject | undefined;
  let agent: RunningAgent | undefined;
  let child: ChildProcess | undefined;
  let appPort = 0;

  beforeAll(async () => {
    project = await createTestProject();
    const colony = await project.start();
    appPort = await freePort();
    child = spawn(process.execPath, ["--input-type=module", "-e", app], { cwd: repo, argv0: "node", env: { ...process.env, APP_PORT: String(appPort) }, stdio: "ignore" });
    let observing = 0;
    agent = await testAgent(project, colony.url, "cart", appPort, {
      healthUrl: undefined,
      otlp: { httpPort: 0, grpcPort: null, keepShare: 1 },
      onNotice: (n) => void (n.kind === "observing" && (observing = n.pid)),
    });
    await waitFor("the agent to observe the app", () => observing === child!.pid, { timeoutMs: 60_000 });
  }, 120_000);

  afterAll(async () => {
    child?.kill();
    await agent?.close();
    await project?.[Symbol.asyncDispose]();
  });

  it("stores the app's spans and log records under the service, with the app's pid", { timeout: 120_000 }, async () => {
    const otlp = `http://127.0.0.1:${agent!.otlp()!.httpPort}`;
    const sent = await fetch(`http://127.0.0.1:${appPort}/send?otlp=${encodeURIComponent(otlp)}`);
    expect(await sent.text()).toBe("sent");
    const stored = await waitFor(
      "the span and the log record stored",
      async () => {
        const spans = (await agent!.store.querySpans({ limit: 10 })).rows;
        const logs = (await agent!.store.queryLogs({ limit: 10 })).rows;
        return spans.length > 0 && logs.length > 0 ? { spans, logs } : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(stored.spans.map((s) => ({ name: s.name, service: s.service, pid: s.pid }))).toEqual([{ name: "GET /cart", service: "cart", pid: child!.pid }]);
    expect(stored.logs.map((l) => ({ body: l.body, service: l.service, pid: l.pid }))).toEqual([{ body: "cart shown", service: "cart", pid: child!.pid }]);
    const status = agent!.otlp()!;
    expect(status.ingest.attributedByProcess).toBe(2);
    expect(status.senders).toMatchObject({ foundObserved: 2, notFound: 0 });
  });
});
