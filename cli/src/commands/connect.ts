// coral connect <service> --port N: run an agent beside one app component.
import { spawn } from "node:child_process";
import { existsSync, fstatSync, openSync, readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { createConnectTransport } from "@connectrpc/connect-node";
import { loadAgentIdentity, startAgent, type AgentNotice, type Invitation } from "@coral/agent";
import { sleep } from "@coral/common/async";
import { createLogger } from "@coral/common/log";
import { DiscoveryClient, decodeJoinToken, invitationSecretPattern, resolveEndpoints, type JoinToken } from "@coral/proto";
import { IdentityService } from "@coral/proto/gen/coral/colony/v1/identity_pb";
import { Command, InvalidArgumentError, Option } from "commander";
import { coralHome, currentColony, loadColonyConfig, parseDuration } from "@coral/colony";
import { readJoinToken, withJoinOptions, type JoinTokenSource } from "./join-input.ts";
import { rollbackConfigFrom, withRollbackOptions, type RollbackFlags } from "./rollback-flags.ts";
import { explainError, resolveTarget, serviceClient } from "./remote.ts";
import { decodeMeshToken, joinMesh, type MeshTarget } from "./mesh-join.ts";
import { UsageError, durationFlag, intOption, parsePortOption } from "./options.ts";
import { waitUntil } from "./wait.ts";

export interface AgentTarget {
  colonyId: string;
  colonyUrl: string;
  /** The colony's identity key, pinned from the join token (absent for CORAL_ENROLL_SECRET sidecars). */
  colonyPubkey?: string;
  /** How an agent that has not enrolled yet joins. */
  invitation?: Invitation;
  /** The local colony: a one-use invitation, made only for an agent that needs one. */
  mintInvitation?: (service: string) => Promise<JoinToken>;
  /** Default data folder for an agent of `service`. */
  dataDirFor(service: string): string;
}

/**
 * A sidecar's colony from its environment (compose, Kubernetes): CORAL_COLONY_URL
 * and CORAL_ENROLL_SECRET (the colony's standing invitation, shared through a
 * secret store), so no join token has to be minted after the colony starts.
 * Each agent still enrolls its own key. CORAL_COLONY_SECRET is the old name.
 */
export function directTarget(env: Readonly<Record<string, string | undefined>>): AgentTarget | undefined {
  const colonyUrl = env.CORAL_COLONY_URL?.trim();
  const secret = (env.CORAL_ENROLL_SECRET ?? secretFromFile(env.CORAL_ENROLL_SECRET_FILE) ?? env.CORAL_COLONY_SECRET)?.trim().toLowerCase();
  if (!colonyUrl || !secret) return undefined;
  if (!invitationSecretPattern.test(secret)) throw new UsageError("CORAL_ENROLL_SECRET must be 64 hex characters (the colony's, e.g. from: openssl rand -hex 32)");
  try {
    if (!["http:", "https:"].includes(new URL(colonyUrl).protocol)) throw new Error();
  } catch {
    throw new UsageError(`CORAL_COLONY_URL "${colonyUrl}" is not an http(s) URL, e.g. http://coral-colony:9000`);
  }
  const colonyId = env.CORAL_COLONY_ID?.trim() || "colony";
  return {
    colonyId,
    colonyUrl,
    invitation: { invitationId: "env", invitationSecret: secret },
    dataDirFor: (service) => join(coralHome(env), "agents", colonyId, service),
  };
}

/** A Docker/Kubernetes secret mounted as a file. */
function secretFromFile(path: string | undefined): string | undefined {
  if (!path) return undefined;
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(`CORAL_ENROLL_SECRET_FILE: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** Where the join token says the colony answers: its URL, or (through discovery, verified against its key) its endpoint. */
async function colonyUrlOf(token: JoinToken): Promise<string> {
  if (!token.discoveryUrl) {
    if (!token.colonyUrl) throw new Error("the join token names neither a colony URL nor a discovery service");
    return token.colonyUrl;
  }
  // Discovery is untrusted: the answer must be signed by the colony key in the token.
  const client = new DiscoveryClient({ transport: createConnectTransport({ baseUrl: token.discoveryUrl, httpVersion: "1.1" }), url: token.discoveryUrl });
  const answer = await client.lookupColony(token.colonyId, { pinnedKey: token.colonyPubkey });
  const endpoint = resolveEndpoints(answer)[0];
  const host = endpoint ? endpoint.slice(0, endpoint.lastIndexOf(":")) : "127.0.0.1";
  // The scheme the colony's API speaks (https when it has TLS) is the token's.
  const scheme = token.colonyUrl.startsWith("https:") ? "https" : "http";
  return `${scheme}://${host}:${answer.connectPort}`;
}

export function tokenTarget(token: JoinToken, colonyUrl: string): AgentTarget {
  return {
    colonyId: token.colonyId,
    colonyUrl,
    colonyPubkey: token.colonyPubkey,
    invitation: { invitationId: token.invitationId, invitationSecret: token.invitationSecret },
    dataDirFor: (service) => join(coralHome(), "agents", token.colonyId, service),
  };
}

export function decodeTokenOrThrow(text: string, source: string): JoinToken {
  const decoded = decodeJoinToken(text);
  if ("error" in decoded) throw new UsageError(`${source}: ${decoded.error}`);
  return decoded.token;
}

/** Finds the colony an agent joins: a join token, the environment (sidecars), or the local colony. */
export async function resolveAgentTarget(join_: JoinTokenSource | undefined, projectDir = process.cwd()): Promise<AgentTarget> {
  if (join_) {
    const token = decodeTokenOrThrow(join_.token, join_.source);
    return tokenTarget(token, await colonyUrlOf(token));
  }
  const direct = directTarget(process.env);
  if (direct) return direct;
  const dir = existsSync(join(projectDir, ".coral", "config.yaml")) ? projectDir : (await currentColony())?.project_dir;
  if (!dir)
    throw new Error("no colony to join: pass --join-file <file> (a join token from coral colony invite) or run this where coral init was run");
  const config = await loadColonyConfig(dir);
  const remote = await resolveTarget({}, dir);
  return {
    colonyId: config.colony.colony_id,
    colonyUrl: remote.url,
    // The local colony invites its own agents: the local token may (it is admin, from this machine only).
    mintInvitation: async (service) => {
      const res = await serviceClient(IdentityService, remote)
        .createInvitation({ ttlSeconds: 600, maxUses: 1, note: `coral connect ${service} (local)` })
        .catch((err: unknown) => {
          throw explainError(err, remote);
        });
      return decodeTokenOrThrow(res.joinToken, "the local colony's invitation");
    },
    dataDirFor: (service) => join(dir, ".coral", "agents", service),
  };
}

/** What startAgent needs to enroll: nothing for an enrolled agent; else the target's invitation (minted for a local colony). */
export async function enrollmentFor(target: AgentTarget, service: string, dataDir: string): Promise<{ invitation?: Invitation; colonyPubkey?: string }> {
  const identity = await loadAgentIdentity(dataDir);
  if (identity.enrolled) return { colonyPubkey: target.colonyPubkey };
  if (target.invitation) return { invitation: target.invitation, colonyPubkey: target.colonyPubkey };
  if (!target.mintInvitation) return {};
  const token = await target.mintInvitation(service);
  return { invitation: { invitationId: token.invitationId, invitationSecret: token.invitationSecret }, colonyPubkey: token.colonyPubkey };
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

function healthOption(value: string): string {
  if (value.startsWith("tcp://")) {
    let url: URL | undefined;
    try {
      url = new URL(value);
    } catch {
      // Reported below.
    }
    if (!url?.hostname || !url.port) throw new InvalidArgumentError(`"${value}" is not a tcp://host:port address`);
    return `tcp://${url.host}`;
  }
  return urlOption(value);
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

/**
 * Re-runs this command without --daemon as a detached process, and waits
 * until it connects. The join token goes through the environment, never argv.
 */
async function runDetached(service: string, dataDir: string, joinToken: string | undefined): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const logPath = join(dataDir, "agent.log");
  const out = openSync(logPath, "a", 0o600);
  // Only what this run writes counts (the log is appended to across runs).
  const logStart = fstatSync(out).size;
  const args = withoutJoinArgs(process.argv.slice(2).filter((a) => a !== "--daemon"));
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args, "--data-dir", dataDir], {
    detached: true,
    stdio: ["ignore", out, out],
    env: joinToken ? { ...withoutKey(process.env, "CORAL_JOIN_TOKEN_FILE"), CORAL_JOIN_TOKEN: joinToken } : process.env,
  });
  child.unref();
  await waitUntil(`the agent to connect (see ${logPath})`, 60_000, async () => {
    if (child.exitCode !== null) {
      // The agent's own words (e.g. "an agent named api is already running here"), and its code.
      const said = (await readFile(logPath, "utf8").catch(() => "")).slice(logStart).split("\n").filter((l) => l.startsWith("Error: ")).at(-1);
      throw Object.assign(new Error(said ? `${said.slice("Error: ".length)} (see ${logPath})` : `the agent exited with code ${child.exitCode}; see ${logPath}`), {
        exitCode: child.exitCode,
      });
    }
    const text = await readFile(logPath, "utf8").catch(() => "");
    return text.includes(`✓ Connected: ${service}`) ? true : undefined;
  });
  await writeFile(join(dataDir, "agent.pid"), `${child.pid}\n`);
  console.log(`✓ Connected: ${service} (agent running in the background, pid ${child.pid})`);
  console.log(`  Logs: ${logPath}`);
  console.log(`  Stop it with: kill ${child.pid}`);
}

function withoutKey(env: NodeJS.ProcessEnv, key: string): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy[key];
  return copy;
}

