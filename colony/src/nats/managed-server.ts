// The colony's own nats-server, started when no nats.url is configured:
// JetStream on, 127.0.0.1 only, password auth for the colony and per-agent
// users that may publish only below their own subject prefix.
import { spawn, type ChildProcess } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { createServer } from "node:net";
import { delimiter, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { jetstreamManager } from "@nats-io/jetstream";
import { AuthorizationError, connect } from "@nats-io/transport-node";
import { NatsReloadError, NatsServerNotFoundError, NatsServerStartError } from "./errors.ts";
import { errorMessage, silentLogger, type NatsLogger } from "./logger.ts";
import { backoffMs, pollUntil, sleep } from "@coral/common/async";
import { natsMaxPayloadBytes } from "./limits.ts";
import { agentInboxPrefix } from "./subjects.ts";
import {
  agentIdProblem,
  agentUserName,
  colonyInboxPrefix,
  generatePassword,
  loadAgentUsers,
  renderServerConfig,
  saveAgentUsers,
  subjectPrefixProblem,
  writePrivateFile,
  type AgentUser,
} from "./server-config.ts";

export const defaultNatsPort = 4333;

export interface ManagedNatsOptions {
  /** The colony's data folder (".coral"); JetStream stores in <dataDir>/nats. */
  dataDir: string;
  /** Preferred port (default 4333); when it is taken a free one is used. 0 always picks a free one. */
  port?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  logger?: NatsLogger;
  /** Binary name or path (default "nats-server", searched in PATH and the sbin/bin folders). */
  binary?: string;
  startTimeoutMs?: number;
  stopTimeoutMs?: number;
  reloadTimeoutMs?: number;
  /** The colony id: names each agent's reply inbox (default: read from the agent's subject prefix). */
  colonyId?: string;
  /** The server's max_payload in bytes (default 1 MiB). */
  maxPayload?: number;
}

export interface NatsCredentials {
  user: string;
  password: string;
}

export interface AgentNatsCredentials extends NatsCredentials {
  /** The agent must connect with this inbox prefix: it may subscribe only below it. */
  inboxPrefix: string;
}

export interface ColonyNatsCredentials extends NatsCredentials {
  /**
   * Pass as the connection's `inboxPrefix`: agents may subscribe to "_INBOX.>"
   * (their PubAcks arrive there), so the colony's replies must live elsewhere.
   */
  inboxPrefix: string;
}

export interface AgentUserInfo {
  agentId: string;
  user: string;
  subjectPrefix: string;
  inboxPrefix: string;
  createdAt: string;
}

export interface ManagedNats extends AsyncDisposable {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  /** Pid of the running nats-server, undefined while it is down. */
  readonly pid: number | undefined;
  readonly colonyCredentials: ColonyNatsCredentials;
  /**
   * Adds (or returns the existing) user for an agent, allowed to publish only
   * to "<subjectPrefix>.telemetry" and to subscribe only below its own inbox
   * prefix; reloads the server and resolves once the user can connect.
   * `rotate` issues a new password.
   */
  addAgentUser(agentId: string, subjectPrefix: string, options?: { rotate?: boolean }): Promise<AgentNatsCredentials>;
  /** Removes an agent's user; its connections are closed. False if it had none. */
  removeAgentUser(agentId: string): Promise<boolean>;
  agentUsers(): AgentUserInfo[];
  /** SIGTERM, wait, SIGKILL after the deadline. Idempotent. */
  stop(): Promise<void>;
}

const extraBinaryDirs = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

async function isExecutableFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Finds the nats-server binary, or throws NatsServerNotFoundError with the install hint. */
export async function resolveNatsServerBinary(binary = "nats-server"): Promise<string> {
  if (binary.includes("/")) {
    const path = resolve(binary);
    if (await isExecutableFile(path)) return path;
    throw new NatsServerNotFoundError(binary, [path]);
  }
  const pathDirs = (process.env.PATH ?? "").split(delimiter).filter(Boolean);
  const dirs = [...new Set([...pathDirs, ...extraBinaryDirs])];
  for (const dir of dirs) {
    const candidate = join(dir, binary);
    if (await isExecutableFile(candidate)) return candidate;
  }
  throw new NatsServerNotFoundError(binary, ["PATH", ...extraBinaryDirs.filter((d) => !pathDirs.includes(d))]);
}

function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once("error", () => done(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => done(true)));
  });
}

