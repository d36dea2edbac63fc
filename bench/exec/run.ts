// Hands-on benchmark (issue 25): `coral exec` round trips, `coral shell`
// keystroke echo, and `coral query` of a day's aggregate over 50 services.
//
//   node --conditions=coral-source --import tsx bench/exec/run.ts [--calls 100] [--services 50] [--metrics 5]
//   npm run bench:exec
//
// Setup: a real colony (temp project after `coral init`, its own nats-server
// and DuckDB), one real agent (in-process, loopback mesh) beside a real sample
// component, tokens of the exec and read scopes.
//   1. exec: `true` through ExecService (Connect, the colony, the signed call
//      to the agent, nsenter into the component's namespaces as root, else on
//      the host), --calls sequential calls after 10 warm-up ones; and the
//      built `coral exec store -- true` as a user runs it (CLI start included),
//      beside `node -e 0` in the same run.
//   2. shell: one session through ShellService; per keystroke, the time from
//      SendShellInput to the character coming back in the output (the PTY's
//      echo), --calls keystrokes one at a time.
//   3. query: --services × 24 h of 1-minute summaries for --metrics metrics
//      loaded through store.ingest; `SELECT service_id, metric_name, avg(mean),
//      max(p99), sum(count) … GROUP BY ALL` over the last day through
//      QueryService (JSON, like the CLI), --calls calls after 5 warm-up ones.
// Targets: exec < 300 ms (CLI start excluded), keystroke echo p95 < 50 ms,
// query < 200 ms. Exits non-zero only when something breaks.
import { execFile, spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { TokenScope } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { ExecService } from "@coral/proto/gen/coral/colony/v1/exec_pb";
import { QueryService } from "@coral/proto/gen/coral/colony/v1/query_pb";
import { ShellService } from "@coral/proto/gen/coral/colony/v1/shell_pb";
import { TelemetryBatchSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { sampleComponentScript } from "@coral/cli/sample-app";
import { testAgent } from "../../tests/helpers/agents.ts";
import { coralBin } from "../../tests/helpers/cli.ts";
import { colonyApi, createTestProject, serviceApi } from "../../tests/helpers/colony.ts";
import { freePort } from "../../tests/helpers/ports.ts";
import { waitFor } from "../../tests/helpers/wait.ts";
import { loadAverage, machineInfo, summarize, table, type LatencySummary } from "../colony-ingest/lib.ts";
import { summary } from "../colony-ingest/workload.ts";
import { positive } from "../args.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const target = { execMs: 300, echoP95Ms: 50, queryMs: 200 };
const minute = 60_000;
const run = promisify(execFile);

const { values: args } = parseArgs({ options: { calls: { type: "string", default: "100" }, services: { type: "string", default: "50" }, metrics: { type: "string", default: "5" } } });
const options = { calls: positive("calls", args.calls), services: positive("services", args.services), metrics: positive("metrics", args.metrics) };
const log = (m: string) => process.stderr.write(`[bench:exec] ${m}\n`);

async function timed(n: number, warmup: number, call: () => Promise<unknown>): Promise<LatencySummary> {
  for (let i = 0; i < warmup; i++) await call();
  const samples: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call();
    samples.push(performance.now() - t);
  }
  return summarize(samples);
}

const startedAt = new Date();
await using project = await createTestProject();
const colony = await project.start();
const api = colonyApi(colony.url, project.localToken);
const execToken = (await api.createToken({ name: "bench-exec", scope: TokenScope.EXEC, ttlSeconds: 3600n })).token;
const readToken = (await api.createToken({ name: "bench-read", scope: TokenScope.READ, ttlSeconds: 3600n })).token;
const port = await freePort();
const component = spawn(process.execPath, [sampleComponentScript, "store", String(port)], { stdio: "ignore" });
const agent = await testAgent(project, colony.url, "store", port);
try {
  await waitFor("store observed", async () => (await api.getStatus({})).services.find((s) => s.name === "store" && s.pid === component.pid), { timeoutMs: 60_000 });
  const root = process.getuid?.() === 0;

  // 1. exec
  log(`exec: ${options.calls} × true (${root ? "in the component's namespaces" : "on the host: not root"})`);
  const exec = serviceApi(ExecService, colony.url, execToken);
  const execOnce = async () => {
    let code = -1;
    for await (const r of exec.exec({ serviceName: "store", argv: ["true"], host: !root })) if (r.event.case === "exit") code = r.event.value.exitCode;
    if (code !== 0) throw new Error(`true exited ${code}`);
  };
  const execRpc = await timed(options.calls, 10, execOnce);
  const cliEnv = { ...process.env, CORAL_TOKEN: execToken, NO_COLOR: "1" };
  const cliRuns = Math.min(20, options.calls);
  const cli = await timed(cliRuns, 2, () => run(process.execPath, [coralBin, "exec", "store", ...(root ? [] : ["--host"]), "--colony-url", colony.url, "--", "true"], { env: cliEnv }));
  const nodeStart = await timed(cliRuns, 2, () => run(process.execPath, ["-e", "0"]));

  // 2. shell keystroke echo
  log(`shell: ${options.calls} keystrokes`);
  const shell = serviceApi(ShellService, colony.url, execToken);
  const abort = new AbortController();
  let sessionId = "";
  let screen = "";
  let onOutput: (() => void) | undefined;
  const stream = (async () => {
    for await (const r of shell.openShell({ serviceName: "store", host: !root, cols: 80, rows: 24 }, { signal: abort.signal })) {
      if (r.event.case === "started") sessionId = r.event.value.sessionId;
      else if (r.event.case === "data") {
        screen += Buffer.from(r.event.value).toString();
        onOutput?.();
      }
    }
  })().catch(() => undefined);
  await waitFor("the shell's prompt", () => sessionId !== "" && /[#$] $/.test(screen), { timeoutMs: 30_000, intervalMs: 20 });
  const letters = "abcdefghijklmnopqrstuvwxyz";
  let i = 0;
  const echo = await timed(options.calls, 5, async () => {
    const ch = letters[i++ % letters.length]!;
    const before = screen.length;
    const seen = new Promise<void>((resolveSeen) => {
      onOutput = () => {
        if (screen.slice(before).includes(ch)) resolveSeen();
      };
    });
    await shell.sendShellInput({ sessionId, data: new TextEncoder().encode(ch) });
    await seen;
  });
  await shell.sendShellInput({ sessionId, data: new TextEncoder().encode("\u0015exit\r") });
  await Promise.race([stream, new Promise((r) => setTimeout(r, 5000))]);
  abort.abort();

  // 3. query
  log(`query: loading ${options.services} services × 24 h × ${options.metrics} metrics`);
  const now = Math.floor(Date.now() / minute) * minute;
  for (let s = 0; s < options.services; s++) {
    const batches = [];
    for (let m = 0; m < 24 * 60; m += 60)
      batches.push(create(TelemetryBatchSchema, {
        batchId: `q-${s}-${m}`,
        agentId: `bench-agent-${s}`,
        serviceName: `svc-${String(s).padStart(2, "0")}`,
        metrics: Array.from({ length: 60 }, (_, k) => Array.from({ length: options.metrics }, (_, x) => summary(`metric_${x}`, new Date(now - (24 * 60 - m - k) * minute), s + k + x))).flat(),
      }));
    await colony.store.ingest(batches);
  }
  const rows = options.services * 24 * 60 * options.metrics;
  const query = serviceApi(QueryService, colony.url, readToken);
  const sql = `SELECT service_id, metric_name, avg(mean) AS mean, max(p99) AS p99, sum(count) AS n
    FROM metric_summaries WHERE interval = '1m' AND timestamp >= now()::TIMESTAMP - INTERVAL 1 DAY GROUP BY ALL ORDER BY ALL`;
  let groups = 0;
  const q = await timed(Math.min(options.calls, 50), 5, async () => {
    groups = (await query.query({ sql, maxRows: 10_000 })).rows.length;
  });

  const results = {
    benchmark: "exec",
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: await machineInfo(),
    load: await loadAverage(),
    options,
    root,
    exec: { rpc: execRpc, cli, nodeStart, cliOverNode: Math.round((cli.p50Ms / nodeStart.p50Ms) * 100) / 100 },
    shell: { keystrokeEcho: echo },
    query: { rows, groups, latency: q },
    targets: {
      exec: { targetMs: target.execMs, met: execRpc.p50Ms < target.execMs },
      echo: { targetP95Ms: target.echoP95Ms, met: echo.p95Ms < target.echoP95Ms },
      query: { targetMs: target.queryMs, met: q.p50Ms < target.queryMs },
    },
  };
  console.log(
    table(
      ["what", "calls", "p50 ms", "p95 ms", "p99 ms", "max ms"],
      [
        [`exec true (${root ? "namespaces" : "host"}), Connect`, execRpc.calls, execRpc.p50Ms, execRpc.p95Ms, execRpc.p99Ms, execRpc.maxMs],
        ["coral exec store -- true (CLI start included)", cli.calls, cli.p50Ms, cli.p95Ms, cli.p99Ms, cli.maxMs],
        ["node -e 0 (same run)", nodeStart.calls, nodeStart.p50Ms, nodeStart.p95Ms, nodeStart.p99Ms, nodeStart.maxMs],
        ["shell keystroke echo", echo.calls, echo.p50Ms, echo.p95Ms, echo.p99Ms, echo.maxMs],
        [`query: 1-day aggregate, ${options.services} services (${rows.toLocaleString("en-US")} rows → ${groups} groups)`, q.calls, q.p50Ms, q.p95Ms, q.p99Ms, q.maxMs],
      ],
    ),
  );
  console.log(
    `\nTargets: exec < ${target.execMs} ms: ${results.targets.exec.met ? "met" : "NOT met"} (p50 ${execRpc.p50Ms}); keystroke echo p95 < ${target.echoP95Ms} ms: ${results.targets.echo.met ? "met" : "NOT met"} (${echo.p95Ms}); query < ${target.queryMs} ms: ${results.targets.query.met ? "met" : "NOT met"} (p50 ${q.p50Ms})`,
  );
  const out = join(repoRoot, "bench", "results", `exec-${startedAt.toISOString().slice(0, 16).replace(/:/g, "")}Z.json`);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`wrote ${out}`);
} finally {
  await agent.close().catch(() => undefined);
  component.kill("SIGKILL");
}
