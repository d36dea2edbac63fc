// The dashboard in a real browser (Debian's Chromium through playwright-core)
// against a real colony (DuckDB, nats-server, Connect API) with synthetic
// agents speaking the real wire format: sign-in, the views showing what the
// API returns, a live update, a read-only session refused an admin action,
// and no console errors. Takes a screenshot (docs/dashboard.png for the README with CORAL_UPDATE_SCREENSHOT=1).
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { HealthStatus } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { formatBytes, formatPercent } from "@coral/dashboard/logic";
import type { RunningColony } from "@coral/colony";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyApi, createTestProject, type TestProject } from "../helpers/colony.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";
import { chromiumPath, signInLink, tcpRelay } from "./helpers.ts";

let project: TestProject;
let colony: RunningColony;
let browser: Browser;
let admin: BrowserContext;
const agents: SyntheticAgent[] = [];
/** Console errors and uncaught exceptions of every signed-in page. */
const problems: string[] = [];
const minute = (offset: number) => timestampFromDate(new Date(Math.floor(Date.now() / 60_000) * 60_000 - offset * 60_000));
const timeout = 30_000;

function watch(page: Page): Page {
  page.on("console", (msg) => {
    if (msg.type() === "error") problems.push(`${page.url()}: ${msg.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`${page.url()}: ${err.message}`));
  return page;
}

/** A browser context signed in through a one-time link of `coral dashboard`. */
async function signedIn(remote?: { colonyUrl: string; token: string }, watched = true): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  if (watched) watch(page);
  const link = await signInLink(project, remote);
  await page.goto(link.url);
  await page.getByTestId("session").waitFor({ timeout });
  return { context, page };
}

beforeAll(async () => {
  project = await createTestProject();
  colony = await project.start();
  const agent = (agentId: string, serviceName: string, port: number, version: string) => {
    const a = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId, serviceName, port, version });
    agents.push(a);
    return a;
  };
  const frontend = agent("frontend-1", "frontend", 3000, "1.4.0");
  const api = agent("api-1", "api", 3001, "2.1.0");
  await frontend.register();
  await api.register();
  await frontend.heartbeat(HealthStatus.HEALTHY);
  await api.heartbeat(HealthStatus.HEALTHY, { restartCount: 2 });
  await frontend.publish({
    metrics: [0, 1, 2].map((i) => ({ timestamp: minute(i + 1), metricName: "cpu_percent", interval: "1m", p50: 10 + i, p95: 20, p99: 30, mean: 11 + i, max: 40, min: 1, count: 60n })),
    events: [{ eventId: "e-restart", timestamp: timestampFromDate(new Date()), eventType: "restart", detailsJson: '{"pid":42,"reason":"exit 1"}' }],
    connections: [{ localAddr: "127.0.0.1:51000", remoteAddr: "127.0.0.1:3001", state: "ESTABLISHED", observedAt: timestampFromDate(new Date()), count: 3 }],
  });
  const client = colonyApi(colony.url, project.localToken);
  await waitFor("the telemetry to be stored", async () => (await client.getTopology({})).edges.length === 1 && (await client.queryEvents({ eventType: "restart" })).events.length === 1);
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"], headless: true });
  admin = (await signedIn()).context;
});

afterAll(async () => {
  await browser?.close();
  for (const a of agents) await a[Symbol.asyncDispose]();
  await project?.[Symbol.asyncDispose]();
});

describe("dashboard in Chromium", () => {
  it("signs in with the link of `coral dashboard`; the same link again is refused; without a cookie there is no data", async () => {
    const page = admin.pages()[0]!;
    // Signed in, the code is gone from the address bar.
    expect(page.url()).toBe(`${colony.url}/`);
    expect(await page.getByTestId("session").textContent()).toBe("local · admin");

    const link = await signInLink(project);
    const stranger = await browser.newContext();
    try {
      const other = await stranger.newPage();
      await other.goto(`${colony.url}/`);
      await other.getByTestId("signed-out").waitFor({ timeout });
      await other.goto(link.url);
      await other.getByTestId("session").waitFor({ timeout }); // first use: signed in
      const replay = await (await browser.newContext()).newPage();
      await replay.goto(link.url);
      await replay.getByTestId("sign-in-error").waitFor({ timeout });
      expect(await replay.getByTestId("sign-in-error").textContent()).toContain("already used");
      // No cookie: the API gives nothing, even with the page's own header.
      const answer = await replay.evaluate(async () => {
        const res = await fetch("/coral.colony.v1.ColonyService/GetStatus", { method: "POST", headers: { "content-type": "application/json", "x-coral-csrf": "1" }, body: "{}" });
        return { status: res.status, body: await res.text() };
      });
      expect(answer.status).toBe(401);
      expect(answer.body).not.toContain("frontend");
      await replay.context().close();
    } finally {
      await stranger.close();
    }
  });

  it("shows every component with the values GetStatus returns, live, and takes the README's screenshot", async () => {
    const page = admin.pages()[0]!;
    await page.goto(`${colony.url}/`);
    const status = await colonyApi(colony.url, project.localToken).getStatus({});
    for (const s of status.services) {
      const row = page.locator(`tr[data-agent="${s.agentId}"]`);
      await row.waitFor({ timeout });
      const cell = (field: string) => row.locator(`[data-field="${field}"]`).textContent();
      expect(await cell("name")).toBe(s.name);
      expect(await cell("status")).toBe(s.status);
      expect(await cell("health")).toBe(s.health);
      expect(await cell("version")).toBe(s.version);
      expect(await cell("restarts")).toBe(String(s.restartCount));
      expect(await cell("cpu")).toBe(formatPercent(s.cpuPercent));
      expect(await cell("memory")).toBe(formatBytes(s.memoryBytes));
      expect(await cell("insights")).toBe("0");
    }
    expect(status.services.map((s) => s.name)).toEqual(["api", "frontend"]);
    expect(await page.locator('tr[data-service="api"] [data-field="restarts"]').textContent()).toBe("2");
    expect(await page.getByTestId("insight-count").textContent()).toBe(String(status.insightCount));
    expect(await page.getByTestId("live-state").getAttribute("data-state")).toBe("live");

    // Live: the colony stores a health change and a new component; the page shows both without reloading.
    const health = page.locator('tr[data-service="frontend"] [data-field="health"]');
    const stored = Date.now();
    await agents[0]!.heartbeat(HealthStatus.UNHEALTHY);
    await page.waitForFunction((el) => el?.textContent === "unhealthy", await health.elementHandle(), { timeout });
    const latency = Date.now() - stored;
    expect(latency).toBeLessThan(5000); // pushed about every second; generous on a shared machine
    const store = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "store-1", serviceName: "store", port: 3002, version: "0.9.1" });
    agents.push(store);
    await store.register();
    await store.heartbeat(HealthStatus.HEALTHY);
    await page.locator('tr[data-service="store"] [data-field="version"]').filter({ hasText: "0.9.1" }).waitFor({ timeout });
    await agents[0]!.heartbeat(HealthStatus.HEALTHY);
    await page.waitForFunction((el) => el?.textContent === "healthy", await health.elementHandle(), { timeout });

    // CORAL_UPDATE_SCREENSHOT=1 refreshes the README's picture; otherwise a test run leaves the checkout alone.
    const docs = process.env.CORAL_UPDATE_SCREENSHOT === "1" ? join(import.meta.dirname, "../../docs") : join(tmpdir(), "coral-dashboard-shot");
    await mkdir(docs, { recursive: true });
    await page.screenshot({ path: join(docs, "dashboard.png") });
  });

  it("draws the topology, a component's charts and events, and the events and insights lists", async () => {
    const page = admin.pages()[0]!;
    await page.getByRole("link", { name: "Topology" }).click();
    await page.locator('[data-testid="topology"][data-nodes="3"][data-edges="1"]').waitFor({ timeout });
    expect(page.url()).toBe(`${colony.url}/topology`);

    await page.goto(`${colony.url}/components/frontend?range=1h`);
    const chart = page.locator('figure[data-metric="cpu_percent"]');
    await chart.waitFor({ timeout });
    expect(await chart.getAttribute("data-points")).toBe("3");
    await page.locator("canvas").first().waitFor({ timeout }); // uPlot drew it
    await page.locator('tr[data-event="e-restart"]').waitFor({ timeout });
    expect(await page.locator('tr[data-event="e-restart"] td.details').textContent()).toBe("pid=42 reason=exit 1");

    await page.goto(`${colony.url}/events?service=frontend`);
    await page.locator('tr[data-event="e-restart"] [data-field="type"]').filter({ hasText: "restart" }).waitFor({ timeout });
    // Live: a new event shows in the open list.
    await agents[1]!.publish({ events: [{ eventId: "e-health", timestamp: timestampFromDate(new Date()), eventType: "health_changed", detailsJson: '{"to":"degraded"}' }] });
    await page.goto(`${colony.url}/events`);
    await page.locator('tr[data-event="e-health"]').waitFor({ timeout });

    await page.goto(`${colony.url}/insights`);
    await page.getByTestId("no-insights").waitFor({ timeout });
  });

  it("refuses an admin action to a read-only session, and lets an admin session through", async () => {
    const { token } = await colonyApi(colony.url, project.localToken).createToken({ name: "viewer", scope: TokenScope.READ });
    // Not watched for console errors: the refusals below are logged by the browser, as they should be.
    const { context, page } = await signedIn({ colonyUrl: colony.url, token }, false);
    try {
      expect(await page.getByTestId("session").textContent()).toBe("viewer · read");
      await page.locator('tr[data-service="api"]').waitFor({ timeout }); // reading works
      const dismiss = (p: Page) =>
        p.evaluate(async () => {
          const res = await fetch("/coral.colony.v1.ColonyService/DismissInsight", { method: "POST", headers: { "content-type": "application/json", "x-coral-csrf": "1" }, body: '{"id":"999"}' });
          return { status: res.status, body: (await res.json()) as { code: string; message: string } };
        });
      const refused = await dismiss(page);
      expect(refused.status).toBe(403);
      expect(refused.body.code).toBe("permission_denied");
      const adminPage = await admin.newPage();
      await adminPage.goto(`${colony.url}/insights`);
      const allowed = await dismiss(adminPage);
      expect(allowed.body.code).toBe("not_found"); // past the scope check: there is no insight 999
      await adminPage.close();
    } finally {
      await context.close();
    }
  });

  it("says when the live connection is lost and when it is back, and catches up", async () => {
    const relay = await tcpRelay(colony.url);
    const context = await browser.newContext();
    try {
      // Not watched: the browser rightly logs the refused reconnections during the outage.
      const page = await context.newPage();
      const link = await signInLink(project);
      await page.goto(link.url.replace(colony.url, relay.url));
      const state = page.getByTestId("live-state");
      await page.locator('[data-testid="live-state"][data-state="live"]').waitFor({ timeout });
      await relay.cut();
      await page.locator('[data-testid="live-state"][data-state="lost"]').waitFor({ timeout });
      expect(await state.textContent()).toContain("connection lost");
      // What the colony stores during the outage shows once the connection is back.
      await agents[1]!.heartbeat(HealthStatus.DEGRADED, { restartCount: 2 });
      await relay.restore();
      await page.locator('[data-testid="live-state"][data-state="live"]').waitFor({ timeout });
      await page.locator('tr[data-service="api"] [data-field="health"]').filter({ hasText: "degraded" }).waitFor({ timeout });
    } finally {
      await context.close();
      await relay.close();
    }
  });

  it("logged no console errors on the signed-in pages", () => {
    expect(problems).toEqual([]);
  });
});
