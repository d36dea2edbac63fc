// The dashboard's Debug view in a real browser (Debian's Chromium through
// playwright-core) against a real colony and a real agent tracing a real
// compiled C program with bpftrace: a session started from the page (with
// the CLI's limits checked first), its calls and latency histogram arriving
// live with the counts the API returns, stopped from the page, listed; a
// read-only session sees the form disabled and is refused the admin calls;
// no console errors.
import { tmpdir } from "node:os";
import { join } from "node:path";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { formatNs } from "@coral/dashboard/logic";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyApi } from "../helpers/colony.ts";
import { waitFor } from "../helpers/wait.ts";
import { bpfSkipReason, compilePayments, request, startObservedTarget, type ObservedTarget } from "../debug/helpers.ts";
import { chromiumPath, haveChromium, signInLink, tcpRelay } from "./helpers.ts";

const skip = bpfSkipReason() ?? (haveChromium ? undefined : `no Chromium at ${chromiumPath} (apt-get install -y chromium)`);
if (skip) console.log(`dashboard/debug.test: SKIPPING the Debug view in a browser: ${skip}`);

/** Generous: two shared cores run the colony, the agent, bpftrace and Chromium. */
const timeout = 60_000;

describe.skipIf(skip !== undefined)("the Debug view in Chromium", () => {
  let fixture: ObservedTarget | undefined;
  let browser: Browser | undefined;
  let admin: BrowserContext;
  /** Console errors and uncaught exceptions of the watched pages. */
  const problems: string[] = [];
  /** The session started from the page. */
  let started = "";

  /** Records the page's console errors until the returned function is called. */
  function watch(page: Page): () => void {
    let on = true;
    page.on("console", (msg) => {
      if (on && msg.type() === "error") problems.push(`${page.url()}: ${msg.text()}`);
    });
    page.on("pageerror", (err) => {
      if (on) problems.push(`${page.url()}: ${err.message}`);
    });
    return () => void (on = false);
  }

  async function signedIn(remote?: { colonyUrl: string; token: string }): Promise<{ context: BrowserContext; page: Page; unwatch: () => void }> {
    const context = await browser!.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const unwatch = watch(page);
    await page.goto((await signInLink(fixture!.project, remote)).url);
    await page.getByTestId("session").waitFor({ timeout });
    return { context, page, unwatch };
  }

  /** The page's calls counter (data-calls: the number, not its formatting). */
  const callsOnPage = async (page: Page) => Number(await page.getByTestId("debug-calls").getAttribute("data-calls"));

  beforeAll(async () => {
    fixture = await startObservedTarget(compilePayments(), "payments", { pattern: "validate" });
    browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"], headless: true });
    admin = (await signedIn()).context;
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await fixture?.[Symbol.asyncDispose]();
  });

  it("starts a session from the page with the CLI's limits, shows its calls and histogram live, and stops it", { timeout: 300_000 }, async () => {
    const { colony, api, port } = fixture!;
    const page = admin.pages()[0]!;
    await page.goto(`${colony.url}/debug`);
    const form = page.getByTestId("debug-start");
    await form.waitFor({ timeout });
    expect(await page.getByTestId("debug-start-submit").isEnabled()).toBe(true);

    // The component comes from the live status; the function's suggestions from ListFunctions.
    await page.locator('[data-testid="debug-service"] option[value="payments"]').waitFor({ state: "attached", timeout });
    await page.getByTestId("debug-service").selectOption("payments");
    await page.getByTestId("debug-function").fill("validate");
    await page.locator('#debug-functions option[value="validate_card"]').waitFor({ state: "attached", timeout });
    await page.getByTestId("debug-function").fill("validate_card");
    await page.getByTestId("debug-capture-args").fill("1");
    await page.getByTestId("debug-capture-return").check();
    await page.getByTestId("debug-slow").fill("1ms");

    // Over the CLI's limit: said beside the field, nothing sent.
    await page.getByTestId("debug-duration").fill("11m");
    await page.getByTestId("debug-start-submit").click();
    const durationError = page.locator('[data-error-for="duration"]');
    await durationError.waitFor({ timeout });
    expect(await durationError.textContent()).toBe("must be from 1s to 10m (the agent's hard limit)");
    expect((await api.listDebugSessions({})).sessions).toEqual([]);

    await page.getByTestId("debug-duration").fill("5m");
    await page.getByTestId("debug-start-submit").click();
    await page.waitForURL(/\/debug\/[a-z0-9-]+$/, { timeout });
    started = decodeURIComponent(new URL(page.url()).pathname.split("/").pop()!);
    const attached = (await api.getDebugSession({ sessionId: started })).session!;
    expect(attached).toMatchObject({ serviceName: "payments", functionName: "validate_card", durationMs: 300_000, captureArgs: 1, captureReturn: true, slowThresholdMs: 1, requestedBy: "dashboard:local" });
    expect(attached.pid).toBe(fixture!.target.pid);
    await page.locator('[data-testid="debug-state"][data-state="active"]').waitFor({ timeout });
    expect(await page.getByTestId("debug-facts").textContent()).toContain(`pid${attached.pid}`);

    // Live: calls driven now show on the open page, counter and histogram alike.
    await request(port, "12 20");
    await page.locator('[data-testid="debug-calls"][data-calls="12"]').waitFor({ timeout });
    await page.locator('[data-testid="debug-histogram"][data-total="12"] canvas').waitFor({ timeout });
    const rows = page.locator('[data-testid="debug-recent"] tbody tr');
    expect(await rows.count()).toBe(12);
    expect(await rows.first().locator("td").nth(4).textContent()).toBe("20"); // the argument
    expect(await rows.first().locator("td").nth(5).textContent()).toBe("40"); // the return value

    await request(port, "8 5");
    await page.locator('[data-testid="debug-calls"][data-calls="20"]').waitFor({ timeout });
    await page.locator('[data-testid="debug-histogram"][data-total="20"]').waitFor({ timeout });
    const events = await api.queryUprobeEvents({ sessionId: started, limit: 1000 });
    expect(events.events.filter((e) => e.type === "return")).toHaveLength(await callsOnPage(page));
    expect(events.session?.state).toBe("active");

    // Stop from the page: the API says completed, the page shows the outcome and the final summary.
    await page.getByTestId("debug-stop").click();
    await page.locator('[data-testid="debug-state"][data-state="completed"]').waitFor({ timeout });
    await page.getByTestId("debug-summary").waitFor({ timeout });
    const done = (await api.getDebugSession({ sessionId: started })).session!;
    expect(done.state).toBe("completed");
    expect(done.outcome).toBe("stopped by user");
    expect(await page.getByTestId("debug-state").textContent()).toBe(done.outcome);
    expect(Number(done.summary?.calls)).toBe(20);
    expect(await callsOnPage(page)).toBe(20);
    await page.locator('[data-testid="debug-stream"][data-state="done"]').waitFor({ timeout });
    expect(Number(await page.getByTestId("debug-calls").getAttribute("data-seen"))).toBe(20);
    expect(await page.getByTestId("debug-p95").textContent()).toBe(formatNs(done.summary!.p95Ns));
    expect(await page.getByTestId("debug-max").textContent()).toBe(formatNs(done.summary!.maxNs));
    expect(await page.getByTestId("debug-stop").count()).toBe(0);
    const summary = await page.getByTestId("debug-summary").textContent();
    expect(summary).toContain("stopped by user (detached by dashboard:local)");
    // Slow calls counted against the session's threshold (1ms), from the events the API returns.
    const slow = events.events.filter((e) => e.type === "return" && Number(e.durationNs) > 1_000_000).length;
    expect(slow).toBeGreaterThanOrEqual(12);
    expect(summary).toContain(`slow calls (>1ms): ${slow} (`);
    // The session's threshold reached the agent: its own summary counts the same slow calls.
    expect(Number(done.summary?.slowThresholdNs)).toBe(1_000_000);
    expect(Number(done.summary?.slowCalls)).toBe(slow);

    await page.screenshot({ path: join(tmpdir(), "coral-dashboard-debug.png"), fullPage: true });

    // Audited under the dashboard session's name, like the CLI's calls under the token's.
    const audit = (await colony.store.listAudit(100)).filter((a) => a.target === started);
    expect(audit.filter((a) => ["debug.attach", "debug.detach"].includes(a.action)).map((a) => `${a.actor}:${a.action}`).sort()).toEqual(["dashboard:local:debug.attach", "dashboard:local:debug.detach"]);

    // The list shows it with the API's figures; the state filter is in the URL.
    await page.getByRole("link", { name: "← all sessions" }).click();
    const row = page.locator(`[data-testid="debug-sessions"] tr[data-session="${started}"]`);
    await row.waitFor({ timeout });
    expect(await row.locator('[data-field="state"]').textContent()).toBe("stopped by user");
    expect(await row.locator('[data-field="calls"]').textContent()).toBe("20");
    expect(await row.locator('[data-field="by"]').textContent()).toBe("dashboard:local");
    await page.locator('[data-testid="debug-filter"] button[data-state="active"]').click();
    await page.getByTestId("no-debug-sessions").waitFor({ timeout });
    expect(new URL(page.url()).search).toBe("?state=active");
    await page.locator('[data-testid="debug-filter"] button[data-state="stopped"]').click();
    await row.waitFor({ timeout });
    expect(new URL(page.url()).search).toBe("?state=stopped");
    await page.screenshot({ path: join(tmpdir(), "coral-dashboard-debug-list.png") });
  });

  it("shows a read-only session the form disabled, and the colony refuses it the admin calls", { timeout: 180_000 }, async () => {
    const { colony, api, project } = fixture!;
    const { token } = await colonyApi(colony.url, project.localToken).createToken({ name: "viewer", scope: TokenScope.READ });
    const { context, page, unwatch } = await signedIn({ colonyUrl: colony.url, token });
    // A running session (started by the CLI's admin token) for the Stop button, open on an admin page too.
    const running = (await api.attachUprobe({ serviceName: "payments", functionName: "validate_card", durationMs: 120_000 })).session!;
    const watching = await admin.newPage();
    watch(watching);
    await watching.goto(`${colony.url}/debug/${running.sessionId}`);
    await watching.locator('[data-testid="debug-state"][data-state="active"]').waitFor({ timeout });
    try {
      expect(await page.getByTestId("session").textContent()).toBe("viewer · read");
      await page.goto(`${colony.url}/debug`);
      await page.getByTestId("debug-needs-admin").waitFor({ timeout });
      expect(await page.locator('[data-testid="debug-start"] fieldset').evaluate((f) => (f as HTMLFieldSetElement).disabled)).toBe(true);
      expect(await page.getByTestId("debug-service").isDisabled()).toBe(true);
      expect(await page.getByTestId("debug-start-submit").isDisabled()).toBe(true);
      expect(await page.getByTestId("debug-function").isDisabled()).toBe(true);
      // Reading works: both sessions are listed.
      await page.locator(`tr[data-session="${running.sessionId}"]`).waitFor({ timeout });
      await page.locator(`tr[data-session="${started}"]`).waitFor({ timeout });

      await page.goto(`${colony.url}/debug/${running.sessionId}`);
      await page.locator('[data-testid="debug-state"][data-state="active"]').waitFor({ timeout });
      expect(await page.getByTestId("debug-stop").isDisabled()).toBe(true);
      expect(await page.getByTestId("debug-stop").getAttribute("title")).toBe("needs an admin session");

      // Not watched from here: the browser rightly logs the refusals.
      unwatch();
      const call = (method: string, body: object) =>
        page.evaluate(
          async ({ method, body }) => {
            const res = await fetch(`/coral.colony.v1.DebugService/${method}`, { method: "POST", headers: { "content-type": "application/json", "x-coral-csrf": "1" }, body: JSON.stringify(body) });
            return { status: res.status, body: (await res.json()) as { code?: string; message?: string } };
          },
          { method, body },
        );
      const attach = await call("AttachUprobe", { serviceName: "payments", functionName: "validate_card", durationMs: 5000 });
      expect(attach.status).toBe(403);
      expect(attach.body.code).toBe("permission_denied");
      const detach = await call("DetachUprobe", { sessionId: running.sessionId });
      expect(detach.status).toBe(403);
      expect(detach.body.code).toBe("permission_denied");
      expect((await api.getDebugSession({ sessionId: running.sessionId })).session?.state).toBe("active");
      expect((await api.listDebugSessions({ state: "active" })).sessions.map((s) => s.sessionId)).toEqual([running.sessionId]);
    } finally {
      await context.close();
      await api.detachUprobe({ sessionId: running.sessionId });
    }
    // The admin's open page sees the CLI's detach arrive live: the outcome, the stream's end, no Stop button.
    await watching.locator('[data-testid="debug-state"][data-state="completed"]').waitFor({ timeout });
    await waitFor("the stream's last message", async () => (await watching.getByTestId("debug-stream").getAttribute("data-state")) === "done", { timeoutMs: timeout });
    expect(await watching.getByTestId("debug-state").textContent()).toBe("stopped by user");
    expect(await watching.getByTestId("debug-stop").count()).toBe(0);
    await watching.close();
  });

  it("resumes a broken event stream after the last event it saw: no call lost, none counted twice", { timeout: 180_000 }, async () => {
    const { colony, api, port, project } = fixture!;
    const relay = await tcpRelay(colony.url);
    const context = await browser!.newContext();
    const running = (await api.attachUprobe({ serviceName: "payments", functionName: "validate_card", durationMs: 120_000 })).session!;
    try {
      // Not watched: the browser rightly logs the refused connections during the outage.
      const page = await context.newPage();
      await page.goto((await signInLink(project)).url.replace(colony.url, relay.url));
      await page.getByTestId("session").waitFor({ timeout });
      await page.goto(`${relay.url}/debug/${running.sessionId}`);
      await page.locator('[data-testid="debug-state"][data-state="active"]').waitFor({ timeout });
      await request(port, "5 5");
      await page.locator('[data-testid="debug-calls"][data-calls="5"]').waitFor({ timeout });
      await relay.cut();
      await page.locator('[data-testid="debug-stream"][data-state="reconnecting"]').waitFor({ timeout });
      await request(port, "7 5"); // while the page cannot hear
      await relay.restore();
      await page.locator('[data-testid="debug-calls"][data-calls="12"]').waitFor({ timeout });
      const returns = (await api.queryUprobeEvents({ sessionId: running.sessionId, limit: 1000 })).events.filter((e) => e.type === "return");
      expect(returns).toHaveLength(12);
      expect(await page.locator('[data-testid="debug-recent"] tbody tr').count()).toBe(12);
      expect(await page.locator('[data-testid="debug-histogram"]').getAttribute("data-total")).toBe("12");
    } finally {
      await api.detachUprobe({ sessionId: running.sessionId });
      await context.close();
      await relay.close();
    }
  });

  it("logged no console errors on the watched pages", () => {
    expect(problems).toEqual([]);
  });
});
