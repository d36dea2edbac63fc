// Mesh benchmark: how long from `coral connect` to the first summary stored in
// the colony, over the WireGuard mesh and over loopback, and how fast bytes
// cross the tunnel. Needs root and /dev/net/tun.
//
//   node --import tsx bench/mesh/run.ts [--runs 2] [--megabytes 64]
//
// Network namespaces as in tests/mesh: discovery in a hub namespace with a
// bridge, the colony (coral colony start --mesh wireguard) in one namespace,
// the agent in another. Each run starts `coral connect api --mesh wireguard
// --summary-interval 1s` fresh (new state folder: discovery lookup, bootstrap
// enrollment, interface, register, NATS) while a poller inside the colony's
// namespace asks the colony's QueryMetrics every 100 ms; the time is from the
// spawn to the first cpu_percent summary the colony returns. Loopback: a
// second project in loopback mode in the same colony namespace and an agent
// beside it, measured the same way. Throughput: 64 MB over one TCP connection
// from the agent's namespace to a sink on 10.42.0.1 (through wireguard-go),
// and the same over the underlay veth for comparison.
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { parseDocument } from "yaml";
import { PollTimeoutError, pollUntil } from "@coral/common/async";
import { runInit } from "@coral/cli/init";
import { runCoral } from "../../tests/helpers/cli.ts";
import { createUnderlay, meshTestUnavailableReason, sh, spawnCoralIn, spawnIn, startApp, type Spawned } from "../../tests/mesh/netns.ts";

const args = process.argv.slice(2);
const arg = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const RUNS = arg("runs", 2);
const MEGABYTES = arg("megabytes", 64);

const unavailable = meshTestUnavailableReason();
if (unavailable) {
  console.log(`bench/mesh skipped: ${unavailable}`);
  process.exit(0);
}

const prefix = `c5b${process.pid % 1000}`;
const processes: Spawned[] = [];
const work = await mkdtemp(join(tmpdir(), "coral-bench-mesh-"));
const net = await createUnderlay(prefix, ["colony", "agent"], 250);
const colonyNs = net.members.colony!.ns;
const agentNs = net.members.agent!.ns;
const home = join(work, "home");
process.env.CORAL_HOME = home;

async function project(name: string, edits: Array<[string[], unknown]>): Promise<string> {
  const dir = join(work, name);
  await runInit({ app: name, env: "dev", yes: true, dir }, { input: new PassThrough(), output: new PassThrough(), interactive: false });
  const file = join(dir, ".coral", "config.yaml");
  const doc = parseDocument(await readFile(file, "utf8"));
  for (const [path, value] of edits) doc.setIn(path, value);
  await writeFile(file, doc.toString());
  return dir;
}

async function waitOutput(p: Spawned, text: string, what: string, timeoutMs = 180_000): Promise<void> {
  await pollUntil(
    () => {
      if (p.output().includes(text)) return true;
      if (p.child.exitCode !== null) throw new Error(`${what} exited: ${p.output()}`);
      return undefined;
    },
    { what, timeoutMs, intervalMs: 100, onError: "throw" },
  ).catch((err: unknown) => {
    throw err instanceof PollTimeoutError ? new Error(`${what} did not print "${text}" in time: ${p.output()}`) : err;
  });
}

// Polls QueryMetrics inside a namespace; prints the epoch ms of the first answer with a point.
const POLLER = `
const [url, token, service, sinceMs] = process.argv.slice(1);
// Only summaries of this run: a summary's timestamp is the start of its window, after the agent started.
const since = new Date(Number(sinceMs)).toISOString();
const tick = async () => {
  try {
    const res = await fetch(url + "/coral.colony.v1.ColonyService/QueryMetrics", { method: "POST", headers: { "content-type": "application/json", authorization: "Bearer " + token },
      body: JSON.stringify({ service, metricName: "cpu_percent", since, interval: "1m" }) });
    const body = await res.json();
    if (body.series && body.series[0] && body.series[0].points && body.series[0].points.length > 0) { console.log(Date.now()); process.exit(0); }
  } catch {}
  setTimeout(tick, 100);
};
tick();
setTimeout(() => process.exit(3), 300000);
`;

