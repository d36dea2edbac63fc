// Chart benchmark (issue 19 target: a 24-hour chart of 1 s data, 86,400
// points, draws in under 200 ms): the dashboard's own chart component and
// chart logic in headless Chromium (Debian's, via playwright-core).
//
//   node --conditions=coral-source --import tsx bench/dashboard-chart/run.ts [--runs 10]
//   npm run bench:dashboard-chart
//
// Vite builds dashboard/src/bench/chart.html (the real MetricChart and
// buildCharts) into a temporary directory, served by a local HTTP server.
// Each run makes N points of one agent's raw 1 s data in the page, then
// times buildCharts (API answer → chart data) and the draw (chart data →
// the frame after uPlot's canvas exists, so up to one frame more than the
// draw itself). 3,600 points (an hour) run alongside, for the ratio.
import { createServer } from "node:http";
import { mkdtemp, readFile, rm, mkdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { build } from "vite";
import { chromiumPath } from "../../tests/dashboard/helpers.ts";
import { loadAverage, machineInfo, median, percentile, round, table } from "../colony-ingest/lib.ts";
import { positive } from "../args.ts";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, "../..");
const dashboardRoot = join(repoRoot, "dashboard");
const { values: args } = parseArgs({ options: { runs: { type: "string", default: "10" } } });
const runs = positive("runs", args.runs);
const log = (m: string) => process.stderr.write(`[bench:dashboard-chart] ${m}\n`);
const sizes = [3_600, 86_400];
/** What the page (dashboard/src/bench/chart-page.tsx) puts on window. */
type ChartPage = { drawChart(points: number): Promise<{ buildMs: number; drawMs: number; points: number }> };

const machine = await machineInfo();
const loadBefore = await loadAverage();
const outDir = await mkdtemp(join(tmpdir(), "coral-chart-bench-"));
try {
  log("building the chart page with Vite…");
  await build({
    configFile: join(dashboardRoot, "vite.config.ts"),
    build: { outDir, emptyOutDir: true, rollupOptions: { input: join(dashboardRoot, "src/bench/chart.html") } },
    logLevel: "warn",
  });
  const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    const file = join(outDir, path === "/" ? "src/bench/chart.html" : path);
    if (!file.startsWith(outDir)) return void res.writeHead(404).end();
    readFile(file).then(
      (body) => res.writeHead(200, { "content-type": types[extname(file)] ?? "application/octet-stream" }).end(body),
      () => res.writeHead(404).end(),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"], headless: true });
  const timings: Record<number, { buildMs: number; drawMs: number }[]> = Object.fromEntries(sizes.map((n) => [n, []]));
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForFunction(() => typeof (window as unknown as ChartPage).drawChart === "function", undefined, { timeout: 60_000 });
    for (let run = 0; run < runs + 1; run++) {
      for (const n of sizes) {
        const t = await page.evaluate((points) => (window as unknown as ChartPage).drawChart(points), n);
        if (t.points !== n) throw new Error(`the chart has ${t.points} points, expected ${n}`);
        if (run === 0) continue; // warm-up: the JIT's first pass
        timings[n]!.push(t);
        log(`run ${run}, ${n.toLocaleString("en-US")} points: data ${round(t.buildMs)} ms, drawn ${round(t.drawMs)} ms`);
      }
    }
    if (errors.length) throw new Error(`page errors: ${errors.join("; ")}`);
  } finally {
    await browser.close();
    server.close();
  }
  const stat = (xs: number[]) => ({ median: round(median(xs)), p90: round(percentile([...xs].sort((a, b) => a - b), 90)), max: round(Math.max(...xs)) });
  const results = Object.fromEntries(sizes.map((n) => [n, { buildMs: stat(timings[n]!.map((t) => t.buildMs)), drawMs: stat(timings[n]!.map((t) => t.drawMs)) }]));
  console.log(
    table(
      ["measure", "median", "p90", "max", "target"],
      sizes.flatMap((n) => [
        [`${n.toLocaleString("en-US")} points: API answer → chart data (ms)`, results[n]!.buildMs.median, results[n]!.buildMs.p90, results[n]!.buildMs.max, ""],
        [`${n.toLocaleString("en-US")} points: chart data → drawn (ms)`, results[n]!.drawMs.median, results[n]!.drawMs.p90, results[n]!.drawMs.max, n === 86_400 ? "< 200" : ""],
      ]),
    ),
  );
  const ratio = results[86_400]!.drawMs.median / results[3_600]!.drawMs.median;
  console.log(`draw time, 24 h over 1 h (same run): ${ratio.toFixed(2)}×`);
  const out = join(repoRoot, "bench", "results", `dashboard-chart-${new Date().toISOString().slice(0, 16).replace(/:/g, "")}Z.json`);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify({ machine, runs, loadAverage: { before: loadBefore, after: await loadAverage() }, results, timings }, null, 2));
  log(`figures in ${out}`);
} finally {
  await rm(outDir, { recursive: true, force: true });
}
