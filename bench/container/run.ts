// Colony container benchmark. Prints its figures and writes bench/results/container-<date>.json.
//
//   node --import tsx bench/container/run.ts [--agents 10] [--load-seconds 60] [--cold-starts 3]
//
// 1. Builds infra/colony/Containerfile on the local base image (built once by
//    infra/base-image/build.sh if missing) with podman, and reads its size.
// 2. First start: `podman run` with a new volume until the image's health check
//    passes (coral init + colony start), then a token from `coral token create`.
// 3. Cold start, --cold-starts times: `podman stop`, then from `podman start`
//    until the host's `coral status --colony-url … --token …` first answers.
// 4. RSS: VmRSS of the colony's node process and its nats-server (from the
//    host's /proc), idle and after --load-seconds of --agents synthetic agents
//    (tests/helpers/synthetic-agent.ts: the real wire format) enrolling, each
//    with its own key, through the standing invitation (CORAL_ENROLL_SECRET,
//    invitation "env") and registering,
//    heartbeating every 5 s and publishing a batch of metric summaries, an
//    event and a connection every second each over the published NATS port.
// Needs root and podman. Removes its image, container and volume at the end.
import { randomBytes } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { sleep } from "@coral/common/async";
import { runCoral } from "../../tests/helpers/cli.ts";
import { freePort } from "../../tests/helpers/ports.ts";
import { SyntheticAgent } from "../../tests/helpers/synthetic-agent.ts";
import { waitFor } from "../../tests/helpers/wait.ts";
import { Cleanup, buildImage, ensureBaseImage, limits, podman, podmanMissing, repoRoot, uniqueName } from "../../tests/deploy/podman.ts";
import { descendants, loadAverage, machineInfo, readStatus, commandLine } from "../agent-footprint/proc.ts";

const { values } = parseArgs({
  options: { agents: { type: "string", default: "10" }, "load-seconds": { type: "string", default: "60" }, "cold-starts": { type: "string", default: "3" } },
});
const agentCount = Number(values.agents);
const loadSeconds = Number(values["load-seconds"]);
const coldStarts = Number(values["cold-starts"]);

const missing = await podmanMissing();
if (missing) {
  console.error(`bench/container: ${missing}`);
  process.exit(1);
}

const cleanup = new Cleanup();
const image = `localhost/${uniqueName("bench-colony")}:bench`;
const name = uniqueName("bench-colony");
const volume = uniqueName("bench-data");
const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;

function rssOf(hostPid: number): { colonyKb: number; natsKb: number } {
  const colonyKb = readStatus(hostPid).vmRssKb;
  let natsKb = 0;
  for (const pid of descendants(hostPid)) if (commandLine(pid).includes("nats-server")) natsKb += readStatus(pid).vmRssKb;
  return { colonyKb, natsKb };
}