function freePort(host: string): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => (port ? done(port) : fail(new Error("could not find a free port"))));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** How long a reload probe waits for nats-server's "Reloaded server configuration" line. */
const reloadReportedMs = 2_000;

/** Outcome of a connection attempt: it worked, the server refused the credentials, or something else failed. */
async function tryConnect(url: string, creds: NatsCredentials, checkJetStream = false): Promise<"ok" | "refused" | "failed"> {
  try {
    const nc = await connect({
      servers: url,
      user: creds.user,
      pass: creds.password,
      reconnect: false,
      timeout: 2000,
      ...(checkJetStream ? { inboxPrefix: colonyInboxPrefix } : {}),
    });
    try {
      if (checkJetStream) await jetstreamManager(nc, { timeout: 2000 });
      return "ok";
    } finally {
      await nc.close().catch(() => {});
    }
  } catch (err) {
    return err instanceof AuthorizationError || /authorization/i.test(errorMessage(err)) ? "refused" : "failed";
  }
}

type LogLevel = "debug" | "info" | "warn" | "error";
const serverLogLevels: Record<string, LogLevel> = { DBG: "debug", TRC: "debug", INF: "debug", WRN: "warn", ERR: "warn", FTL: "error" };

/** One nats-server process: spawned, its output forwarded to the logger (secrets masked), its exit observed. */
class ServerProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
  readonly tail: string[] = [];
  /** Configuration reloads the server has reported finishing. */
  reloads = 0;
  exitInfo: { code: number | null; signal: NodeJS.Signals | null; error?: Error } | undefined;

  constructor(binary: string, configPath: string, log: NatsLogger, secrets: () => Iterable<string>) {
    this.child = spawn(binary, ["-c", configPath], { stdio: ["ignore", "pipe", "pipe"], detached: true });
    this.exited = new Promise((done) => {
      this.child.once("error", (error) => {
        this.exitInfo ??= { code: null, signal: null, error };
        done(this.exitInfo);
      });
      this.child.once("exit", (code, signal) => {
        this.exitInfo ??= { code, signal };
        done(this.exitInfo);
      });
    });
    const forward = (line: string) => {
      let text = line;
      for (const secret of secrets()) if (secret) text = text.split(secret).join("[REDACTED]");
      if (/Reloaded server configuration/.test(text)) this.reloads++;
      this.tail.push(text);
      if (this.tail.length > 40) this.tail.shift();
      // The config file holding passwords is 0600 and loopback-only; the
      // server's "plaintext passwords" advice is noise at warn level.
      const level = /Plaintext passwords detected/.test(text)
        ? "debug"
        : (serverLogLevels[/\[(DBG|TRC|INF|WRN|ERR|FTL)\]/.exec(text)?.[1] ?? "INF"] ?? "debug");
      log[level]({ pid: this.child.pid, line: text.replace(/^\[\d+\]\s+/, "") }, "nats-server");
    };
    for (const stream of [this.child.stdout, this.child.stderr]) if (stream) createInterface({ input: stream }).on("line", forward);
  }

  get pid(): number | undefined {
    return this.exitInfo ? undefined : this.child.pid;
  }

  describeExit(): string {
    const e = this.exitInfo;
    if (!e) return "still running";
    if (e.error) return `could not be run: ${e.error.message}`;
    return e.signal ? `was killed by ${e.signal}` : `exited with code ${e.code}`;
  }

  /**
   * SIGINT, nats-server's own "quit" (`nats-server --signal quit`): the same
   * clean shutdown as SIGTERM, JetStream flushed, but exit code 0, where
   * SIGTERM makes it exit 1 and every clean stop read as a failure.
   */
  async terminate(timeoutMs: number): Promise<void> {
    if (this.exitInfo) return;
    this.child.kill("SIGINT");
    const timedOut = Symbol("timeout");
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([this.exited, new Promise<symbol>((done) => (timer = setTimeout(() => done(timedOut), timeoutMs)))]);
    clearTimeout(timer);
    if (outcome === timedOut) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }
}

