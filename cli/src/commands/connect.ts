// coral connect frontend:3000 api:3001 …: one agent observing app components
// (or coral connect <service> --port N for one); --add/--remove/--list/--reload
// talk to a running agent over its control socket.
import { spawn } from "node:child_process";
import { existsSync, fstatSync, openSync, readFileSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  checkServiceName,
  checkServiceSet,
  controlRequest,
  loadAgentIdentity,
  parseServiceSpec,
  ServiceSpecError,
  startControlSocket,
  startHostAgent,
  type AgentLogger,
  type AgentNotice,
  type ControlAnswer,
  type ControlRequest,
  type HostAgent,
  type HostedService,
  type Invitation,
  type ServiceSpec,
} from "@coral/agent";
import { sleep } from "@coral/common/async";
import { createLogger } from "@coral/common/log";
import { DiscoveryClient, decodeJoinToken, invitationSecretPattern, resolveEndpoints, type JoinToken } from "@coral/proto";
import { IdentityService } from "@coral/proto/gen/coral/colony/v1/identity_pb";
import { Command, InvalidArgumentError, Option } from "commander";
import { coralHome, currentColony, loadColonyConfig, parseDuration } from "@coral/colony";
import { readJoinToken, withJoinOptions, type JoinTokenSource } from "./join-input.ts";
import { rollbackConfigFrom, withRollbackOptions, type RollbackFlags } from "./rollback-flags.ts";
import { explainError, resolveTarget, serviceClient } from "./remote.ts";
import type { MeshTarget } from "./mesh-join.ts";
import { UsageError, durationFlag, intOption, parsePortOption } from "./options.ts";
import { waitUntil } from "./wait.ts";
import { AgentConfigError, loadAgentConfig } from "./agent-config.ts";
import { colors, columns, plural } from "../format/text.ts";

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
 * until each service has connected (or failed). The join token goes through
 * the environment, never argv.
 */
async function runDetached(services: readonly string[], agentDir: string, joinToken: string | undefined): Promise<void> {
  await mkdir(agentDir, { recursive: true, mode: 0o700 });
  const logPath = join(agentDir, "agent.log");
  const out = openSync(logPath, "a", 0o600);
  // Only what this run writes counts (the log is appended to across runs).
  const logStart = fstatSync(out).size;
  const args = withoutJoinArgs(process.argv.slice(2).filter((a) => a !== "--daemon"));
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...args], {
    detached: true,
    stdio: ["ignore", out, out],
    env: joinToken ? { ...withoutKey(process.env, "CORAL_JOIN_TOKEN_FILE"), CORAL_JOIN_TOKEN: joinToken } : process.env,
  });
  child.unref();
  const thisRun = async () => (await readFile(logPath, "utf8").catch(() => "")).slice(logStart);
  const text = await waitUntil(`the agent to connect (see ${logPath})`, 60_000 + 15_000 * services.length, async () => {
    if (child.exitCode !== null) {
      // The agent's own words (e.g. "an agent named api is already running here"), and its code.
      const said = (await thisRun()).split("\n").filter((l) => l.startsWith("Error: ")).at(-1);
      throw Object.assign(new Error(said ? `${said.slice("Error: ".length)} (see ${logPath})` : `the agent exited with code ${child.exitCode}; see ${logPath}`), {
        exitCode: child.exitCode,
      });
    }
    const t = await thisRun();
    return services.every((s) => t.includes(`✓ Connected: ${s} `) || t.includes(`✗ ${s}: `)) ? t : undefined;
  });
  await writeFile(join(agentDir, "agent.pid"), `${child.pid}\n`);
  const failed = services.filter((s) => !text.includes(`✓ Connected: ${s} `));
  for (const s of services)
    if (!failed.includes(s)) console.log(`✓ Connected: ${s} (agent running in the background, pid ${child.pid})`);
  for (const line of text.split("\n").filter((l) => failed.some((s) => l.startsWith(`✗ ${s}: `)))) console.error(line);
  console.log(`  Logs: ${logPath}`);
  console.log(`  Stop it with: kill ${child.pid}`);
  if (failed.length) process.exitCode = 1;
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

interface ServiceFlags {
  port?: number;
  health?: string;
  metrics?: string;
  tags?: Record<string, string>;
  sdk?: number;
}

/**
 * The services named on the command line: `api --port 3001` (one, the first
 * form) or `frontend:3000 api:3001 store:3002/health`; else CORAL_SERVICES,
 * else CORAL_COMPONENT with CORAL_PORT. `single` is the first form.
 */
