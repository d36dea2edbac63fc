// The dashboard against the README's run command: `coral up` (discovery, a
// colony with its own NATS, the sample app, an agent per part), then the
// sign-in link of `coral dashboard` in Chromium (Debian's, via
// playwright-core) and every view, each showing what the sample app makes.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { describe, expect, it } from "vitest";
import { coralBin, runCoral } from "../helpers/cli.ts";
import { killLeftoverNats } from "../helpers/colony.ts";
import { freePort } from "../helpers/ports.ts";
import { waitFor } from "../helpers/wait.ts";
import { chromiumPath, haveChromium } from "../dashboard/helpers.ts";

if (!haveChromium) console.log(`up-dashboard.test: SKIPPING: no Chromium at ${chromiumPath} (apt-get install chromium)`);

const timeout = 60_000;

describe.skipIf(!haveChromium)("the dashboard of coral up's sample app", () => {
  it("opens every view with the sample app's components, topology, charts, events and lists", async () => {
    const dir = await mkdtemp(join(tmpdir(), "coral-up-dash-"));
    const env = { ...process.env, CORAL_HOME: join(dir, "home"), CORAL_API_PORT: String(await freePort()), NO_COLOR: "1" };
    const up = spawn(process.execPath, [coralBin, "up", "--dir", dir, "--discovery-port", String(await freePort()), "--log-level", "warn"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    up.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    up.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"], headless: true });
    try {
      await waitFor("coral up to be up", () => (out.includes("Coral is up") ? true : undefined), { timeoutMs: 120_000, intervalMs: 250 });
      // npm start prints the dashboard next to the CLI hints.
      const printed = /Dashboard: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out)?.[1];
      expect(printed).toBe(`http://127.0.0.1:${env.CORAL_API_PORT}`);
      const link = await runCoral(["dashboard", "--no-open", "--json"], { cwd: dir, env: { CORAL_HOME: env.CORAL_HOME, CORAL_API_PORT: env.CORAL_API_PORT, DISPLAY: "", WAYLAND_DISPLAY: "", CORAL_TOKEN: undefined, CORAL_COLONY_URL: undefined } });
      expect(link.code, link.stderr).toBe(0);
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
      const problems: string[] = [];
      page.on("console", (m) => m.type() === "error" && problems.push(`${page.url()}: ${m.text()}`));
      page.on("pageerror", (e) => problems.push(`${page.url()}: ${e.message}`));
      await page.goto((JSON.parse(link.stdout) as { url: string }).url);
      await page.getByTestId("session").waitFor({ timeout });

      // Overview: the three parts of the sample app.
      for (const name of ["frontend", "api", "store"]) await page.locator(`tr[data-service="${name}"]`).waitFor({ timeout });
      const view = async (path: string, ready: (p: Page) => Promise<unknown>) => {
        await page.goto(`${printed}${path}`);
        await ready(page);
      };
      // Topology: frontend → api → store, laid out.
      await view("/topology", (p) => p.locator('[data-testid="topology"][data-nodes]').waitFor({ timeout }));
      await waitFor("the sample app's edges in the topology", async () => {
        await page.reload();
        await page.locator('[data-testid="topology"][data-nodes]').waitFor({ timeout });
        return Number(await page.getByTestId("topology").getAttribute("data-edges")) >= 2 ? true : undefined;
      }, { timeoutMs: 90_000, intervalMs: 2000 });
      // A component: charts with points from its agent.
      await view("/components/api", (p) => p.locator("figure.chart[data-points]").first().waitFor({ timeout }));
      await waitFor("api's charts to have points", async () => (Number(await page.locator("figure.chart").first().getAttribute("data-points")) > 0 ? true : undefined), { timeoutMs: 60_000, intervalMs: 1000 });
      // Events (the agents' registrations at least), insights, debug, flags and rollbacks.
      await view("/events", (p) => p.getByTestId("events").waitFor({ timeout }));
      expect(await page.locator('[data-testid="events"] tr').count()).toBeGreaterThan(1);
      await view("/insights", (p) => p.locator('[data-testid="insights"], [data-testid="no-insights"]').first().waitFor({ timeout }));
      await view("/debug", (p) => p.getByTestId("debug-start").waitFor({ timeout }));
      // The form's components come with the live status, which may arrive after the form has painted.
      await page.locator('[data-testid="debug-service"] option[value="api"]').waitFor({ state: "attached", timeout });
      const services = await page.getByTestId("debug-service").locator("option").allTextContents();
      expect(services.join(" ")).toMatch(/api/);
      await view("/control", (p) => p.getByTestId("control").waitFor({ timeout }));
      await page.locator('[data-testid="flags"], [data-testid="no-flags"]').first().waitFor({ timeout });
      await page.locator('[data-testid="rollbacks"], [data-testid="no-rollbacks"]').first().waitFor({ timeout });
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
      const exited = new Promise((r) => up.once("exit", r));
      up.kill("SIGINT");
      await exited;
      killLeftoverNats(dir);
      await rm(dir, { recursive: true, force: true });
    }
  }, 300_000);
});
