import { spawn } from "node:child_process";
import { readFile, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { agentInboxPrefix, agentSubjectPrefix, ensureTelemetryStream, NatsServerNotFoundError, startManagedNats, telemetrySubject, type ManagedNats } from "./index.ts";
import { pollUntil } from "@coral/common/async";
import { captureLogger, encodeBatch, makeBatch, natsServerForTests, tempDir } from "./testing.ts";

const binary = await natsServerForTests();
const colonyId = "shop-dev";

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function connectAs(url: string, creds: { user: string; password: string }, extra: { inboxPrefix?: string } = {}): Promise<NatsConnection> {
  return connect({ servers: url, user: creds.user, pass: creds.password, reconnect: false, ...extra });
}

describe("missing nats-server binary", () => {
  it.each([["/nonexistent/bin/nats-server"], ["nats-server-that-does-not-exist"]])("%s gives the install hint", async (bin) => {
    await using dir = await tempDir("nats-missing");
    const err = await startManagedNats({ dataDir: dir.path, binary: bin }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatsServerNotFoundError);
    expect((err as Error).message).toContain("nats-server binary not found");
    expect((err as Error).message).toContain("apt-get install -y nats-server");
    expect((err as Error).message).toContain("https://nats.io/download/");
  });
});

describe.skipIf(!binary)("managed nats-server", () => {
  let dir: { path: string } & AsyncDisposable;
  let nats: ManagedNats;
  const log = captureLogger();

  beforeAll(async () => {
    dir = await tempDir("nats-managed");
    nats = await startManagedNats({ dataDir: dir.path, port: 0, logger: log });
  });
  afterAll(async () => {
    await nats?.stop();
    await dir?.[Symbol.asyncDispose]();
  });

  it("listens on 127.0.0.1, refuses anonymous connections and accepts the colony's credentials", async () => {
    expect(nats.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    await expect(connect({ servers: nats.url, reconnect: false })).rejects.toThrow(/authorization/i);
    await expect(connectAs(nats.url, { user: "colony", password: "wrong" })).rejects.toThrow(/authorization/i);
    await using nc = await connectAs(nats.url, nats.colonyCredentials, { inboxPrefix: nats.colonyCredentials.inboxPrefix });
    const jsm = await jetstreamManager(nc);
    const info = await jsm.getAccountInfo();
    expect(info.limits).toBeDefined();
  });

  it("keeps its config and users files private and stores JetStream under <dataDir>/nats", async () => {
    await nats.addAgentUser("files-agent", agentSubjectPrefix(colonyId, "files-agent"));
    for (const file of ["nats-server.conf", "nats-users.json"]) {
      expect((await stat(join(dir.path, file))).mode & 0o777).toBe(0o600);
    }
    const conf = await readFile(join(dir.path, "nats-server.conf"), "utf8");
    expect(conf).toContain(`store_dir: ${JSON.stringify(join(dir.path, "nats"))}`);
    expect(conf).toContain(`listen: "127.0.0.1:`);
    expect((await stat(join(dir.path, "nats", "jetstream"))).isDirectory()).toBe(true);
  });

  it("lets an agent js.publish below its own prefix and get an ack, and refuses another agent's subject", async () => {
    await using colony = await connectAs(nats.url, nats.colonyCredentials, { inboxPrefix: nats.colonyCredentials.inboxPrefix });
    await ensureTelemetryStream(await jetstreamManager(colony), colonyId);
    const creds = await nats.addAgentUser("agent-a", agentSubjectPrefix(colonyId, "agent-a"));
    expect(creds.user).toBe("agent-agent-a");

    await using agent = await connectAs(nats.url, creds, { inboxPrefix: creds.inboxPrefix });
    const js = jetstream(agent);
    const ack = await js.publish(telemetrySubject(colonyId, "agent-a"), encodeBatch(makeBatch("agent-a", "b-1")), { msgID: "b-1" });
    expect(ack.stream).toBe("CORAL_SHOP_DEV");
    expect(ack.duplicate).toBe(false);

    const err = await js
      .publish(telemetrySubject(colonyId, "agent-b"), encodeBatch(makeBatch("agent-b", "b-2")), { msgID: "b-2", timeout: 5000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/permissions violation for publish/i);
    // Nothing of agent-b's reached the stream.
    const info = await (await jetstreamManager(colony)).streams.info("CORAL_SHOP_DEV", { subjects_filter: ">" });
    expect(info.state.subjects).toEqual({ [telemetrySubject(colonyId, "agent-a")]: 1 });
  });

  it("does not let an agent subscribe to telemetry, the JetStream API, the colony's inbox or other agents' inboxes", async () => {
    const creds = await nats.addAgentUser("agent-snoop", agentSubjectPrefix(colonyId, "agent-snoop"));
    const other = await nats.addAgentUser("agent-other", agentSubjectPrefix(colonyId, "agent-other"));
    expect(creds.inboxPrefix).toBe(agentInboxPrefix(colonyId, "agent-snoop"));
    expect(nats.agentUsers().find((a) => a.agentId === "agent-other")?.inboxPrefix).toBe(other.inboxPrefix);
    await using agent = await connectAs(nats.url, creds, { inboxPrefix: creds.inboxPrefix });
    for (const subject of [`coral.${colonyId}.>`, "$JS.API.>", `${nats.colonyCredentials.inboxPrefix}.>`, "_INBOX.>", `${other.inboxPrefix}.>`, ">"]) {
      const sub = agent.subscribe(subject);
      const err = await sub.closed;
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/permissions violation for subscription/i);
    }
    const err = await agent.request("$JS.API.INFO", undefined, { timeout: 2000 }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/permissions violation for publish/i);
  });

  it("returns the same credentials for the same agent and issues new ones on rotate", async () => {
    const prefix = agentSubjectPrefix(colonyId, "agent-r");
    const first = await nats.addAgentUser("agent-r", prefix);
    expect(await nats.addAgentUser("agent-r", prefix)).toEqual(first);
    const rotated = await nats.addAgentUser("agent-r", prefix, { rotate: true });
    expect(rotated.user).toBe(first.user);
    expect(rotated.password).not.toBe(first.password);
    await expect(connectAs(nats.url, first)).rejects.toThrow(/authorization/i);
    await (await connectAs(nats.url, rotated)).close();
  });

  it("rejects agent ids and prefixes that are not plain subject tokens", async () => {
    await expect(nats.addAgentUser("a.b", "coral.x.agent.a.b")).rejects.toThrow(/agent id "a.b"/);
    await expect(nats.addAgentUser("ok", "coral.*")).rejects.toThrow(/subject prefix/);
    await expect(nats.addAgentUser("ok", "coral")).rejects.toThrow(/at least two tokens/);
  });

  it("removes an agent user, closing its connection and refusing it afterwards", async () => {
    const creds = await nats.addAgentUser("agent-gone", agentSubjectPrefix(colonyId, "agent-gone"));
    const nc = await connectAs(nats.url, creds);
    expect(await nats.removeAgentUser("agent-gone")).toBe(true);
    expect(await nats.removeAgentUser("agent-gone")).toBe(false);
    await pollUntil(() => (nc.isClosed() ? true : undefined), { timeoutMs: 10_000, what: "the removed agent's connection to close" });
    await expect(connectAs(nats.url, creds)).rejects.toThrow(/authorization/i);
    expect(nats.agentUsers().map((a) => a.agentId)).not.toContain("agent-gone");
  });

  it("never writes a password to its logs", () => {
    const text = log.text();
    expect(text).toContain("nats-server is ready");
    expect(text).not.toContain(nats.colonyCredentials.password);
    for (const a of nats.agentUsers()) expect(a).not.toHaveProperty("password");
  });
});

describe.skipIf(!binary)("managed nats-server lifecycle", () => {
  it("keeps agent users (and their passwords) across a stop and start on the same data dir", async () => {
    await using dir = await tempDir("nats-restart");
    const firstLog = captureLogger();
    const first = await startManagedNats({ dataDir: dir.path, port: 0, logger: firstLog });
    const creds = await first.addAgentUser("agent-p", agentSubjectPrefix(colonyId, "agent-p"));
    const firstColonyPassword = first.colonyCredentials.password;
    const pid = first.pid!;
    await first.stop();
    await first.stop();
    expect(isAlive(pid)).toBe(false);
    // A clean stop reads as one (nats-server exits 1 on SIGTERM, 0 on its "quit", SIGINT).
    expect(firstLog.lines.filter((l) => l.msg === "nats-server stopped").map((l) => l.fields.exit)).toEqual(["exited with code 0"]);

    await using second = await startManagedNats({ dataDir: dir.path, port: 0 });
    expect(second.colonyCredentials.password).not.toBe(firstColonyPassword);
    expect(second.agentUsers().map((a) => a.agentId)).toEqual(["agent-p"]);
    await using agent = await connectAs(second.url, creds, { inboxPrefix: creds.inboxPrefix });
    await using colony = await connectAs(second.url, second.colonyCredentials, { inboxPrefix: second.colonyCredentials.inboxPrefix });
    await ensureTelemetryStream(await jetstreamManager(colony), colonyId);
    const ack = await jetstream(agent).publish(telemetrySubject(colonyId, "agent-p"), encodeBatch(makeBatch("agent-p", "p-1")));
    expect(ack.seq).toBe(1);
  });

  it("adds, rotates and removes agent users without one refused connection in its log", async () => {
    await using dir = await tempDir("nats-quiet");
    const log = captureLogger();
    await using nats = await startManagedNats({ dataDir: dir.path, port: 0, logger: log });
    const creds = [];
    for (const id of ["quiet-a", "quiet-b", "quiet-c"]) creds.push(await nats.addAgentUser(id, agentSubjectPrefix(colonyId, id)));
    creds.push(await nats.addAgentUser("quiet-a", agentSubjectPrefix(colonyId, "quiet-a"), { rotate: true }));
    expect(await nats.removeAgentUser("quiet-b")).toBe(true);
    // Each change took effect: the new and rotated users connect, the removed one is refused.
    await (await connectAs(nats.url, creds[3]!)).close();
    await (await connectAs(nats.url, creds[2]!)).close();
    const refusedBefore = log.lines.filter((l) => /authentication error/.test(String(l.fields.line))).length;
    expect(refusedBefore).toBe(0);
    await expect(connectAs(nats.url, creds[1]!)).rejects.toThrow(/authorization/i);
    // The test's own refused attempt is logged: the check above could see one.
    await pollUntil(() => (log.lines.some((l) => /authentication error/.test(String(l.fields.line))) ? true : undefined), { timeoutMs: 10_000, what: "the refusal in the log" });
  });

  it("moves to a free port when the preferred one is taken", async () => {
    const blocker: Server = createServer();
    await new Promise<void>((done) => blocker.listen({ host: "127.0.0.1", port: 0 }, done));
    const taken = (blocker.address() as { port: number }).port;
    try {
      await using dir = await tempDir("nats-port");
      await using nats = await startManagedNats({ dataDir: dir.path, port: taken });
      expect(nats.port).not.toBe(taken);
      expect(nats.port).not.toBe(4222);
      await (await connectAs(nats.url, nats.colonyCredentials)).close();
    } finally {
      await new Promise((done) => blocker.close(done));
    }
  });

  it("moves an unreadable agent users file aside and starts without agents", async () => {
    await using dir = await tempDir("nats-corrupt");
    await writeFile(join(dir.path, "nats-users.json"), "{ not json");
    const log = captureLogger();
    await using nats = await startManagedNats({ dataDir: dir.path, port: 0, logger: log });
    expect(nats.agentUsers()).toEqual([]);
    expect(log.lines.some((l) => l.level === "warn" && /moved it aside/.test(l.msg))).toBe(true);
  });

  it("restarts a nats-server that died, on the same port with the same credentials", async () => {
    await using dir = await tempDir("nats-crash");
    await using nats = await startManagedNats({ dataDir: dir.path, port: 0 });
    const creds = await nats.addAgentUser("agent-c", agentSubjectPrefix(colonyId, "agent-c"));
    const oldPid = nats.pid!;
    const url = nats.url;
    process.kill(oldPid, "SIGKILL");
    await pollUntil(() => (nats.pid !== undefined && nats.pid !== oldPid ? true : undefined), { timeoutMs: 20_000, what: "a restarted nats-server" });
    expect(nats.url).toBe(url);
    // The new process is up; give it until it accepts connections.
    const reconnected = async () => {
      await (await connectAs(url, creds)).close();
      return true;
    };
    await pollUntil(reconnected, { timeoutMs: 20_000, what: "the agent to connect again" });
    await (await connectAs(url, nats.colonyCredentials)).close();
  });

  it("stops a nats-server left running by a colony that died", async () => {
    await using dir = await tempDir("nats-leftover");
    const first = await startManagedNats({ dataDir: dir.path, port: 0 });
    await first.stop();
    // What a colony killed with SIGKILL leaves behind: its server, still running on the same config.
    const leftover = spawn(binary!, ["-c", join(dir.path, "nats-server.conf")], { stdio: "ignore", detached: true });
    const leftoverExit = new Promise((done) => leftover.once("exit", done));
    await pollUntil(async () => ((await readFile(join(dir.path, "nats-server.pid"), "utf8").catch(() => "")).trim() === String(leftover.pid) ? true : undefined), {
      timeoutMs: 10_000,
      what: "the leftover server's pid file",
    });
    const log = captureLogger();
    await using second = await startManagedNats({ dataDir: dir.path, port: 0, logger: log });
    await leftoverExit;
    expect(isAlive(leftover.pid!)).toBe(false);
    expect(second.pid).not.toBe(leftover.pid);
    expect(log.lines.some((l) => /left running/.test(l.msg))).toBe(true);
  });

  it("stops on dispose and is gone afterwards", async () => {
    await using dir = await tempDir("nats-dispose");
    let pid: number;
    {
      await using nats = await startManagedNats({ dataDir: dir.path, port: 0 });
      pid = nats.pid!;
      expect(isAlive(pid)).toBe(true);
    }
    expect(isAlive(pid)).toBe(false);
  });
});
