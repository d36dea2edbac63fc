// coral connect <service> --port N: run an agent beside one app component.
import { spawn } from "node:child_process";
import { existsSync, openSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createConnectTransport } from "@connectrpc/connect-node";
import { startAgent, type AgentNotice } from "@coral/agent";
import { sleep } from "@coral/common/async";
import { createLogger } from "@coral/common/log";
import { DiscoveryClient, decodeJoinToken, resolveEndpoints } from "@coral/proto";
import { Command, InvalidArgumentError, Option } from "commander";
import { coralHome, currentColony, loadColonyConfig, loadColonyKeys, parseDuration } from "@coral/colony";
import { decodeMeshToken, joinMesh, type MeshTarget } from "./mesh-join.ts";
import { UsageError, parsePortOption } from "./options.ts";
import { waitUntil } from "./wait.ts";

export interface AgentTarget {
  colonyId: string;
  colonyUrl: string;
  secret: string;
  /** Default data folder for an agent of `service`. */
  dataDirFor(service: string): string;
}

/**
 * A sidecar's colony from its environment (compose, Kubernetes): CORAL_COLONY_URL
 * and CORAL_COLONY_SECRET (shared with the colony through a secret store), so
 * no join token has to be minted after the colony starts.
 */
export function directTarget(env: Readonly<Record<string, string | undefined>>): AgentTarget | undefined {
  const colonyUrl = env.CORAL_COLONY_URL?.trim();
  const secret = env.CORAL_COLONY_SECRET?.trim();
  if (!colonyUrl || !secret) return undefined;
  if (!/^[0-9a-f]{64}$/.test(secret)) throw new UsageError("CORAL_COLONY_SECRET must be 64 hex characters (the colony's secret, e.g. from: openssl rand -hex 32)");
  try {
    if (!["http:", "https:"].includes(new URL(colonyUrl).protocol)) throw new Error();
  } catch {
    throw new UsageError(`CORAL_COLONY_URL "${colonyUrl}" is not an http(s) URL, e.g. http://coral-colony:9000`);
  }
  const colonyId = env.CORAL_COLONY_ID?.trim() || "colony";
  return { colonyId, colonyUrl, secret, dataDirFor: (service) => join(coralHome(env), "agents", colonyId, service) };
}

/** Finds the colony an agent joins: a join token, the environment (sidecars), or the local colony. */
export async function resolveAgentTarget(joinToken: string | undefined, projectDir = process.cwd()): Promise<AgentTarget> {
  if (joinToken) {
    const decoded = decodeJoinToken(joinToken);
    if ("error" in decoded) throw new Error(`--join: ${decoded.error}`);
    const token = decoded.token;
    let colonyUrl = token.colonyUrl;
    if (token.discoveryUrl) {
      // Discovery is untrusted: the answer must be signed by the colony key in the token.
      const client = new DiscoveryClient({ transport: createConnectTransport({ baseUrl: token.discoveryUrl, httpVersion: "1.1" }), url: token.discoveryUrl });
      const answer = await client.lookupColony(token.colonyId, { pinnedKey: token.colonyPubkey });
      const endpoint = resolveEndpoints(answer)[0];
      const host = endpoint ? endpoint.slice(0, endpoint.lastIndexOf(":")) : "127.0.0.1";
      colonyUrl = `http://${host}:${answer.connectPort}`;
    }
    if (!colonyUrl) throw new Error("the join token names neither a colony URL nor a discovery service");
    return {
      colonyId: token.colonyId,
      colonyUrl,
      secret: token.secret,
      dataDirFor: (service) => join(coralHome(), "agents", token.colonyId, service),
    };
  }
  const direct = directTarget(process.env);
  if (direct) return direct;
  const dir = existsSync(join(projectDir, ".coral", "config.yaml")) ? projectDir : (await currentColony())?.project_dir;
  if (!dir)
    throw new Error("no colony to join: pass --join <token> (from coral colony invite) or run this where coral init was run");
  const config = await loadColonyConfig(dir);
  const keys = await loadColonyKeys(dir);
  const host = config.colony.api.host === "0.0.0.0" ? "127.0.0.1" : config.colony.api.host;
  return {
    colonyId: config.colony.colony_id,
    colonyUrl: `${config.colony.api.tls ? "https" : "http"}://${host}:${config.colony.api.port}`,
    secret: keys.secret,
    dataDirFor: (service) => join(dir, ".coral", "agents", service),
  };
}

