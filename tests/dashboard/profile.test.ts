// The profile view (flame graph) in a real browser (Debian's Chromium through
// playwright-core) against a real colony (DuckDB, nats-server, Connect API):
// a synthetic agent publishes the always-on profiler's per-minute windows as
// an agent does (tests/helpers/profile-windows.ts), the colony stores them,
// and a read-only dashboard session opens the view from the component's CPU
// chart. Checks the frames drawn (names, widths proportional to samples), the
// tooltip, search highlight and share, zoom (and its link), the differential
// colours against a baseline, the top functions table, the empty state, and
// that a read session may not start an on-demand profile.
import { mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { HealthStatus } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { matchColour } from "@coral/dashboard/logic";
import type { RunningColony } from "@coral/colony";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { colonyApi, createTestProject, serviceApi, type TestProject } from "../helpers/colony.ts";
import { profileWindow, publishProfileWindows } from "../helpers/profile-windows.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";
import { chromiumPath, haveChromium, signInLink } from "./helpers.ts";

const minuteMs = 60_000;
const thisMinute = Math.floor(Date.now() / minuteMs) * minuteMs;
/** The start of the minute `n` minutes before this one. */
const minute = (n: number) => thisMinute - n * minuteMs;
const timeout = 30_000;
/** Per minute now: 100 samples; an hour earlier parse and render swapped their shares. */
const now = { "main;handle;parse": 60, "main;handle;render": 20, "main;gc;tick": 20 };
const before = { "main;handle;parse": 20, "main;handle;render": 60, "main;gc;tick": 20 };

let project: TestProject;
let colony: RunningColony;
let browser: Browser;
let viewer: BrowserContext;
let page: Page;
let agent: SyntheticAgent;
const problems: string[] = [];

interface Drawn {
  name: string;
  samples: number;
  depth: number;
  x: number;
  /** The rect's width as the browser lays it out. */
  width: number;
  match: boolean;
  fill: string;
  delta: number | null;
}

/** The frames the flame graph draws, read from the page. */
async function frames(p: Page): Promise<{ width: number; frames: Drawn[] }> {
  return p.evaluate(() => {
    const graph = document.querySelector('[data-testid="flame-graph"]')!;
    const frames = Array.from(graph.querySelectorAll("g.frame")).map((g) => {
      const delta = g.getAttribute("data-delta");
      return {
        name: g.getAttribute("data-name")!,
        samples: Number(g.getAttribute("data-samples")),
        depth: Number(g.getAttribute("data-depth")),
        x: Number(/translate\(([-\d.e]+),/.exec(g.getAttribute("transform")!)![1]),
        width: g.querySelector("rect")!.getBoundingClientRect().width,
        match: g.getAttribute("data-match") === "true",
        fill: g.getAttribute("data-fill")!,
        delta: delta === null ? null : Number(delta),
      };
    });
    return { width: Number(graph.getAttribute("data-width")), frames };
  });
}

const byName = (drawn: Drawn[], name: string) => {
  const found = drawn.filter((f) => f.name === name);
  expect(found, `frame ${name}`).toHaveLength(1);
  return found[0]!;
};

/** Width of `samples` out of `of` in a graph `width` pixels wide (rects are drawn 0.5 px narrower, a gap between boxes). */
const expectWidth = (f: Drawn, of: number, width: number) => expect(Math.abs(f.width + 0.5 - (f.samples / of) * width), `${f.name}: ${f.width}px for ${f.samples}/${of} of ${width}px`).toBeLessThan(1);

const graph = (p: Page) => p.getByTestId("flame-graph");
const frame = (p: Page, name: string) => graph(p).locator(`g.frame[data-name="${name}"]`);

if (!haveChromium) console.warn(`SKIPPED the profile view's browser suite: no Chromium at ${chromiumPath} (apt-get install chromium; browsers are never downloaded)`);

beforeAll(async () => {
  if (!haveChromium) return;
  project = await createTestProject();
  colony = await project.start();
  agent = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: "checkout-1", serviceName: "checkout", port: 3100, version: "1.0.0" });
  await agent.register();
  await agent.heartbeat(HealthStatus.HEALTHY);
  await agent.connectNats();
  // CPU chart points 1..3 minutes ago; profile windows 3 and 2 minutes ago (inside the chart's range) and the same an hour earlier.
  await agent.publish({ metrics: [1, 2, 3].map((n) => ({ timestamp: timestampFromDate(new Date(minute(n))), metricName: "cpu_percent", interval: "1m", p50: 10, p95: 20, p99: 30, mean: 10 + n, max: 40, min: 1, count: 60n })) });
  await publishProfileWindows(agent, "prof-now", [profileWindow(minute(3), now), profileWindow(minute(2), now)]);
  await publishProfileWindows(agent, "prof-before", [profileWindow(minute(63), before), profileWindow(minute(62), before)]);
  const api = serviceApi(ProfileService, colony.url, project.localToken);
  await waitFor(
    "the profile windows stored",
    async () => {
      const res = await api.queryCpuProfile({ serviceName: "checkout", start: timestampFromDate(new Date(minute(3))), end: timestampFromDate(new Date(minute(1))), baselineStart: timestampFromDate(new Date(minute(63))), baselineEnd: timestampFromDate(new Date(minute(61))) });
      return res.minutes === 2 && res.baselineMinutes === 2;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
  const client = colonyApi(colony.url, project.localToken);
  await waitFor("the CPU points stored", async () => (await client.queryMetrics({ service: "checkout", since: timestampFromDate(new Date(minute(10))) })).series.some((s) => s.points.length === 3));
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"], headless: true });
  // A read-only session: stored profiles are read data.
  const { token } = await client.createToken({ name: "viewer", scope: TokenScope.READ });
  viewer = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  page = await viewer.newPage();
  page.on("console", (msg) => msg.type() === "error" && problems.push(`${page.url()}: ${msg.text()}`));
  page.on("pageerror", (err) => problems.push(`${page.url()}: ${err.message}`));
  const link = await signInLink(project, { colonyUrl: colony.url, token });
  await page.goto(link.url);
  await page.getByTestId("session").waitFor({ timeout });
});

afterAll(async () => {
  await browser?.close();
  await agent?.[Symbol.asyncDispose]();
  await project?.[Symbol.asyncDispose]();
});

describe.skipIf(!haveChromium)("profile view (flame graph) in Chromium", () => {
  it("opens from the component's CPU chart for the range shown, and draws each frame as wide as its samples", async () => {
    expect(await page.getByTestId("session").textContent()).toBe("viewer · read");
    await page.goto(`${colony.url}/components/checkout?range=1h`);
    const chart = page.locator('figure[data-metric="cpu_percent"]');
    await chart.waitFor({ timeout });
    expect(await page.locator("a.profile-link").getAttribute("href")).toBe("/components/checkout/profile?window=1h");
    await chart.getByRole("link", { name: "profile this range" }).click();
    await page.waitForURL(/\/components\/checkout\/profile\?from=/, { timeout });
    const url = new URL(page.url());
    // The chart shows minutes 3..1 ago: the profile range is those whole minutes.
    expect(url.searchParams.get("from")).toBe(new Date(minute(3)).toISOString());
    expect(url.searchParams.get("to")).toBe(new Date(minute(1)).toISOString());

    await frame(page, "parse").waitFor({ timeout });
    const facts = page.getByTestId("profile-facts");
    expect(await facts.getAttribute("data-minutes")).toBe("2");
    expect(await facts.getAttribute("data-total")).toBe("200");
    const { width, frames: drawn } = await frames(page);
    expect(width).toBeGreaterThan(1000);
    expect(drawn.map((f) => f.name).sort()).toEqual(["all", "checkout", "gc", "handle", "main", "parse", "render", "tick"]);
    expect(Object.fromEntries(drawn.map((f) => [f.name, f.samples]))).toEqual({ all: 200, checkout: 200, main: 200, handle: 160, parse: 120, render: 40, gc: 40, tick: 40 });
    for (const f of drawn) expectWidth(f, 200, width);
    // Icicle: callees below their callers, siblings side by side.
    expect(byName(drawn, "parse").depth).toBe(byName(drawn, "handle").depth + 1);
    expect(byName(drawn, "render").x).toBeCloseTo(byName(drawn, "parse").x + (120 / 200) * width, 0);
    expect(byName(drawn, "gc").x).toBeCloseTo((160 / 200) * width, 0);

    // The top functions table: self and total shares.
    const row = (fn: string) => page.locator(`[data-testid="top-functions"] tr[data-function="${fn}"]`);
    expect(await row("parse").locator('[data-field="self"]').textContent()).toBe("60.0%");
    expect(await row("tick").locator('[data-field="total"]').textContent()).toBe("20.0%");
    expect(await row("handle").locator('[data-field="total"]').textContent()).toBe("80.0%");

    // The tooltip: function, module, total and self.
    await frame(page, "handle").hover();
    const tip = page.getByTestId("flame-tooltip");
    await tip.waitFor({ timeout });
    expect(await tip.textContent()).toContain("handle");
    expect(await tip.locator('[data-field="total"]').textContent()).toBe("total 160 samples (80.0%)");
    expect(await tip.locator('[data-field="self"]').textContent()).toBe("self 0 samples (0.00%)");
    await frame(page, "parse").hover();
    await tip.locator('[data-field="self"]').filter({ hasText: "self 120 samples (60.0%)" }).waitFor({ timeout });
    expect(await tip.textContent()).toContain("/srv/app");
  });

  it("highlights search matches with their share, zooms into a frame (a link that keeps it) and back to the root", async () => {
    await page.getByTestId("flame-search").fill("PARS");
    const shareText = page.getByTestId("search-share");
    await shareText.filter({ hasText: "matched: 60.0% of samples (120)" }).waitFor({ timeout });
    let { width, frames: drawn } = await frames(page);
    expect(drawn.filter((f) => f.match).map((f) => f.name)).toEqual(["parse"]);
    expect(byName(drawn, "parse").fill).toBe(matchColour);
    expect(byName(drawn, "render").fill).not.toBe(matchColour);
    expect(new URL(page.url()).searchParams.get("q")).toBe("PARS");

    // Zoom into handle: it takes the full width, parse 3/4 of it, gc is left out; the match's share of the zoomed frame shows.
    await frame(page, "handle").click();
    await frame(page, "gc").waitFor({ state: "detached", timeout });
    expect(new URL(page.url()).searchParams.get("focus")).toBe("all;checkout;main;handle");
    ({ width, frames: drawn } = await frames(page));
    expect(drawn.map((f) => f.name).sort()).toEqual(["all", "checkout", "handle", "main", "parse", "render"]);
    expectWidth(byName(drawn, "handle"), 160, width);
    expectWidth(byName(drawn, "parse"), 160, width);
    expectWidth(byName(drawn, "render"), 160, width);
    expect(byName(drawn, "all").width).toBeCloseTo(width - 0.5, 0); // ancestors span the width
    await shareText.filter({ hasText: "75.0% of the zoomed frame" }).waitFor({ timeout });

    // The zoomed, searched view is a link: opened again, it shows the same.
    await page.goto(page.url());
    await frame(page, "parse").waitFor({ timeout });
    ({ width, frames: drawn } = await frames(page));
    expect(drawn.some((f) => f.name === "gc")).toBe(false);
    expectWidth(byName(drawn, "parse"), 160, width);
    expect(byName(drawn, "parse").match).toBe(true);

    // Clicking the root zooms back out; so does "reset zoom".
    await frame(page, "all").click();
    await frame(page, "gc").waitFor({ timeout });
    expect(new URL(page.url()).searchParams.get("focus")).toBeNull();
    await frame(page, "parse").click();
    await frame(page, "gc").waitFor({ state: "detached", timeout });
    expect(new URL(page.url()).searchParams.get("focus")).toBe("all;checkout;main;handle;parse");
    await page.getByTestId("zoom-reset").click();
    await frame(page, "gc").waitFor({ timeout });
    ({ width, frames: drawn } = await frames(page));
    for (const f of drawn) expectWidth(f, 200, width);
    await page.getByTestId("flame-search").fill("");
    await page.getByTestId("search-share").waitFor({ state: "detached", timeout });

    // Flame orientation: the root at the bottom, callees above.
    const y = (name: string) => frame(page, name).evaluate((g) => Number(/translate\([^,]+,([-\d.e]+)\)/.exec(g.getAttribute("transform")!)![1]));
    expect(await y("all")).toBeLessThan(await y("parse"));
    await page.getByRole("button", { name: "flame", exact: true }).click();
    await page.locator('[data-testid="flame-graph"][data-orientation="flame"]').waitFor({ timeout });
    expect(await y("all")).toBeGreaterThan(await y("parse"));
    await page.getByRole("button", { name: "icicle", exact: true }).click();
    await page.locator('[data-testid="flame-graph"][data-orientation="icicle"]').waitFor({ timeout });
  });

  it("compares with the same range an hour earlier: red where a frame's share grew, blue where it shrank", async () => {
    await page.getByTestId("compare").selectOption("1h");
    await page.getByTestId("diff-legend").waitFor({ timeout });
    expect(new URL(page.url()).searchParams.get("compare")).toBe("1h");
    await page.waitForFunction(() => document.querySelector('g.frame[data-name="parse"]')?.getAttribute("data-delta") != null, undefined, { timeout });
    const { width, frames: drawn } = await frames(page);
    // Widths are the present's.
    for (const f of drawn) expectWidth(f, 200, width);
    const parse = byName(drawn, "parse");
    const render = byName(drawn, "render");
    expect(parse.delta).toBeCloseTo(40); // 60 % now, 20 % an hour ago
    expect(render.delta).toBeCloseTo(-40);
    expect(byName(drawn, "handle").delta).toBeCloseTo(0);
    expect(byName(drawn, "tick").delta).toBeCloseTo(0);
    expect(parse.fill).toBe("rgb(255,60,60)"); // the largest rise: deepest red
    expect(render.fill).toBe("rgb(60,60,255)"); // the largest drop: deepest blue
    expect(byName(drawn, "handle").fill).toBe("rgb(235,235,235)");
    // The table lists what moved, hotter first, with the change in points.
    const rows = page.locator('[data-testid="top-functions"] tbody tr');
    expect(await rows.evaluateAll((trs) => trs.map((tr) => [tr.getAttribute("data-function"), tr.querySelector('[data-field="delta"]')!.textContent]))).toEqual([
      ["parse", "+40.00"],
      ["render", "−40.00"],
      ["tick", "±0.00"],
    ]);
    await frame(page, "parse").hover();
    await page.getByTestId("flame-tooltip").locator('[data-field="delta"]').filter({ hasText: "+40.00 points" }).waitFor({ timeout });
    // A picture to look at (not compared): the temp folder, never the checkout.
    await mkdir(join(tmpdir(), "coral-dashboard-shot"), { recursive: true });
    await page.screenshot({ path: join(tmpdir(), "coral-dashboard-shot", "profile.png"), fullPage: true });
  });

  it("says when no profile is stored in the range instead of failing", async () => {
    await page.goto(`${colony.url}/components/checkout/profile?from=${encodeURIComponent(new Date(minute(300)).toISOString())}&to=${encodeURIComponent(new Date(minute(240)).toISOString())}`);
    const empty = page.getByTestId("profile-empty");
    await empty.waitFor({ timeout });
    expect(await empty.textContent()).toContain("The agent's always-on profiler stores a profile per minute; none in this range.");
    expect(await page.getByTestId("profile-error").count()).toBe(0);
    expect(await graph(page).count()).toBe(0);
    // A window preset from there: the last hour has the stored minutes.
    await page.locator('button[data-window="1h"]').click();
    await frame(page, "parse").waitFor({ timeout });
    expect(new URL(page.url()).searchParams.get("window")).toBe("1h");
  });

  it("lets a read session query stored profiles but not start an on-demand one", async () => {
    const other = await viewer.newPage(); // not watched: the refusal is logged by the browser, as it should be
    try {
      await other.goto(`${colony.url}/`);
      await other.getByTestId("session").waitFor({ timeout });
      const call = (method: string, body: string) =>
        other.evaluate(
          async ([m, b]) => {
            const res = await fetch(`/coral.colony.v1.ProfileService/${m}`, { method: "POST", headers: { "content-type": "application/json", "x-coral-csrf": "1" }, body: b });
            return { status: res.status, body: (await res.json()) as { code?: string; minutes?: number } };
          },
          [method, body] as const,
        );
      const stored = await call("QueryCpuProfile", JSON.stringify({ serviceName: "checkout", start: new Date(minute(3)).toISOString(), end: new Date(minute(1)).toISOString() }));
      expect(stored.status).toBe(200);
      expect(stored.body.minutes).toBe(2);
      const onDemand = await call("ProfileCpu", JSON.stringify({ serviceName: "checkout", durationMs: 1000 }));
      expect(onDemand.status).toBe(403);
      expect(onDemand.body.code).toBe("permission_denied");
    } finally {
      await other.close();
    }
  });

  it("logged no console errors on the watched page", () => {
    expect(problems).toEqual([]);
  });
});