export function servicesFromArgs(args: readonly string[], flags: ServiceFlags, env: NodeJS.ProcessEnv = process.env): { specs: ServiceSpec[]; single: boolean } {
  const words = args.length ? args : (env.CORAL_SERVICES ?? "").split(/[\s,]+/).filter(Boolean);
  try {
    if (words.length === 0 || (words.length === 1 && !words[0]!.includes(":"))) {
      const name = words[0] ?? env.CORAL_COMPONENT;
      if (!name) throw new UsageError("name what to observe: coral connect api:3001 [store:3002/health …], or coral connect <service> --port <port>");
      if (!flags.port) throw new UsageError(`--port is required (or CORAL_PORT): the port ${name} listens on; or write ${name}:<port>`);
      return { specs: [withFlags({ name: checkServiceName(name), port: flags.port }, flags)], single: true };
    }
    const plain = words.find((w) => !w.includes(":"));
    if (plain) throw new UsageError(`"${plain}" has no port: write each service as name:port[/health-path], e.g. ${plain}:3000`);
    if (flags.port) throw new UsageError("--port is for one service named alone (coral connect api --port 3001); name:port gives each its own");
    const specs = words.map((w) => parseServiceSpec(w));
    if (specs.length > 1 && (flags.health || flags.metrics || flags.sdk))
      throw new UsageError("--health, --metrics and --sdk name one service's endpoints: with several services use name:port/health-path, or --config");
    return { specs: checkServiceSet(specs.map((s) => withFlags(s, flags))), single: false };
  } catch (err) {
    if (err instanceof ServiceSpecError) throw new UsageError(err.message);
    throw err;
  }
}

function withFlags(spec: ServiceSpec, flags: ServiceFlags): ServiceSpec {
  return {
    ...spec,
    healthUrl: flags.health ?? spec.healthUrl,
    metricsUrl: flags.metrics ?? spec.metricsUrl,
    tags: flags.tags ? { ...spec.tags, ...flags.tags } : spec.tags,
    sdkPort: flags.sdk ?? spec.sdkPort,
  };
}

/** The folder of the agent a control request (--add, --remove, --list, --reload) goes to. */
async function controlDir(dataDir: string | undefined, projectDir = process.cwd()): Promise<string> {
  if (dataDir) return resolve(dataDir);
  const direct = directTarget(process.env);
  if (direct) return dirname(direct.dataDirFor("x"));
  const dir = existsSync(join(projectDir, ".coral", "config.yaml")) ? projectDir : (await currentColony())?.project_dir;
  if (dir) return join(dir, ".coral", "agents");
  throw new UsageError("which agent? pass --data-dir <its folder> (an agent that joined with a token keeps it in ~/.coral/agents/<colony-id>)");
}

const socketName = "agent.sock";

/** The agent's socket in `dir`, or the one agent's among its service folders (an agent started for one service keeps it in that service's folder). */
async function controlSocketIn(dir: string, explicit: boolean): Promise<string> {
  const direct = join(dir, socketName);
  if (explicit || existsSync(direct)) return direct;
  const found = (await readdir(dir, { withFileTypes: true }).catch(() => []))
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, socketName)))
    .map((e) => join(dir, e.name));
  if (found.length > 1) throw new UsageError(`several agents run in ${dir}: pass --data-dir <one of ${found.join(", ")}>`);
  return found.length === 1 ? join(found[0]!, socketName) : direct;
}

async function sendControl(dir: string, explicit: boolean, req: ControlRequest): Promise<ControlAnswer> {
  const path = await controlSocketIn(dir, explicit);
  try {
    return await controlRequest(path, req);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ECONNREFUSED")
      throw new Error(`no agent is running in ${dir}: start one with coral connect <name:port …> (or pass --data-dir <its folder>)`);
    throw err;
  }
}

function formatHosted(services: readonly HostedService[], color: boolean): string {
  if (services.length === 0) return "The agent observes no service.";
  const c = colors(color);
  const state = (s: HostedService) => (s.state === "running" ? c.green(s.state) : s.state === "failed" ? c.red(s.state) : c.yellow(s.state));
  const rows = services.map((s) => [s.spec.name, String(s.spec.port), state(s), s.agentId ?? "", s.spec.healthUrl ?? "(port listening)", s.error ?? ""]);
  const [head, ...lines] = columns(["SERVICE", "PORT", "STATE", "AGENT ID", "HEALTH", "ERROR"], rows);
  return [c.bold(head!), ...lines].join("\n");
}

