// MCP read-tool benchmark: latency of each Coral read tool, and the size of
// its typical answer, on a colony with 20 agents and 24 h of data.
//
//   node --import tsx bench/mcp/run.ts [--agents 20] [--metrics 5] [--calls 50]
//   npm run bench:mcp
//
// Setup: a real colony (temp project after `coral init`, its own nats-server
// and DuckDB file); --agents synthetic agents register over Connect (secret
// proof) and heartbeat; 24 h of 1-minute summaries for --metrics metrics per
// agent plus events (a deploy every 6 h, a few restarts and health changes per
// agent) go in through the store's ingest API (colony.store.ingest, as the
// colony's ingestion consumer calls it), then one rollup; every agent also
// publishes its connections over NATS (two peers and a database), so the
// topology has edges.
//
// Measured, per tool and typical arguments, --calls sequential calls after 10
// warm-up calls:
//   A. through MCP: the SDK's client speaking to `coral mcp server` (a
//      separate process, stdio), which calls the colony over Connect: what an
//      assistant sees;
//   B. in process: the registry's tool.run() over a Connect client (JSON, like
//      the CLI): the tool's own cost without the MCP hop.
// Answer size: characters of the text answer, and tokens ESTIMATED as
// characters / 4 (the estimate cli/src/tools uses for its budget; no
// tokenizer for current Claude models runs offline, and @anthropic-ai/tokenizer
// only knows the pre-Claude-3 vocabulary). Targets: p95 < 200 ms, < 2,000 tokens.
// Exits non-zero only when something breaks, never because a target is missed.
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import { PollTimeoutError, pollUntil } from "@coral/common/async";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { HealthStatus } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import { TelemetryBatchSchema, type Event, type MetricSummary, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { coralTools, estimateTokens, findTool } from "@coral/cli/tools";
import { colonyApi, createTestProject } from "../../tests/helpers/colony.ts";
import { SyntheticAgent } from "../../tests/helpers/synthetic-agent.ts";
import { stdioClient } from "../../tests/mcp/helpers.ts";
import { cpuBetween, cpuSnapshot, loadAverage, machineInfo, summarize, table, type LatencySummary } from "../colony-ingest/lib.ts";
import { summary } from "../colony-ingest/workload.ts";
import { positive } from "../args.ts";

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const target = { p95Ms: 200, tokens: 2000 };
const minute = 60_000;

const { values: args } = parseArgs({
  options: {
    agents: { type: "string", default: "20" },
    metrics: { type: "string", default: "5" },
    calls: { type: "string", default: "50" },
  },
});
const options = { agents: positive("agents", args.agents), metrics: positive("metrics", args.metrics), calls: positive("calls", args.calls) };
const log = (m: string) => process.stderr.write(`[bench:mcp] ${m}\n`);

const svc = (a: number) => `svc-${String(a).padStart(2, "0")}`;

/** The calls measured: each read tool with the arguments an assistant typically sends. */
function cases(incidentIso: string): Array<{ tool: string; label: string; args: Record<string, unknown> }> {
  return [
    { tool: "coral_get_status", label: "{}", args: {} },
    { tool: "coral_get_topology", label: "{}", args: {} },
    { tool: "coral_query_events", label: "since 24h, all services", args: { since: "24h" } },
    { tool: "coral_query_events", label: "one service, since 24h", args: { service: svc(3), since: "24h" } },
    { tool: "coral_query_metrics", label: "one service, all metrics, 1h", args: { service: svc(3) } },
    { tool: "coral_query_metrics", label: "one metric, 24h", args: { service: svc(3), metric: "http_latency_ms", since: "24h" } },
    { tool: "coral_analyze_correlation", label: "at a deploy wave, ±15m", args: { incident_time: incidentIso } },
    { tool: "coral_get_insights", label: "{}", args: {} },
  ];
}

interface Row {
  tool: string;
  label: string;
  mcp: LatencySummary;
  inProcess: LatencySummary;
  chars: number;
  tokens: number;
  firstLine: string;
}

async function main(): Promise<void> {
  const machine = await machineInfo();
  log(`machine: ${JSON.stringify(machine)}`);
  await using project = await createTestProject({ app: "bench-mcp" });
  const colony = await project.start();
  const api = colonyApi(colony.url, project.localToken);
  const metricNames = ["http_latency_ms", "cpu_percent", "memory_bytes", "requests_per_s", "errors_per_s", ...Array.from({ length: 50 }, (_, i) => `extra_${i}`)].slice(0, options.metrics);

  // ---- agents and 24 h of data
  const agents = Array.from(
    { length: options.agents },
    (_, a) => new SyntheticAgent({ colonyUrl: colony.url, localToken: project.localToken, agentId: `agent-${a}`, serviceName: svc(a), port: 10_000 + a, version: `2.${a % 4}.0` }),
  );
  for (const [a, agent] of agents.entries()) {
    await agent.register();
    await agent.heartbeat(a % 7 === 3 ? HealthStatus.DEGRADED : HealthStatus.HEALTHY, { restartCount: a % 5 });
  }
  log(`registered ${agents.length} agents`);

  const end = Math.floor(Date.now() / minute) * minute - minute;
  const first = end - 1439 * minute;
  const batches: TelemetryBatch[] = [];
  const ev = (id: string, at: number, type: string, details: Record<string, unknown>) =>
    ({ eventId: id, timestamp: timestampFromDate(new Date(at)), eventType: type, detailsJson: JSON.stringify(details) }) as Event;
  agents.forEach((agent, a) => {
    for (let h = 0; h < 24; h++) {
      const metrics: MetricSummary[] = [];
      for (let m = 0; m < 60; m++) {
        const at = new Date(first + (h * 60 + m) * minute);
        metricNames.forEach((name, k) => metrics.push(summary(name, at, a + h + m + k)));
      }
      const hourStart = first + h * 60 * minute;
      const events: Event[] = [];
      if (h % 6 === 0) events.push(ev(`deploy-${a}-${h}`, hourStart + (5 + a) * minute, "deploy", { version: `2.${a % 4}.${h / 6}`, previous: `2.${a % 4}.${Math.max(0, h / 6 - 1)}` }));
      if ((h + a) % 8 === 0) events.push(ev(`restart-${a}-${h}`, hourStart + 30 * minute, "restart", { exit_code: 137, signal: "SIGKILL", reason: "OOMKilled" }));
      if ((h + a) % 11 === 0) events.push(ev(`health-${a}-${h}`, hourStart + 40 * minute, "health_changed", { from: "healthy", to: "degraded", check: "/healthz" }));
      batches.push(create(TelemetryBatchSchema, { batchId: `load-${a}-${h}`, agentId: agent.options.agentId, serviceName: agent.options.serviceName, createdAt: timestampFromDate(new Date()), metrics, events }));
    }
  });
  const tLoad = performance.now();
  let rows = 0;
  let events = 0;
  for (let i = 0; i < batches.length; i += 50) {
    const r = await colony.store.ingest(batches.slice(i, i + 50));
    rows += r.metricRows;
    events += r.eventRows;
  }
  const rolled = await colony.store.rollup(new Date());
  log(`loaded ${rows} 1m rows and ${events} events in ${((performance.now() - tLoad) / 1000).toFixed(1)} s; rollup ${JSON.stringify(rolled)}`);

  // Connections over NATS (the colony's own ingestion path): two peers and a database each.
  const observedAt = timestampFromDate(new Date());
  for (const [a, agent] of agents.entries()) {
    const peers = [(a + 1) % agents.length, (a + 7) % agents.length].map((p) => `127.0.0.1:${10_000 + p}`);
    await agent.publish({
      connections: [...peers, "10.0.0.5:5432"].map((remote, i) => ({ localAddr: `127.0.0.1:${40_000 + a * 10 + i}`, remoteAddr: remote, state: "ESTABLISHED", observedAt, count: 1 + i })),
    });
  }
  let edges = 0;
  await pollUntil(
    async () => {
      edges = (await api.getTopology({})).edges.length;
      return edges >= agents.length ? true : undefined;
    },
    { what: "the topology", timeoutMs: 60_000, intervalMs: 250, onError: "throw" },
  ).catch((err: unknown) => {
    if (!(err instanceof PollTimeoutError)) throw err;
    log(`topology has ${edges} edges after 60 s; measuring anyway`);
  });
  log("connections ingested");

  // ---- measurements
  // Ten minutes into hour 18 of the data: every agent deployed between 5 and 24 minutes into it.
  const incident = new Date(first + (18 * 60 + 10) * minute).toISOString();
  const list = cases(incident);
  for (const c of list) if (!findTool(c.tool)) throw new Error(`no tool ${c.tool} in the registry`);
  const readTools = coralTools.filter((t) => t.readOnly).map((t) => t.name);
  const missing = readTools.filter((name) => !list.some((c) => c.tool === name));
  if (missing.length > 0) log(`read tools without a case (added since this benchmark was written): ${missing.join(", ")}`);

  const env = { CORAL_HOME: project.home, CORAL_API_PORT: String(new URL(colony.url).port) };
  const mcp = await stdioClient({ cwd: project.dir, env });
  const ctx = { colony: api };
  const cpu0 = await cpuSnapshot({});
  const results: Row[] = [];
  try {
    for (const c of list) {
      const viaMcp = async () => {
        const res = (await mcp.client.callTool({ name: c.tool, arguments: c.args })) as CallToolResult;
        const text = res.content.map((b) => (b.type === "text" ? b.text : "")).join("\n");
        if (res.isError) throw new Error(`${c.tool} ${JSON.stringify(c.args)}: ${text}`);
        return text;
      };
      const inProcess = async () => (await findTool(c.tool)!.run(ctx, c.args)).text;
      const time = async (fn: () => Promise<string>) => {
        for (let i = 0; i < 10; i++) await fn();
        const samples: number[] = [];
        let text = "";
        for (let i = 0; i < options.calls; i++) {
          const t = performance.now();
          text = await fn();
          samples.push(performance.now() - t);
        }
        return { summary: summarize(samples), text };
      };
      const a = await time(viaMcp);
      const b = await time(inProcess);
      results.push({
        tool: c.tool,
        label: c.label,
        mcp: a.summary,
        inProcess: b.summary,
        chars: a.text.length,
        tokens: estimateTokens(a.text),
        firstLine: a.text.split("\n")[0]!.slice(0, 120),
      });
      log(`${c.tool} (${c.label}): MCP p95 ${a.summary.p95Ms} ms, in-process p95 ${b.summary.p95Ms} ms, ${a.text.length} chars`);
    }
  } finally {
    await mcp.client.close();
  }
  const cpu = cpuBetween(cpu0, await cpuSnapshot({}), "bench (colony + clients)");
  const load = await loadAverage();

  console.log(
    `\nMCP read tools: ${options.agents} agents, 24 h of 1-minute summaries for ${options.metrics} metrics each (${rows} rows) and ${events} events; ` +
      `${options.calls} sequential calls per case after 10 warm-up calls.\n` +
      "A = SDK client → `coral mcp server` (stdio, separate process) → colony over Connect; B = registry tool.run() in process over Connect (JSON).\n" +
      "Tokens are ESTIMATED as characters / 4 (targets: p95 < 200 ms, answer < 2,000 tokens).\n",
  );
  console.log(
    table(
      ["tool", "arguments", "A p50 ms", "A p95 ms", "A p99 ms", "B p50 ms", "B p95 ms", "chars", "≈ tokens", "targets"],
      results.map((r) => [
        r.tool,
        r.label,
        r.mcp.p50Ms,
        r.mcp.p95Ms,
        r.mcp.p99Ms,
        r.inProcess.p50Ms,
        r.inProcess.p95Ms,
        r.chars,
        r.tokens,
        r.mcp.p95Ms < target.p95Ms && r.tokens < target.tokens ? "met" : `MISSED${r.mcp.p95Ms >= target.p95Ms ? " (p95)" : ""}${r.tokens >= target.tokens ? " (size)" : ""}`,
      ]),
    ),
  );
  console.log(`\nCPU during the measurements: ${JSON.stringify(cpu)}; load average ${load}`);
  console.log("\nFirst line of each answer:");
  for (const r of results) console.log(`  ${r.tool} (${r.label}): ${r.firstLine}`);

  const out = join(repoRoot, "bench", "results", `mcp-${new Date().toISOString().slice(0, 10)}.json`);
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, JSON.stringify({ machine, options, rows, events, rollup: rolled, cpu, loadAverage: load, target, results }, null, 2));
  log(`wrote ${out}`);
  for (const agent of agents) await agent[Symbol.asyncDispose]();
}

await main();