/** argv without --join/--join-file and their values. */
export function withoutJoinArgs(args: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--join" || a === "--join-file") i++;
    else if (!a.startsWith("--join=") && !a.startsWith("--join-file=")) out.push(a);
  }
  return out;
}

export function connectCommand(): Command {
  return withRollbackOptions(withJoinOptions(new Command("connect")))
    .description("observe one app component: its process, connections, health and metrics (the agent)")
    .argument("[service]", "component name, e.g. api (or CORAL_COMPONENT)")
    .addOption(new Option("--port <port>", "port the component listens on").env("CORAL_PORT").argParser(parsePortOption))
    .addOption(new Option("--health <url>", "health check: an http(s):// URL to GET, or tcp://host:port to connect to (default: is the port still listening, read from /proc; opens no connection)").env("CORAL_HEALTH_URL").argParser(healthOption))
    .addOption(new Option("--metrics <url>", "Prometheus endpoint to scrape").env("CORAL_METRICS_URL").argParser(urlOption))
    .addOption(new Option("--tags <k=v,...>", "labels, e.g. version=2.1.0").env("CORAL_TAGS").argParser(tagsOption))
    .addOption(new Option("--sdk <port>", "port of the app's Coral SDK (default: found from the SDK's announcement)").env("CORAL_SDK_PORT").argParser(parsePortOption))
    .addOption(new Option("--data-dir <dir>", "where the agent keeps its local data").env("CORAL_AGENT_DATA_DIR"))
    .addOption(new Option("--mesh <mode>", "loopback (same machine) or wireguard (join the colony's WireGuard mesh; needs root)").choices(["loopback", "wireguard"]).env("CORAL_MESH_MODE").default("loopback"))
    .option("--daemon", "run in the background; logs go to agent.log in the data folder")
    .addOption(
      new Option("--profile-hz <n>", "rate of the always-on CPU profiler (eBPF, as root; kept per minute, read with coral profile cpu --since); 0 turns it off")
        .env("CORAL_PROFILE_HZ")
        .argParser(intOption(0, 1000))
        .default(19),
    )
    .option("--no-continuous-profile", "no always-on CPU profiler (same as --profile-hz 0)")
    .addOption(new Option("--otlp-http <port>", "OTLP/HTTP port on loopback for the apps' OpenTelemetry traces and logs (read with coral traces, coral logs)").env("CORAL_OTLP_HTTP_PORT").argParser(intOption(0, 65535)).default(4318))
    .addOption(new Option("--otlp-grpc <port>", "OTLP/gRPC port on loopback").env("CORAL_OTLP_GRPC_PORT").argParser(intOption(0, 65535)).default(4317))
    .option("--no-otlp", "no OpenTelemetry endpoints (also CORAL_OTLP=0)")
    .addOption(durationFlag("--sample-interval <duration>", "how often to sample the process", durationOption, 1000))
    .addOption(durationFlag("--summary-interval <duration>", "how often to send summaries to the colony", durationOption, 60_000))
    .addOption(new Option("--log-level <level>").choices(["debug", "info", "warn", "error"]).default("warn"))
    .action(async (serviceArg: string | undefined, opts: {
      port?: number;
      health?: string;
      metrics?: string;
      tags?: Record<string, string>;
      sdk?: number;
      join?: string;
      joinFile?: string;
      dataDir?: string;
      mesh: "loopback" | "wireguard";
      daemon?: boolean;
      profileHz: number;
      continuousProfile: boolean;
      otlpHttp: number;
      otlpGrpc: number;
      otlp: boolean;
      sampleInterval: number;
      summaryInterval: number;
      logLevel: "debug" | "info" | "warn" | "error";
    } & RollbackFlags) => {
      const service = serviceArg ?? process.env.CORAL_COMPONENT;
      if (!service) throw new UsageError("name the component: coral connect <service> --port <port> (or set CORAL_COMPONENT)");
      if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(service))
        throw new UsageError(`"${service}" must be lowercase letters, digits and inner hyphens, e.g. api`);
      if (!opts.port) throw new UsageError("--port is required (or CORAL_PORT): the port the component listens on");
      const rollback = rollbackConfigFrom(opts);
      const continuousProfile = opts.continuousProfile && opts.profileHz > 0;
      const joinToken = readJoinToken(opts);
      const meshToken = opts.mesh === "wireguard" ? decodeMeshToken(joinToken) : undefined;
      const target = meshToken ? tokenTarget(meshToken, "") : await resolveAgentTarget(joinToken);
      const dataDir = resolve(opts.dataDir ?? target.dataDirFor(service));
      if (opts.daemon) {
        await runDetached(service, dataDir, joinToken?.token);
        return;
      }
      const enrollment = await enrollmentFor(target, service, dataDir);
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
          ...enrollment,
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
          rollback,
          continuousProfile: continuousProfile ? { hz: opts.profileHz } : false,
          otlp: opts.otlp && !["0", "off", "false"].includes((process.env.CORAL_OTLP ?? "").trim().toLowerCase()) ? { httpPort: opts.otlpHttp, grpcPort: opts.otlpGrpc } : false,
          onNotice: (n) => {
            if (n.kind === "connected") {
              console.log(`✓ Connected: ${service} (localhost:${opts.port})`);
              console.log(`  Colony: ${n.colonyId} (${target.colonyUrl})`);
              console.log(`  Watching: process on port ${opts.port}, connections, health ${opts.health ?? `(port ${opts.port} listening)`}${opts.metrics ? `, metrics ${opts.metrics}` : ""}`);
              if (continuousProfile)
                console.log(
                  process.getuid?.() === 0
                    ? `  Profiling: CPU at ${opts.profileHz} Hz, always on (coral profile cpu ${service} --since 1h; --profile-hz 0 turns it off)`
                    : "  Profiling: the always-on CPU profiler needs root (eBPF); not running",
                );
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
      const otlp = agent.otlp();
      if (otlp?.httpPort !== undefined || otlp?.grpcPort !== undefined)
        console.log(`  OpenTelemetry: OTLP on 127.0.0.1${otlp.grpcPort !== undefined ? ` :${otlp.grpcPort} (gRPC)` : ""}${otlp.httpPort !== undefined ? ` :${otlp.httpPort} (HTTP)` : ""} (coral traces, coral logs)`);
      if (otlp?.reason) console.log(`  OpenTelemetry: ${otlp.reason}`);
      console.log("Press Ctrl+C to stop");
      await stopped;
      // Over a tunnel that is gone (revoked, colony away) the goodbye can hang:
      // the interface comes down regardless.
      await (mesh ? Promise.race([agent.close("stopped by the user"), sleep(8000, undefined, { unref: true })]) : agent.close("stopped by the user"));
      await mesh?.close();
    });
}