/** --add, --remove, --list, --reload: ask the running agent. Exit 2 for a request it refuses as wrong, 1 when it failed. */
async function controlCommand(opts: ServiceFlags & { add?: string; remove?: string; list?: boolean; reload?: boolean; json?: boolean; dataDir?: string }): Promise<void> {
  const ops = [opts.add, opts.remove, opts.list, opts.reload].filter((o) => o !== undefined && o !== false);
  if (ops.length > 1) throw new UsageError("one of --add, --remove, --list, --reload at a time");
  let req: ControlRequest;
  try {
    req = opts.add
      ? { op: "add", spec: withFlags(parseServiceSpec(opts.add), opts) }
      : opts.remove
        ? { op: "remove", name: checkServiceName(opts.remove) }
        : opts.reload
          ? { op: "reload" }
          : { op: "list" };
  } catch (err) {
    if (err instanceof ServiceSpecError) throw new UsageError(err.message);
    throw err;
  }
  const answer = await sendControl(await controlDir(opts.dataDir), opts.dataDir !== undefined, req);
  if (opts.json) console.log(JSON.stringify(answer, null, 2));
  if (!answer.ok) {
    if (!opts.json) console.error(`✗ ${answer.error}`);
    process.exitCode = answer.code === "invalid" ? 2 : 1;
    return;
  }
  if (opts.json) return;
  if (req.op === "add") console.log(`✓ Added ${req.spec.name} (port ${req.spec.port}) to the running agent`);
  if (req.op === "remove") console.log(`✓ Removed ${req.name} from the running agent`);
  if (req.op === "reload") console.log(`✓ Reloaded: ${answer.note}`);
  console.log(formatHosted(answer.services, Boolean(process.stdout.isTTY) && !process.env.NO_COLOR));
}

/** A control socket for this agent, unless another live agent already answers on it (then this one runs without). */
export async function openControl(dir: string, handler: Parameters<typeof startControlSocket>[1], log: AgentLogger): Promise<{ close(): Promise<void> } | undefined> {
  const path = join(dir, socketName);
  const live = await controlRequest(path, { op: "list" }, 2_000).catch(() => undefined);
  if (live?.ok) {
    console.log(`  Control: another agent in ${dir} answers coral connect --add/--remove; this one runs without`);
    return undefined;
  }
  try {
    return await startControlSocket(path, handler, (err) => log.warn({ err: String(err) }, "control request failed"));
  } catch (err) {
    console.log(`  Control: no control socket (${(err as Error).message}); --add/--remove cannot reach this agent`);
    return undefined;
  }
}