async function timeToFirstSummary(options: { apiUrl: string; localToken: string; service: string; agentNs: string; connectArgs: string[]; env: Record<string, string>; cwd?: string }): Promise<number> {
  const started = Date.now();
  const poller = spawnIn(colonyNs, [process.execPath, "-e", POLLER, options.apiUrl, options.localToken, options.service, String(started)]);
  processes.push(poller);
  const agent = spawnCoralIn(options.agentNs, options.connectArgs, options.env);
  processes.push(agent);
  await new Promise<void>((resolve) => poller.child.once("exit", () => resolve()));
  const at = Number(poller.output().trim());
  await agent.stop();
  if (!at) throw new Error(`no summary arrived: ${agent.output()}`);
  return at - started;
}

// A byte sink: counts bytes until the client closes, prints the count.
const SINK = `const net=require("node:net");const s=net.createServer((c)=>{let n=0;c.on("data",(d)=>n+=d.length);c.on("end",()=>{c.end(String(n));});});s.listen(Number(process.argv[2]),process.argv[1],()=>console.log("ready"));`;
const SOURCE = `const net=require("node:net");const total=Number(process.argv[3])*1048576;const chunk=Buffer.alloc(65536,7);let sent=0;const t0=process.hrtime.bigint();
const c=net.connect({host:process.argv[1],port:Number(process.argv[2])},()=>{const pump=()=>{while(sent<total){sent+=chunk.length;if(!c.write(chunk)){c.once("drain",pump);return;}}c.end();};pump();});
let reply="";c.on("data",(d)=>reply+=d);c.on("end",()=>{const s=Number(process.hrtime.bigint()-t0)/1e9;console.log(JSON.stringify({bytes:Number(reply),seconds:s}));});`;

async function throughput(host: string, port: number): Promise<{ mbPerSecond: number; seconds: number }> {
  const sink = spawnIn(colonyNs, [process.execPath, "-e", SINK, host, String(port)]);
  processes.push(sink);
  await waitOutput(sink, "ready", "sink", 60_000);
  const r = await sh("ip", ["netns", "exec", agentNs, process.execPath, "-e", SOURCE, host, String(port), String(MEGABYTES)], { timeoutMs: 600_000 });
  await sink.stop();
  const { bytes, seconds } = JSON.parse(r.stdout) as { bytes: number; seconds: number };
  if (bytes !== MEGABYTES * 1048576) throw new Error(`sink counted ${bytes} bytes, expected ${MEGABYTES * 1048576}`);
  return { mbPerSecond: bytes / 1048576 / seconds, seconds };
}