function tagsOption(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const tags = { ...previous };
  for (const pair of value.split(",").filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq < 1) throw new InvalidArgumentError(`"${pair}" must look like key=value, e.g. version=2.1.0`);
    tags[pair.slice(0, eq).trim()] = pair.slice(eq + 1).trim();
  }
  return tags;
}

function durationOption(value: string): number {
  const parsed = parseDuration(value);
  if ("error" in parsed) throw new InvalidArgumentError(`${parsed.error}; use e.g. 1s, 30s, 1m`);
  if (parsed.ms < 100) throw new InvalidArgumentError("must be at least 100ms");
  return parsed.ms;
}

function urlOption(value: string): string {
  try {
    const url = new URL(value);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error();
    return url.toString();
  } catch {
    throw new InvalidArgumentError(`"${value}" is not an http(s) URL`);
  }
}

export function describeNotice(service: string, n: AgentNotice): string | undefined {
  switch (n.kind) {
    case "waiting":
      return `… Waiting for a process to listen on port ${n.port}`;
    case "observing":
      return `  Observing: pid ${n.pid}${n.comm ? ` (${n.comm})` : ""}`;
    case "connection":
      return `  → ${service} connects to ${n.remote}`;
    case "health":
      return n.healthy ? `  ✓ Health: ok` : `  ✗ Health: failing (${n.detail})`;
    case "event":
      return n.type === "restart" || n.type === "process_exited" ? `  ! ${n.type.replace("_", " ")}: ${JSON.stringify(n.details)}` : undefined;
    default:
      return undefined;
  }
}

/** Re-runs this command without --daemon as a detached process, and waits until it connects. */
async function runDetached(service: string, dataDir: string): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const logPath = join(dataDir, "agent.log");
  const out = openSync(logPath, "a");
  const args = process.argv.slice(2).filter((a) => a !== "--daemon");
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args, "--data-dir", dataDir], {
    detached: true,
    stdio: ["ignore", out, out],
    env: process.env,
  });
  child.unref();
  await waitUntil(`the agent to connect (see ${logPath})`, 60_000, async () => {
    if (child.exitCode !== null) throw new Error(`the agent exited with code ${child.exitCode}; see ${logPath}`);
    const text = await readFile(logPath, "utf8").catch(() => "");
    return text.includes(`✓ Connected: ${service}`) ? true : undefined;
  });
  await writeFile(join(dataDir, "agent.pid"), `${child.pid}\n`);
  console.log(`✓ Connected: ${service} (agent running in the background, pid ${child.pid})`);
  console.log(`  Logs: ${logPath}`);
  console.log(`  Stop it with: kill ${child.pid}`);
}