export function connectCommand(): Command {
  return withRollbackOptions(withJoinOptions(new Command("connect")))
    .description("observe app components, one or several in one agent: their processes, connections, health and metrics")
    .argument("[services...]", "name:port[/health-path] for each service (frontend:3000 api:3001 store:3002/health), or one name with --port (or CORAL_SERVICES, CORAL_COMPONENT)")
    .addOption(new Option("--port <port>", "port the component listens on (one service named alone)").env("CORAL_PORT").argParser(parsePortOption))
    .addOption(new Option("--health <url>", "health check: an http(s):// URL to GET, or tcp://host:port to connect to (default: is the port still listening, read from /proc; opens no connection)").env("CORAL_HEALTH_URL").argParser(healthOption))
    .addOption(new Option("--metrics <url>", "Prometheus endpoint to scrape").env("CORAL_METRICS_URL").argParser(urlOption))
    .addOption(new Option("--tags <k=v,...>", "labels, e.g. version=2.1.0 (for every service)").env("CORAL_TAGS").argParser(tagsOption))
    .addOption(new Option("--sdk <port>", "port of the app's Coral SDK (default: found from the SDK's announcement)").env("CORAL_SDK_PORT").argParser(parsePortOption))
    .addOption(new Option("--config <file>", "YAML file listing the services (services: [{name, port, health, metrics, tags, sdk}]); read again on SIGHUP or --reload").env("CORAL_AGENT_CONFIG"))
    .option("--add <name:port>", "add a service to the running agent (with --health, --metrics, --tags, --sdk for it)")
    .option("--remove <name>", "stop observing a service in the running agent")
    .option("--list", "list the running agent's services")
    .option("--reload", "make the running agent read its --config file again")
    .option("--json", "with --add, --remove, --list, --reload: print the answer as JSON")
    .addOption(new Option("--data-dir <dir>", "the agent's folder (one folder per service inside; for one service named alone with --port, that service's folder)").env("CORAL_AGENT_DATA_DIR"))
    .addOption(new Option("--mesh <mode>", "loopback (same machine) or wireguard (join the colony's WireGuard mesh; needs root)").choices(["loopback", "wireguard"]).env("CORAL_MESH_MODE").default("loopback"))
    .option("--daemon", "run in the background; logs go to agent.log in the agent's folder")
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
    .option("--no-exec", "refuse coral exec beside every service of this agent (per service: exec: false in --config)")
    .addOption(durationFlag("--sample-interval <duration>", "how often to sample the process", durationOption, 1000))
    .addOption(durationFlag("--summary-interval <duration>", "how often to send summaries to the colony", durationOption, 60_000))
    .addOption(new Option("--log-level <level>").choices(["debug", "info", "warn", "error"]).default("warn"))
    .action(async (args: string[], opts: ServiceFlags & {
      join?: string;
      joinFile?: string;
      config?: string;
      add?: string;
      remove?: string;
      list?: boolean;
      reload?: boolean;
      json?: boolean;
      dataDir?: string;
      mesh: "loopback" | "wireguard";
      daemon?: boolean;
      profileHz: number;
      continuousProfile: boolean;
      otlpHttp: number;
      otlpGrpc: number;
      otlp: boolean;
      exec: boolean;
      sampleInterval: number;
      summaryInterval: number;
      logLevel: "debug" | "info" | "warn" | "error";
    } & RollbackFlags) => {
      if (opts.add !== undefined || opts.remove !== undefined || opts.list || opts.reload) {
        if (args.length) throw new UsageError("--add, --remove, --list and --reload talk to a running agent: name no services beside them");
        return controlCommand(opts);
      }
      if (opts.config && args.length) throw new UsageError("name the services either on the command line or in --config, not both");
      const { specs, single } = opts.config ? { specs: await loadAgentConfig(opts.config).catch(usageOnConfig), single: false } : servicesFromArgs(args, opts);
      const rollback = rollbackConfigFrom(opts);
      const continuousProfile = opts.continuousProfile && opts.profileHz > 0;
      const joinToken = readJoinToken(opts);
      if (opts.mesh === "wireguard" && specs.length > 1)
        throw new UsageError("--mesh wireguard observes one service per agent for now: run one coral connect per service");
      // The WireGuard code loads only for a mesh agent: most agents never need it.
      const meshJoin = opts.mesh === "wireguard" ? await import("./mesh-join.ts") : undefined;
      const meshToken = meshJoin?.decodeMeshToken(joinToken);
      const target = meshToken ? tokenTarget(meshToken, "") : await resolveAgentTarget(joinToken);
      // A service named alone keeps the layout it always had: its own folder holds its store, log, pid and
      // control socket. Several services: one folder per service inside the agent's.
      const agentDir = resolve(opts.dataDir ?? (single ? target.dataDirFor(specs[0]!.name) : dirname(target.dataDirFor(specs[0]!.name))));
      const dataDirFor = (service: string) => (single ? agentDir : join(agentDir, service));
      if (opts.daemon) {
        await runDetached(
          specs.map((s) => s.name),
          agentDir,
          joinToken?.token,
        );
        return;
      }
      const log = createLogger({ level: opts.logLevel });
      // Listen for Ctrl+C before starting, so a stop during start-up is graceful too.
      const stopped = new Promise<void>((done) => {
        process.once("SIGINT", () => done());
        process.once("SIGTERM", () => done());
      });
      // A SIGHUP during start-up must not end the agent (its default): the reload waits until the services run.
      let hupBeforeReady = false;
      let onHup = () => void (hupBeforeReady = true);
      const hupListener = () => onHup();
      if (opts.config) process.on("SIGHUP", hupListener);
      let mesh: MeshTarget | undefined;
      if (meshToken) {
        mesh = await meshJoin!.joinMesh({ token: meshToken, serviceName: specs[0]!.name, dataDir: dataDirFor(specs[0]!.name), log });
        target.colonyUrl = mesh.colonyUrl;
        console.log(`✓ Joined the mesh: ${mesh.enrollment.meshIpv4} on ${mesh.iface.name} (colony ${mesh.enrollment.colonyMeshIpv4} via ${mesh.enrollment.colonyEndpoint})`);
      }
      let host: HostAgent | undefined;
      const specOf = (name: string) => host?.services().find((s) => s.spec.name === name)?.spec ?? specs.find((s) => s.name === name);
      const onNotice = (service: string, n: AgentNotice) => {
        const spec = specOf(service);
        if (n.kind === "connected" && spec) {
          // One write: the block stays together between log lines, and a reader of the pipe gets it whole.
          const block = [
            `✓ Connected: ${service} (localhost:${spec.port})`,
            `  Colony: ${n.colonyId} (${target.colonyUrl})`,
            `  Watching: process on port ${spec.port}, connections, health ${spec.healthUrl ?? `(port ${spec.port} listening)`}${spec.metricsUrl ? `, metrics ${spec.metricsUrl}` : ""}`,
          ];
          if (continuousProfile)
            block.push(
              process.getuid?.() === 0
                ? `  Profiling: CPU at ${opts.profileHz} Hz, always on (coral profile cpu ${service} --since 1h; --profile-hz 0 turns it off)`
                : "  Profiling: the always-on CPU profiler needs root (eBPF); not running",
            );
          console.log(block.join("\n"));
          return;
        }
        const line = describeNotice(service, n);
        if (line) console.log(specs.length > 1 || !single ? line.replace(/^ {2}/, `  [${service}] `) : line);
      };
      try {
        host = await startHostAgent({
          services: specs,
          dataDirFor,
          enrollmentFor: (service, dir) => enrollmentFor(target, service, dir),
          onNotice,
          shared: {
            colonyUrl: target.colonyUrl,
            sampleIntervalMs: opts.sampleInterval,
            summaryIntervalMs: opts.summaryInterval,
            logger: log,
            meshAddress: mesh?.enrollment.meshIpv4,
            rollback,
            continuousProfile: continuousProfile ? { hz: opts.profileHz } : false,
            otlp: opts.otlp && !["0", "off", "false"].includes((process.env.CORAL_OTLP ?? "").trim().toLowerCase()) ? { httpPort: opts.otlpHttp, grpcPort: opts.otlpGrpc } : false,
            exec: opts.exec,
          },
        });
      } catch (err) {
        await mesh?.close();
        throw err;
      }
      const running = host;
      for (const s of running.services()) if (s.state === "failed") console.error(`✗ ${s.spec.name}: ${s.error}`);
      const otlp = running
        .services()
        .map((s) => running.agent(s.spec.name)?.otlp())
        .find((o) => o !== undefined);
      if (otlp?.httpPort !== undefined || otlp?.grpcPort !== undefined)
        console.log(`  OpenTelemetry: OTLP on 127.0.0.1${otlp.grpcPort !== undefined ? ` :${otlp.grpcPort} (gRPC)` : ""}${otlp.httpPort !== undefined ? ` :${otlp.httpPort} (HTTP)` : ""} (coral traces, coral logs)`);
      if (otlp?.reason) console.log(`  OpenTelemetry: ${otlp.reason}`);
      const configPath = opts.config;
      const reload = configPath
        ? async () => {
            const r = await running.reconcile(await loadAgentConfig(configPath));
            const parts = [`${plural(r.added.length, "service")} added`, `${r.removed.length} removed`, `${r.changed.length} restarted with new settings`];
            for (const f of r.failed) console.error(`✗ ${f.name}: ${f.error}`);
            return parts.join(", ") + (r.failed.length ? `; ${r.failed.map((f) => `${f.name} failed: ${f.error}`).join("; ")}` : "");
          }
        : undefined;
      const control = await openControl(agentDir, { list: () => running.services(), add: (s) => running.add(s), remove: (n) => running.remove(n), reload }, log);
      onHup = () =>
        void reload?.().then(
          (note) => console.log(`✓ Reloaded ${configPath}: ${note}`),
          (err: unknown) => console.error(`✗ Reload of ${configPath} refused: ${err instanceof Error ? err.message : String(err)}; the services run on as they were`),
        );
      if (hupBeforeReady) onHup();
      console.log("Press Ctrl+C to stop");
      await stopped;
      process.off("SIGHUP", hupListener);
      await control?.close();
      // Over a tunnel that is gone (revoked, colony away) the goodbye can hang:
      // the interface comes down regardless.
      await (mesh ? Promise.race([running.close("stopped by the user"), sleep(8000, undefined, { unref: true })]) : running.close("stopped by the user"));
      await mesh?.close();
    });
}

function usageOnConfig(err: unknown): never {
  if (err instanceof AgentConfigError) throw new UsageError(err.message);
  throw err;
}