/** Stops a nats-server left running by an earlier colony that died without stopping it. */
async function stopLeftoverServer(pidFile: string, configPath: string, log: NatsLogger, timeoutMs: number): Promise<void> {
  let pid: number;
  try {
    pid = Number.parseInt((await readFile(pidFile, "utf8")).trim(), 10);
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1 || !isAlive(pid)) return;
  let cmdline: string;
  try {
    cmdline = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").join(" ");
  } catch {
    return;
  }
  if (!cmdline.includes("nats-server") || !cmdline.includes(configPath)) return;
  log.warn({ pid }, "Stopping a nats-server left running by an earlier colony");
  process.kill(pid, "SIGTERM");
  try {
    await pollUntil(() => (isAlive(pid) ? undefined : true), { timeoutMs, what: `nats-server ${pid} to exit` });
  } catch {
    process.kill(pid, "SIGKILL");
    await pollUntil(() => (isAlive(pid) ? undefined : true), { timeoutMs: 5000, what: `nats-server ${pid} to exit after SIGKILL` });
  }
}

class ManagedNatsServer implements ManagedNats {
  readonly host: string;
  readonly colonyCredentials: ColonyNatsCredentials;
  port = 0;
  private proc: ServerProcess | undefined;
  private readonly agents = new Map<string, AgentUser>();
  private queue: Promise<unknown> = Promise.resolve();
  private stopping: Promise<void> | undefined;
  private readonly stopController = new AbortController();
  private restarts = 0;
  private readonly onProcessExit = () => {
    try {
      this.proc?.child.kill("SIGTERM");
    } catch {
      // the process is gone already
    }
  };

  constructor(
    private readonly binary: string,
    private readonly paths: { dataDir: string; storeDir: string; configPath: string; usersPath: string; pidFile: string },
    private readonly log: NatsLogger,
    private readonly timeouts: { start: number; stop: number; reload: number },
    host: string,
    private readonly limits: { colonyId?: string; maxPayload: number },
  ) {
    this.host = host;
    this.colonyCredentials = { user: "colony", password: generatePassword(), inboxPrefix: colonyInboxPrefix };
  }