export function connectCommand(): Command {
  return new Command("connect")
    .description("observe one app component: its process, connections, health and metrics (the agent)")
    .argument("[service]", "component name, e.g. api (or CORAL_COMPONENT)")
    .addOption(new Option("--port <port>", "port the component listens on").env("CORAL_PORT").argParser(parsePortOption))
    .addOption(new Option("--health <url>", "health endpoint to probe (default: TCP connect to the port)").env("CORAL_HEALTH_URL").argParser(urlOption))
    .addOption(new Option("--metrics <url>", "Prometheus endpoint to scrape").env("CORAL_METRICS_URL").argParser(urlOption))
    .addOption(new Option("--tags <k=v,...>", "labels, e.g. version=2.1.0").env("CORAL_TAGS").argParser(tagsOption))
    .addOption(new Option("--sdk <port>", "port of the app's Coral SDK (default: found from the SDK's announcement)").env("CORAL_SDK_PORT").argParser(parsePortOption))
    .addOption(new Option("--join <token>", "join token from coral colony invite").env("CORAL_JOIN_TOKEN"))
    .addOption(new Option("--data-dir <dir>", "where the agent keeps its local data").env("CORAL_AGENT_DATA_DIR"))
    .addOption(new Option("--mesh <mode>", "loopback (same machine) or wireguard (join the colony's WireGuard mesh; needs root)").choices(["loopback", "wireguard"]).env("CORAL_MESH_MODE").default("loopback"))
    .option("--daemon", "run in the background; logs go to agent.log in the data folder")
    .option("--sample-interval <duration>", "how often to sample the process", durationOption, 1000)
    .option("--summary-interval <duration>", "how often to send summaries to the colony", durationOption, 60_000)
    .addOption(new Option("--log-level <level>").choices(["debug", "info", "warn", "error"]).default("warn"))
    .action(async (serviceArg: string | undefined, opts: {
      port?: number;
      health?: string;
      metrics?: string;
      tags?: Record<string, string>;
      sdk?: number;
      join?: string;
      dataDir?: string;
      mesh: "loopback" | "wireguard";
      daemon?: boolean;
      sampleInterval: number;
      summaryInterval: number;
      logLevel: "debug" | "info" | "warn" | "error";
    }) => {
      const service = serviceArg ?? process.env.CORAL_COMPONENT;
      if (!service) throw new UsageError("name the component: coral connect <service> --port <port> (or set CORAL_COMPONENT)");
      if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(service))
        throw new UsageError(`"${service}" must be lowercase letters, digits and inner hyphens, e.g. api`);
      if (!opts.port) throw new UsageError("--port is required (or CORAL_PORT): the port the component listens on");
      const meshToken = opts.mesh === "wireguard" ? decodeMeshToken(opts.join) : undefined;
      const target = meshToken
        ? { colonyId: meshToken.colonyId, colonyUrl: "", secret: meshToken.secret, dataDirFor: (s: string) => join(coralHome(), "agents", meshToken.colonyId, s) }
        : await resolveAgentTarget(opts.join);
      const dataDir = resolve(opts.dataDir ?? target.dataDirFor(service));
      if (opts.daemon) {
        await runDetached(service, dataDir);
        return;
      }
      const log = createLogger({ level: opts.logLevel });
      // Listen for Ctrl+C before starting, so a stop during start-up is graceful too.
      const stopped = new Promise<void>((done) => {
        process.once("SIGINT", () => done());
        process.once("SIGTERM", () => done());
      });
      let mesh: MeshTarget | undefined;
      if (meshToken) {
        mesh = await joinMesh({ token: meshToken, serviceName: service, dataDir, log });
        target.colonyUrl = mesh.colonyUrl;
        console.log(`✓ Joined the mesh: ${mesh.enrollment.meshIpv4} on ${mesh.iface.name} (colony ${mesh.enrollment.colonyMeshIpv4} via ${mesh.enrollment.colonyEndpoint})`);
      }
      let agent;
      try {
        agent = await startAgent({
          serviceName: service,
          port: opts.port,
          colonyUrl: target.colonyUrl,
          secret: target.secret,
          healthUrl: opts.health,
          metricsUrl: opts.metrics,
          tags: opts.tags,
          version: opts.tags?.version,
          sdkPort: opts.sdk,
          dataDir,
          sampleIntervalMs: opts.sampleInterval,
          summaryIntervalMs: opts.summaryInterval,
          logger: log,
          meshAddress: mesh?.enrollment.meshIpv4,
          onNotice: (n) => {
            if (n.kind === "connected") {
              console.log(`✓ Connected: ${service} (localhost:${opts.port})`);
              console.log(`  Colony: ${n.colonyId} (${target.colonyUrl})`);
              console.log(`  Watching: process on port ${opts.port}, connections, health ${opts.health ?? "(TCP connect)"}${opts.metrics ? `, metrics ${opts.metrics}` : ""}`);
              return;
            }
            const line = describeNotice(service, n);
            if (line) console.log(line);
          },
        });
      } catch (err) {
        await mesh?.close();
        throw err;
      }
      console.log("Press Ctrl+C to stop");
      await stopped;
      // Over a tunnel that is gone (revoked, colony away) the goodbye can hang:
      // the interface comes down regardless.
      await (mesh ? Promise.race([agent.close("stopped by the user"), sleep(8000, undefined, { unref: true })]) : agent.close("stopped by the user"));
      await mesh?.close();
    });
}
