// Dashboard benchmark: bundle size, the overview's first contentful paint and
// the topology's layout, in headless Chromium (Debian's, via playwright-core)
// against a real colony with 50 components and 200 edges.
//
//   node --conditions=coral-source --import tsx bench/dashboard/run.ts [--runs 10] [--components 50]
//   npm run bench:dashboard
//
// Setup: a real colony (temp project, its own nats-server and DuckDB file);
// N synthetic agents register, heartbeat, and each publishes connections to
// the next four components (4 × N edges). The browser signs in once with a
// link of `coral dashboard`; every run opens the overview in a new browser
// context (cold cache) with that session cookie.
// Measured per run: first contentful paint (the browser's own entry), the
// time until all N rows are on the page, and the topology: from the click on
// its link to the laid-out graph drawn (nodes and edges set).
// Targets (issue 19): FCP < 1 s, bundle ≤ 300 KB gzipped, topology of 50
// components and 200 edges interactive < 1 s. Exits non-zero only when
// something fails, never for a missed target.
import { readdirSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { HealthStatus } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { chromium } from "playwright-core";
import { colonyApi, createTestProject } from "../../tests/helpers/colony.ts";
import { SyntheticAgent } from "../../tests/helpers/synthetic-agent.ts";
import { waitFor } from "../../tests/helpers/wait.ts";
import { chromiumPath, signInLink } from "../../tests/dashboard/helpers.ts";
import { loadAverage, machineInfo, median, percentile, round, table } from "../colony-ingest/lib.ts";
import { positive } from "../args.ts";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../..");
const { values: args } = parseArgs({ options: { runs: { type: "string", default: "10" }, components: { type: "string", default: "50" }, screenshot: { type: "string" } } });
const options = { runs: positive("runs", args.runs), components: positive("components", args.components) };
const log = (m: string) => process.stderr.write(`[bench:dashboard] ${m}\n`);
const svc = (n: number) => `svc-${String(n).padStart(2, "0")}`;

// Bundle: every file the colony serves, gzipped (as it serves them).
const dist = join(repoRoot, "dashboard", "dist");
const assets = readdirSync(join(dist, "assets")).map((name) => {
  const body = readFileSync(join(dist, "assets", name));
  return { name, bytes: body.byteLength, gzip: gzipSync(body, { level: 9 }).byteLength };
});
const html = readFileSync(join(dist, "index.html"), "utf8");
const entry = assets.filter((a) => html.includes(`/assets/${a.name}`));
const bundle = {
  files: assets,
  totalGzip: assets.reduce((s, a) => s + a.gzip, 0),
  overviewGzip: entry.reduce((s, a) => s + a.gzip, 0),
};
log(`bundle: ${Math.round(bundle.totalGzip / 1024)} KiB gzipped in all, ${Math.round(bundle.overviewGzip / 1024)} KiB for the overview`);

const machine = await machineInfo();
const loadBefore = await loadAverage();
await using project = await createTestProject({ app: "bench" });
const colony = await project.start();
const agents: SyntheticAgent[] = [];
try {
  log(`${options.components} synthetic agents register…`);
  for (let n = 0; n < options.components; n++) {
    const agent = new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: `${svc(n)}-1`, serviceName: svc(n), port: 20_000 + n, version: "1.0.0" });
    agents.push(agent);
    await agent.register();
    await agent.heartbeat(HealthStatus.HEALTHY);
  }
  const now = timestampFromDate(new Date());
  for (let n = 0; n < options.components; n++)
    await agents[n]!.publish({
      connections: [1, 2, 3, 4].map((k) => ({ localAddr: `127.0.0.1:${40_000 + n * 10 + k}`, remoteAddr: `127.0.0.1:${20_000 + ((n + k) % options.components)}`, state: "ESTABLISHED", observedAt: now, count: k })),
    });
  const api = colonyApi(colony.url, project.localToken);
  const edges = await waitFor("the edges to be stored", async () => {
    const t = await api.getTopology({});
    return t.edges.length >= options.components * 4 ? t.edges.length : undefined;
  }, { timeoutMs: 120_000, intervalMs: 500 });
  log(`${edges} edges stored`);
  // The answers the two views wait for, timed from Node (Connect JSON over loopback, as the page asks).
  const rpcMs: Record<string, number[]> = { GetTopology: [], GetStatus: [] };
  for (let n = 0; n < 20; n++) {
    let t = performance.now();
    await api.getTopology({});
    rpcMs.GetTopology!.push(performance.now() - t);
    t = performance.now();
    await api.getStatus({});
    rpcMs.GetStatus!.push(performance.now() - t);
  }
  log(`from Node, median of 20: GetTopology ${round(median(rpcMs.GetTopology!))} ms, GetStatus ${round(median(rpcMs.GetStatus!))} ms`);

  const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"], headless: true });
  try {
    const first = await browser.newContext();
    const page = await first.newPage();
    await page.goto((await signInLink(project)).url);
    await page.getByTestId("session").waitFor({ timeout: 60_000 });
    const cookies = await first.cookies();
    await first.close();

    const rows: { fcp: number; rows: number; topology: number }[] = [];
    for (let run = 0; run < options.runs + 1; run++) {
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
      await context.addCookies(cookies);
      const p = await context.newPage();
      await p.goto(`${colony.url}/`);
      await p.waitForFunction((n) => document.querySelectorAll("tr[data-service]").length >= n, options.components, { timeout: 60_000 });
      const timing = await p.evaluate(() => ({ fcp: performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? NaN, rows: performance.now() }));
      const started = await p.evaluate(() => performance.now());
      await p.getByRole("link", { name: "Topology" }).click();
      await p.locator('[data-testid="topology"][data-nodes]').waitFor({ timeout: 60_000 });
      // Interactive: the layout ran and the SVG is painted (a frame after the counts are set).
      const done = await p.evaluate(() => new Promise<number>((r) => requestAnimationFrame(() => r(performance.now()))));
      const marks = await p.evaluate(() => Object.fromEntries(performance.getEntriesByType("mark").filter((m) => m.name.startsWith("coral:")).map((m) => [m.name, m.startTime])));
      log(`  topology: chunk loaded +${round((marks["coral:topology-loaded"] ?? NaN) - started)} ms, data +${round((marks["coral:topology-data"] ?? NaN) - started)} ms, laid out +${round((marks["coral:topology-drawn"] ?? NaN) - started)} ms`);
      // --screenshot <png>: the topology as the last run drew it, to look at.
      if (args.screenshot && run === options.runs) await p.getByTestId("topology").screenshot({ path: args.screenshot });
      await context.close();
      if (run === 0) continue; // warm-up (the colony's first queries, Chromium's first start)
      rows.push({ fcp: timing.fcp, rows: timing.rows, topology: done - started });
      log(`run ${run}: FCP ${round(timing.fcp)} ms, ${options.components} rows at ${round(timing.rows)} ms, topology ${round(done - started)} ms`);
    }
    const stat = (k: keyof (typeof rows)[number]) => ({ median: round(median(rows.map((r) => r[k]))), p90: round(percentile(rows.map((r) => r[k]).sort((a, b) => a - b), 90)), max: round(Math.max(...rows.map((r) => r[k]))) });
    const results = { fcpMs: stat("fcp"), overviewRowsMs: stat("rows"), topologyMs: stat("topology") };
    console.log(
      table(
        ["measure", "median", "p90", "max", "target"],
        [
          ["overview first contentful paint (ms)", results.fcpMs.median, results.fcpMs.p90, results.fcpMs.max, "< 1000"],
          [`overview with ${options.components} rows (ms)`, results.overviewRowsMs.median, results.overviewRowsMs.p90, results.overviewRowsMs.max, ""],
          [`topology ${options.components} nodes / ${edges} edges laid out (ms)`, results.topologyMs.median, results.topologyMs.p90, results.topologyMs.max, "< 1000"],
        ],
      ),
    );
    console.log(`bundle: ${bundle.totalGzip.toLocaleString("en-US")} bytes gzipped in all (target ≤ 307,200), overview ${bundle.overviewGzip.toLocaleString("en-US")}`);
    const out = join(repoRoot, "bench", "results", `dashboard-${new Date().toISOString().slice(0, 16).replace(/:/g, "")}Z.json`);
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, JSON.stringify({ machine, options, edges, loadAverage: { before: loadBefore, after: await loadAverage() }, bundle, results, runs: rows }, null, 2));
    log(`figures in ${out}`);
  } finally {
    await browser.close();
  }
} finally {
  for (const a of agents) await a[Symbol.asyncDispose]();
}