  get url(): string {
    return `nats://${this.host}:${this.port}`;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  agentUsers(): AgentUserInfo[] {
    return [...this.agents.values()].map(({ agentId, user, subjectPrefix, createdAt }) => ({
      agentId,
      user,
      subjectPrefix,
      inboxPrefix: this.inboxPrefixOf(agentId, subjectPrefix),
      createdAt,
    }));
  }

  /** Derived, never stored: the same colony and agent always get the same inbox. */
  private inboxPrefixOf(agentId: string, subjectPrefix: string): string {
    const parts = subjectPrefix.split(".");
    const fromPrefix = parts[0] === "coral" && parts[2] === "agent" ? parts[1] : undefined;
    return agentInboxPrefix(this.limits.colonyId ?? fromPrefix ?? "coral", agentId);
  }

  private *secrets(): Iterable<string> {
    yield this.colonyCredentials.password;
    for (const a of this.agents.values()) yield a.password;
  }

  async loadAgents(): Promise<void> {
    const loaded = await loadAgentUsers(this.paths.usersPath);
    if ("error" in loaded) {
      const aside = `${this.paths.usersPath}.corrupt-${Date.now()}`;
      await rename(this.paths.usersPath, aside);
      this.log.warn({ file: this.paths.usersPath, moved_to: aside, problem: loaded.error }, "NATS agent users file is unreadable; moved it aside, agents must register again");
      return;
    }
    for (const a of loaded.agents) this.agents.set(a.agentId, a);
  }

  private async writeConfig(): Promise<void> {
    const text = renderServerConfig({
      host: this.host,
      port: this.port,
      storeDir: this.paths.storeDir,
      pidFile: this.paths.pidFile,
      colony: this.colonyCredentials,
      agents: [...this.agents.values()].map((a) => ({ ...a, inboxPrefix: this.inboxPrefixOf(a.agentId, a.subjectPrefix) })),
      maxPayload: this.limits.maxPayload,
    });
    await writePrivateFile(this.paths.configPath, text);
  }

  /** Starts the server, moving to a free port when the preferred one is taken. */
  async start(preferredPort: number): Promise<void> {
    await stopLeftoverServer(this.paths.pidFile, this.paths.configPath, this.log, this.timeouts.stop);
    let port = preferredPort;
    if (port === 0 || !(await portIsFree(this.host, port))) {
      const free = await freePort(this.host);
      if (port !== 0) this.log.info({ port, using: free }, "NATS port is in use; using a free one");
      port = free;
    }
    for (let attempt = 0; ; attempt++) {
      this.port = port;
      await this.writeConfig();
      try {
        await this.spawnAndWait();
        break;
      } catch (err) {
        const portTaken = this.proc?.tail.some((l) => /address already in use/i.test(l)) ?? false;
        if (!portTaken || attempt >= 3) throw err;
        port = await freePort(this.host);
        this.log.info({ port: this.port, using: port }, "NATS port was taken while starting; trying a free one");
      }
    }
    process.once("exit", this.onProcessExit);
  }

  private async spawnAndWait(): Promise<void> {
    const proc = new ServerProcess(this.binary, this.paths.configPath, this.log, () => this.secrets());
    this.proc = proc;
    try {
      await pollUntil(
        async () => {
          if (proc.exitInfo) throw new NatsServerStartError(`nats-server ${proc.describeExit()} while starting:\n${proc.tail.join("\n")}`);
          return (await tryConnect(this.url, this.colonyCredentials, true)) === "ok" ? true : undefined;
        },
        { timeoutMs: this.timeouts.start, intervalMs: 50, what: `nats-server to accept the colony on ${this.url}` },
      );
    } catch (err) {
      await proc.terminate(this.timeouts.stop);
      if (err instanceof NatsServerStartError) throw err;
      if (proc.exitInfo?.error) throw new NatsServerStartError(`nats-server ${proc.describeExit()}`, { cause: err });
      throw new NatsServerStartError(`nats-server did not become ready: ${errorMessage(err)}\n${proc.tail.join("\n")}`, { cause: err });
    }
    this.log.info({ url: this.url, pid: proc.pid, store_dir: this.paths.storeDir }, "nats-server is ready");
    void proc.exited.then(() => this.onUnexpectedExit(proc));
  }

  /** Restarts a server that died under us, with the same config (same port and passwords), so clients reconnect. */
  private async onUnexpectedExit(proc: ServerProcess): Promise<void> {
    if (this.stopping || this.proc !== proc) return;
    this.log.error({ pid: proc.child.pid, exit: proc.describeExit(), tail: proc.tail.slice(-5) }, "nats-server stopped unexpectedly; restarting it");
    while (!this.stopping) {
      await sleep(backoffMs(this.restarts++, 500, 30_000), this.stopController.signal);
      if (this.stopping) return;
      try {
        await this.writeConfig();
        await this.spawnAndWait();
        this.restarts = 0;
        return;
      } catch (err) {
        this.log.error({ err: errorMessage(err), attempt: this.restarts }, "could not restart nats-server");
      }
    }
  }

  private serialize<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /**
   * Reloads the configuration and waits until it took effect: nats-server's own
   * "Reloaded server configuration" line says so. Only when that line does not
   * come within reloadReportedMs is `done` probed instead (a probe that races the
   * reload is refused, and logs an "authentication error" that alarms the reader).
   */
  private async reloadAndWait(what: string, done: () => Promise<boolean>): Promise<void> {
    await this.writeConfig();
    const proc = this.proc;
    const reloadsBefore = proc?.reloads ?? 0;
    const sentAt = Date.now();
    if (proc?.pid !== undefined) process.kill(proc.pid, "SIGHUP");
    const reported = () => proc !== undefined && proc.reloads > reloadsBefore;
    const probeInstead = () => proc === undefined || Date.now() - sentAt > reloadReportedMs;
    const holds = async () => reported() || (probeInstead() && (await done()));
    try {
      await pollUntil(async () => ((await holds()) ? true : undefined), {
        timeoutMs: this.timeouts.reload,
        intervalMs: 50,
        what,
        signal: this.stopController.signal,
      });
    } catch (err) {
      throw new NatsReloadError(`nats-server configuration reload did not take effect: ${errorMessage(err)}`, { cause: err });
    }
  }

  addAgentUser(agentId: string, subjectPrefix: string, options: { rotate?: boolean } = {}): Promise<AgentNatsCredentials> {
    const idProblem = agentIdProblem(agentId);
    if (idProblem) return Promise.reject(new Error(`agent id ${JSON.stringify(agentId)} ${idProblem}`));
    const prefixProblem = subjectPrefixProblem(subjectPrefix);
    if (prefixProblem) return Promise.reject(new Error(`subject prefix ${JSON.stringify(subjectPrefix)} ${prefixProblem}`));
    return this.serialize(async () => {
      if (this.stopping) throw new Error("the managed NATS server is stopped");
      const existing = this.agents.get(agentId);
      const inboxPrefix = this.inboxPrefixOf(agentId, subjectPrefix);
      if (existing && existing.subjectPrefix === subjectPrefix && !options.rotate) return { user: existing.user, password: existing.password, inboxPrefix };
      const entry: AgentUser = {
        agentId,
        user: agentUserName(agentId),
        password: existing && !options.rotate ? existing.password : generatePassword(),
        subjectPrefix,
        createdAt: existing?.createdAt ?? new Date().toISOString(),
      };
      this.agents.set(agentId, entry);
      await saveAgentUsers(this.paths.usersPath, [...this.agents.values()]);
      await this.reloadAndWait(`agent user ${entry.user} to be able to connect`, async () => (await tryConnect(this.url, entry)) === "ok");
      this.log.info({ agent_id: agentId, user: entry.user, subject_prefix: subjectPrefix, rotated: Boolean(existing) }, "NATS agent user ready");
      return { user: entry.user, password: entry.password, inboxPrefix };
    });
  }

  removeAgentUser(agentId: string): Promise<boolean> {
    return this.serialize(async () => {
      const existing = this.agents.get(agentId);
      if (!existing) return false;
      this.agents.delete(agentId);
      await saveAgentUsers(this.paths.usersPath, [...this.agents.values()]);
      if (!this.stopping)
        await this.reloadAndWait(`agent user ${existing.user} to be refused`, async () => (await tryConnect(this.url, existing)) === "refused");
      this.log.info({ agent_id: agentId, user: existing.user }, "NATS agent user removed");
      return true;
    });
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopController.abort();
      process.removeListener("exit", this.onProcessExit);
      const proc = this.proc;
      if (proc) {
        await proc.terminate(this.timeouts.stop);
        this.log.info({ pid: proc.child.pid, exit: proc.describeExit() }, "nats-server stopped");
      }
      await rm(this.paths.pidFile, { force: true });
    })();
    return this.stopping;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/**
 * Starts the colony's own nats-server. Files in `dataDir`: nats-server.conf
 * (0600, regenerated each start with a new colony password), nats-users.json
 * (0600, agent users, kept across restarts), nats-server.pid, and the
 * JetStream store under nats/.
 */
export async function startManagedNats(options: ManagedNatsOptions): Promise<ManagedNats> {
  const log = options.logger ?? silentLogger;
  const binary = await resolveNatsServerBinary(options.binary);
  const dataDir = resolve(options.dataDir);
  const paths = {
    dataDir,
    storeDir: join(dataDir, "nats"),
    configPath: join(dataDir, "nats-server.conf"),
    usersPath: join(dataDir, "nats-users.json"),
    pidFile: join(dataDir, "nats-server.pid"),
  };
  await mkdir(dataDir, { recursive: true });
  await mkdir(paths.storeDir, { recursive: true, mode: 0o700 });
  const server = new ManagedNatsServer(
    binary,
    paths,
    log,
    { start: options.startTimeoutMs ?? 20_000, stop: options.stopTimeoutMs ?? 10_000, reload: options.reloadTimeoutMs ?? 10_000 },
    options.host ?? "127.0.0.1",
    { colonyId: options.colonyId, maxPayload: options.maxPayload ?? natsMaxPayloadBytes },
  );
  await server.loadAgents();
  try {
    await server.start(options.port ?? defaultNatsPort);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return server;
}
