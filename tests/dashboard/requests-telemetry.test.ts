// The dashboard's Requests, Sampled requests, Traces and Logs views in a real
// browser (Debian's Chromium through playwright-core), against real parts: a
// Node app using the Coral SDK's request middleware (tests/requests/
// traffic-app.ts), a real agent that drains it and receives OpenTelemetry
// from OpenTelemetry's own JavaScript SDK and OTLP exporter, and a real
// colony. Each view must show the values the API returns: RED per route with
// exact counts, a sample with its secrets redacted, the error trace as a
// waterfall across its spans, and the trace's log record.
import type { ChildProcess } from "node:child_process";
import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { context, trace, SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { SeverityNumber } from "@opentelemetry/api-logs";
import { OTLPLogExporter } from "@opentelemetry/exporter-logs-otlp-http";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { LoggerProvider, SimpleLogRecordProcessor } from "@opentelemetry/sdk-logs";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import type { RunningAgent } from "@coral/agent";
import type { RunningColony } from "@coral/colony";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { testAgent } from "../helpers/agents.ts";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { waitFor } from "../helpers/wait.ts";
import { startTrafficApp } from "../requests/start-traffic-app.ts";
import { chromiumPath, haveChromium, signInLink } from "./helpers.ts";

const timeout = 30_000;
const service = "shop-api";

function get(port: number, path: string, agent: http.Agent, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, path, agent, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end();
  });
}