try {
  const base = await ensureBaseImage();
  cleanup.images.push(image);
  const buildStart = Date.now();
  await buildImage("infra/colony/Containerfile", image, { BASE_IMAGE: base });
  const buildSeconds = (Date.now() - buildStart) / 1000;
  const imageBytes = Number(await podman(["image", "inspect", "--format", "{{.Size}}", image]));
  const baseBytes = Number(await podman(["image", "inspect", "--format", "{{.Size}}", base]));

  const apiPort = await freePort();
  const natsPort = await freePort();
  const secret = randomBytes(32).toString("hex");
  cleanup.containers.push(name);
  cleanup.volumes.push(volume);
  await podman(["volume", "create", volume]);
  const firstStart = Date.now();
  await podman([
    "run", "-d", "--name", name, ...limits, "-v", `${volume}:/data`,
    "-p", `127.0.0.1:${apiPort}:9000`, "-p", `127.0.0.1:${natsPort}:4333`,
    "-e", `CORAL_ENROLL_SECRET=${secret}`, "-e", `CORAL_NATS_ADVERTISE_URL=nats://127.0.0.1:${natsPort}`,
    image,
  ]);
  await waitFor("the first start's health check", async () => (await podman(["healthcheck", "run", name]), true), { timeoutMs: 300_000, intervalMs: 250 });
  const firstStartMs = Date.now() - firstStart;
  const token = (JSON.parse(await podman(["exec", name, "coral", "token", "create", "--name", "bench", "--scope", "admin", "--json"])) as { token: string }).token;
  const url = `http://127.0.0.1:${apiPort}`;
  const status = async () => {
    const res = await runCoral(["status", "--colony-url", url, "--token", token, "--json"]);
    return res.code === 0 || undefined;
  };

  const coldStartMs: number[] = [];
  for (let i = 0; i < coldStarts; i++) {
    await podman(["stop", "-t", "30", name], 120_000);
    const t0 = Date.now();
    await podman(["start", name]);
    await waitFor("the first answered coral status", status, { timeoutMs: 300_000, intervalMs: 100 });
    coldStartMs.push(Date.now() - t0);
  }

  const hostPid = Number(await podman(["inspect", "--format", "{{.State.Pid}}", name]));
  // Settle after start-up before the idle reading.
  await sleep(10_000);
  const idle = rssOf(hostPid);

  const invitation = { invitationId: "env", invitationSecret: secret };
  const agents = Array.from({ length: agentCount }, (_, i) => new SyntheticAgent({ colonyUrl: url, invitation, agentId: `bench-${i}`, serviceName: `svc-${i}`, port: 8000 + i }));
  for (const agent of agents) {
    await agent.register();
    await agent.connectNats();
  }
  const peak = { colonyKb: 0, natsKb: 0 };
  let batches = 0;
  const loadStart = Date.now();
  for (let second = 0; Date.now() - loadStart < loadSeconds * 1000; second++) {
    const tick = Date.now();
    const now = timestampFromDate(new Date());
    await Promise.all(
      agents.map(async (agent, i) => {
        if (second % 5 === 0) await agent.heartbeat();
        await agent.publish({
          metrics: ["cpu_percent", "memory_bytes", "fd_count"].map((metricName) => ({ timestamp: now, metricName, interval: "1m", p50: 10, p95: 20, p99: 30, mean: 11, max: 40, min: 1, count: 60n })),
          events: [{ eventId: `bench-${i}-${second}`, timestamp: now, eventType: "health_check", detailsJson: "{}" }],
          connections: [{ localAddr: `127.0.0.1:${8000 + i}`, remoteAddr: `127.0.0.1:${8000 + ((i + 1) % agentCount)}`, state: "ESTABLISHED", observedAt: now, count: 1 }],
        });
        batches++;
      }),
    );
    const rss = rssOf(hostPid);
    peak.colonyKb = Math.max(peak.colonyKb, rss.colonyKb);
    peak.natsKb = Math.max(peak.natsKb, rss.natsKb);
    await sleep(1000 - (Date.now() - tick));
  }
  const loaded = rssOf(hostPid);
  for (const agent of agents) await agent[Symbol.asyncDispose]();
  const seen = JSON.parse((await runCoral(["status", "--colony-url", url, "--token", token, "--json"])).stdout) as { services?: unknown[] };

  const median = [...coldStartMs].sort((a, b) => a - b)[Math.floor(coldStartMs.length / 2)]!;
  const result = {
    date: new Date().toISOString(),
    machine: machineInfo(),
    loadAverage: loadAverage(),
    image: { bytes: imageBytes, mb: Math.round(imageBytes / 1e6), baseMb: Math.round(baseBytes / 1e6), buildSeconds },
    firstStartMs,
    coldStartMs,
    coldStartMedianMs: median,
    rss: {
      idle: { colonyMb: mb(idle.colonyKb), natsMb: mb(idle.natsKb) },
      withAgents: { agents: agentCount, seconds: loadSeconds, batches, colonyMb: mb(loaded.colonyKb), natsMb: mb(loaded.natsKb), peakColonyMb: mb(peak.colonyKb), peakNatsMb: mb(peak.natsKb) },
    },
    servicesSeen: seen.services?.length ?? 0,
  };
  console.log(`image size            ${result.image.mb} MB (base ${result.image.baseMb} MB), built in ${buildSeconds.toFixed(0)} s`);
  console.log(`first start → healthy ${(firstStartMs / 1000).toFixed(1)} s (coral init + colony start)`);
  console.log(`cold start → status   ${coldStartMs.map((m) => (m / 1000).toFixed(1)).join(", ")} s (median ${(median / 1000).toFixed(1)} s)`);
  console.log(`RSS idle              colony ${result.rss.idle.colonyMb} MB + nats-server ${result.rss.idle.natsMb} MB`);
  console.log(
    `RSS ${agentCount} agents, ${loadSeconds} s  colony ${result.rss.withAgents.colonyMb} MB (peak ${result.rss.withAgents.peakColonyMb}) + nats-server ${result.rss.withAgents.natsMb} MB (peak ${result.rss.withAgents.peakNatsMb}); ${batches} batches; ${result.servicesSeen} services in status`,
  );
  const dir = join(repoRoot, "bench/results");
  await mkdir(dir, { recursive: true });
  const file = join(dir, `container-${result.date.slice(0, 19).replace(/:/g, "-")}.json`);
  await writeFile(file, JSON.stringify(result, null, 2) + "\n");
  console.log(`wrote ${file}`);
} finally {
  await cleanup.run();
}