const results: Record<string, unknown> = {};
try {
  const discovery = spawnIn(net.hub.ns, [process.execPath, join(import.meta.dirname, "../../discovery-worker/bin/coral-discovery.js"), "--port", "8080", "--host", "0.0.0.0", "--data-dir", join(work, "discovery"), "--rate-limit", "0"]);
  processes.push(discovery);
  await waitOutput(discovery, "listening", "discovery");

  const meshDir = await project("meshbench", [[["discovery", "endpoint"], `http://${net.hub.address}:8080`], [["colony", "api", "port"], 9000], [["nats", "port"], 4333]]);
  const colony = spawnCoralIn(colonyNs, ["colony", "start", "--dir", meshDir, "--mesh", "wireguard"], { CORAL_HOME: home, CORAL_PUBLIC_ENDPOINT: `${net.members.colony!.address}:41820`, CORAL_WG_INTERFACE: `${prefix}wc` });
  processes.push(colony);
  await waitOutput(colony, "Colony started successfully", "mesh colony");
  const invite = await runCoral(["colony", "invite", "--dir", meshDir, "--json"], { env: { CORAL_HOME: home } });
  const token = (JSON.parse(invite.stdout) as { token: string }).token;
  const meshToken = (await readFile(join(meshDir, ".coral", "local.token"), "utf8")).trim();
  processes.push(startApp(agentNs, 8080));

  const loopDir = await project("loopbench", [[["colony", "api", "port"], 9100], [["nats", "port"], 4433]]);
  const loopColony = spawnCoralIn(colonyNs, ["colony", "start", "--dir", loopDir], { CORAL_HOME: home });
  processes.push(loopColony);
  await waitOutput(loopColony, "Colony started successfully", "loopback colony");
  const loopToken = (await readFile(join(loopDir, ".coral", "local.token"), "utf8")).trim();
  processes.push(startApp(colonyNs, 8081));

  const mesh: number[] = [];
  const loop: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    mesh.push(
      await timeToFirstSummary({
        apiUrl: "http://10.42.0.1:9000",
        localToken: meshToken,
        service: "api",
        agentNs,
        connectArgs: ["connect", "api", "--port", "8080", "--join", token, "--mesh", "wireguard", "--data-dir", join(work, `mesh-agent-${i}`), "--summary-interval", "1s"],
        env: { CORAL_HOME: home, CORAL_WG_INTERFACE: `${prefix}wa` },
      }),
    );
    loop.push(
      await timeToFirstSummary({
        apiUrl: "http://127.0.0.1:9100",
        localToken: loopToken,
        service: "store",
        agentNs: colonyNs,
        connectArgs: ["connect", "store", "--port", "8081", "--data-dir", join(work, `loop-agent-${i}`), "--summary-interval", "1s", "--join", (JSON.parse((await runCoral(["colony", "invite", "--dir", loopDir, "--json"], { env: { CORAL_HOME: home } })).stdout) as { token: string }).token],
        env: { CORAL_HOME: home },
      }),
    );
    console.log(`run ${i + 1}: mesh ${mesh.at(-1)} ms, loopback ${loop.at(-1)} ms`);
  }
  results.timeToFirstSummaryMs = { mesh, loopback: loop };

  // Throughput: the last mesh agent's state folder still holds its enrollment; bring its interface up alone.
  const keep = spawnCoralIn(agentNs, ["connect", "api", "--port", "8080", "--join", token, "--mesh", "wireguard", "--data-dir", join(work, "mesh-agent-0")], { CORAL_HOME: home, CORAL_WG_INTERFACE: `${prefix}wa` });
  processes.push(keep);
  await waitOutput(keep, "✓ Connected: api", "agent for throughput");
  const overTunnel = await throughput("10.42.0.1", 7001);
  const overUnderlay = await throughput(net.members.colony!.address, 7002);
  results.throughput = { megabytes: MEGABYTES, tunnelMBps: overTunnel.mbPerSecond, underlayMBps: overUnderlay.mbPerSecond };
  await keep.stop();

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const load = (await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ");
  console.log("\n| measure | mesh (WireGuard) | loopback |");
  console.log("| --- | --- | --- |");
  console.log(`| coral connect → first summary in the colony, ms (runs: ${RUNS}) | ${mesh.join(", ")} (median ${median(mesh)}) | ${loop.join(", ")} (median ${median(loop)}) |`);
  console.log(`| one TCP stream, ${MEGABYTES} MB, MB/s | ${overTunnel.mbPerSecond.toFixed(1)} (through wireguard-go) | ${overUnderlay.mbPerSecond.toFixed(1)} (underlay veth, no tunnel) |`);
  console.log(`\nmachine: ${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, load average at the end ${load}, node ${process.version}`);
} finally {
  for (const p of processes.reverse()) await p.stop(10_000).catch(() => undefined);
  await net.destroy();
  await rm(work, { recursive: true, force: true });
}