describe.skipIf(!haveChromium)("dashboard: requests, sampled requests, traces and logs in Chromium", () => {
  let project: TestProject | undefined;
  let colony: RunningColony;
  let agent: RunningAgent | undefined;
  let app: ChildProcess | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let dir = "";
  let errorTrace = "";
  const problems: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "coral-dash-requests-"));
    const started = await startTrafficApp(service, dir);
    app = started.app;
    const { announce } = started;
    const ready = { ports: started.ports };
    project = await createTestProject();
    colony = await project.start();
    agent = await testAgent(project, colony.url, service, ready.ports.http, {
      healthUrl: undefined,
      sdkAnnounceDir: announce,
      httpTracing: false,
      otlp: { httpPort: 0, grpcPort: 0, keepShare: 0, slowMs: 100 },
    });
    await waitFor("the agent to reach the SDK's middleware", () => agent!.traffic().sampleRate === 0.1 && agent!.traffic().sdkInstrumented, { timeoutMs: 60_000 });

    // 20 requests to /users/{id} (the SDK keeps every tenth), 2 that fail with 500 (always kept), one with a secret header.
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 1; i <= 20; i++) expect(await get(ready.ports.http, `/users/${i}`, keepAlive, { authorization: "Bearer s3cret-token" })).toBe(200);
      for (let i = 0; i < 2; i++) expect(await get(ready.ports.http, "/boom", keepAlive)).toBe(500);
    } finally {
      keepAlive.destroy();
    }

    // One error trace (a server span and its failing child) and its log record, through OpenTelemetry's SDK to the agent's OTLP/HTTP endpoint.
    const otlp = agent.otlp()!;
    const tracer = new BasicTracerProvider({
      resource: resourceFromAttributes({ "service.name": service }),
      spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `http://127.0.0.1:${otlp.httpPort}/v1/traces` }))],
    });
    const logs = new LoggerProvider({
      resource: resourceFromAttributes({ "service.name": service }),
      processors: [new SimpleLogRecordProcessor({ exporter: new OTLPLogExporter({ url: `http://127.0.0.1:${otlp.httpPort}/v1/logs` }) })],
    });
    const t0 = Date.now() - 3000;
    const root = tracer.getTracer("shop").startSpan("POST /checkout", { kind: SpanKind.SERVER, startTime: t0 });
    const child = tracer.getTracer("shop").startSpan("charge card", { startTime: t0 + 5 }, trace.setSpan(context.active(), root));
    child.setStatus({ code: SpanStatusCode.ERROR, message: "card declined" });
    child.end(t0 + 40);
    root.setStatus({ code: SpanStatusCode.ERROR, message: "checkout failed" });
    root.end(t0 + 50);
    errorTrace = root.spanContext().traceId;
    logs.getLogger("shop").emit({ severityNumber: SeverityNumber.ERROR, severityText: "ERROR", body: "payment backend said no", timestamp: t0 + 20, context: trace.setSpan(context.active(), child) });
    await Promise.all([tracer.forceFlush(), logs.forceFlush()]);
    await Promise.all([tracer.shutdown(), logs.shutdown()]);

    const api = colonyApi(colony.url, project.localToken);
    await waitFor(
      "the requests summarised in the colony, the trace and log kept",
      async () => {
        const metrics = await api.queryMetrics({ service });
        const counted = metrics.series.filter((s) => s.metricName.startsWith("http_request_duration_ms:")).reduce((n, s) => n + s.points.reduce((m, p) => m + Number(p.count), 0), 0);
        const spans = (await api.queryTraces({ filter: { traceId: errorTrace, limit: 10 } })).spans.length;
        const records = (await api.queryLogs({ filter: { traceId: errorTrace, limit: 10 } })).records.length;
        return counted >= 22 && spans === 2 && records === 1;
      },
      { timeoutMs: 120_000, intervalMs: 1000 },
    );

    browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"], headless: true });
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await ctx.newPage();
    page.on("console", (msg) => {
      if (msg.type() === "error") problems.push(`${page.url()}: ${msg.text()}`);
    });
    page.on("pageerror", (err) => problems.push(`${page.url()}: ${err.message}`));
    await page.goto((await signInLink(project)).url);
    await page.getByTestId("session").waitFor({ timeout });
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await agent?.close();
    await project?.[Symbol.asyncDispose]();
    app?.kill("SIGKILL");
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("shows RED per route with exact counts, and no chart per route among the metrics", async () => {
    await page.goto(`${colony.url}/components/${service}?range=15m`);
    const users = page.locator('[data-testid="requests"] tr[data-route="GET /users/{id}"]');
    await users.waitFor({ timeout });
    expect(await users.locator('[data-field="requests"]').textContent()).toBe("20");
    const boom = page.locator('[data-testid="requests"] tr[data-route="GET /boom"]');
    expect(await boom.locator('[data-field="requests"]').textContent()).toBe("2");
    expect(await boom.locator('[data-field="5xx"]').textContent()).toBe("2");
    // The three RED charts, and none of the per-route series as a metric chart of its own.
    for (const metric of ["requests_per_second", "errors_5xx_per_second", "latency_p95_ms"]) await page.locator(`[data-testid="requests"] figure[data-metric="${metric}"]`).waitFor({ timeout });
    expect(await page.locator('figure[data-metric^="http_request_duration_ms:"]').count()).toBe(0);
  });

  it("lists the sampled requests, filters them, and opens one with its secrets redacted", async () => {
    await page.goto(`${colony.url}/components/${service}`);
    // Closed until asked for (the samples come from the agent, through the mesh).
    expect(await page.locator('[data-testid="traffic"]').count()).toBe(0);
    await page.locator('[data-testid="sampled-requests"] summary').click();
    const rows = page.locator('[data-testid="traffic"] tr[data-sample]');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="traffic"] tr[data-sample]').length >= 4, undefined, { timeout });
    // Every tenth request (/users/10 and /users/20) and both 500s.
    const paths = (await rows.locator('[data-field="path"]').allTextContents()).sort();
    expect(paths).toEqual(["/boom", "/boom", "/users/10", "/users/20"]);
    await page.locator('[data-testid="traffic"] input[data-filter="status"]').fill("5xx");
    await page.locator('[data-testid="traffic"] input[data-filter="status"]').press("Enter");
    await page.waitForFunction(() => document.querySelectorAll('[data-testid="traffic"] tr[data-sample]').length === 2, undefined, { timeout });
    await page.locator('[data-testid="traffic"] input[data-filter="status"]').fill("");
    await page.locator('[data-testid="traffic"] input[data-filter="status"]').press("Enter");
    const tenth = page.locator('[data-testid="traffic"] tr[data-sample]', { hasText: "/users/10" });
    await tenth.waitFor({ timeout });
    await tenth.click();
    const detail = page.getByTestId("sample-detail");
    await detail.waitFor({ timeout });
    const text = (await detail.textContent()) ?? "";
    expect(text).toContain("GET /users/10");
    expect(text).toContain("[redacted]");
    expect(text).not.toContain("s3cret-token");
  });

  it("lists the error trace, opens its waterfall, and follows it to its log record", async () => {
    await page.goto(`${colony.url}/traces?errors=1&since=1h`);
    const link = page.locator(`[data-testid="spans"] a[href="/traces/${errorTrace}"]`).first();
    await link.waitFor({ timeout });
    await link.click();
    const waterfall = page.getByTestId("trace");
    await page.locator('[data-testid="trace"] tr[data-span]').nth(1).waitFor({ timeout });
    expect(await waterfall.getAttribute("data-trace")).toBe(errorTrace);
    const spans = await page.locator('[data-testid="trace"] tr[data-span]').evaluateAll((trs) => trs.map((tr) => [tr.getAttribute("data-depth"), tr.querySelector("td")?.textContent]));
    expect(spans).toEqual([
      ["0", "POST /checkout"],
      ["1", "charge card"],
    ]);
    await page.getByRole("link", { name: "logs of this trace" }).click();
    const body = page.locator('[data-testid="logs"] [data-field="body"]');
    await body.first().waitFor({ timeout });
    expect(await body.allTextContents()).toEqual(["payment backend said no"]);
    expect(await page.locator('[data-testid="logs"] [data-field="severity"]').allTextContents()).toEqual(["ERROR"]);
  });

  it("says what the filters refuse in the page, and raised no console errors", async () => {
    await page.goto(`${colony.url}/traces?min=fast`);
    await page.locator("p.error").waitFor({ timeout });
    expect(await page.locator("p.error").textContent()).toContain("write it as 200ms or 1.5s");
    await page.goto(`${colony.url}/logs?severity=error&since=1h`);
    await page.locator('[data-testid="logs"] [data-field="body"]').first().waitFor({ timeout });
    expect(await page.locator('[data-testid="logs"] [data-field="body"]').allTextContents()).toEqual(["payment backend said no"]);
    expect(problems).toEqual([]);
  });
});
