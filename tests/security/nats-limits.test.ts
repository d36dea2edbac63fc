// Issue 17, Medium 11 and a Low item, as attacks by an enrolled agent on the
// colony's NATS: publishing anywhere under its prefix (the stream captured
// "coral.<colony>.>", without size caps), sending oversized messages, filling
// the stream, and reading other agents' JetStream acknowledgements ("_INBOX.>").
import { mkdtemp, rm } from "node:fs/promises";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { agentSubjectPrefix, deadLetterSubject, ensureTelemetryStream, startManagedNats, streamName, telemetrySubject } from "@coral/colony/nats";
import { describe, expect, it } from "vitest";
import { createTestProject } from "../helpers/colony.ts";
import { SyntheticAgent } from "../helpers/synthetic-agent.ts";
import { waitFor } from "../helpers/wait.ts";

async function tempDir(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await mkdtemp(join(tmpdir(), `coral-${prefix}-`));
  return { path, [Symbol.asyncDispose]: () => rm(path, { recursive: true, force: true }) };
}

/** Speaks the NATS protocol by hand, so the server (not the client library, which checks first) decides about an oversized message. */
function rawPublish(url: string, user: string, pass: string, subject: string, size: number): Promise<{ info: { max_payload: number }; reply: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: hostname, port: Number(port) });
    let text = "";
    let info: { max_payload: number } | undefined;
    const timer = setTimeout(() => finish(new Error(`no answer; got ${JSON.stringify(text.slice(0, 300))}`)), 20_000);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve({ info: info!, reply: text });
    };
    socket.on("data", (chunk) => {
      text += chunk.toString("latin1");
      if (!info && text.includes("\r\n")) {
        info = JSON.parse(text.slice(text.indexOf("{"), text.indexOf("\r\n"))) as { max_payload: number };
        socket.write(`CONNECT ${JSON.stringify({ user, pass, verbose: false, pedantic: false, protocol: 1 })}\r\n`);
        // The header announces the size; the server judges it before any of the body.
        socket.write(`PUB ${subject} ${size}\r\n`);
      }
      if (/-ERR|PONG/.test(text.slice(text.indexOf("\r\n")))) finish();
    });
    // The server may hang up before the body is written (EPIPE): what it said before is the answer.
    socket.on("error", () => {});
    socket.on("close", () => finish());
  });
}

async function registeredAgent(colonyUrl: string, localToken: string, agentId: string): Promise<SyntheticAgent> {
  const agent = new SyntheticAgent({ colonyUrl, localToken, agentId, serviceName: agentId, port: 7200 });
  await agent.register();
  await agent.connectNats();
  return agent;
}

describe("what an agent may do on the colony's NATS", () => {
  it("publishes only its own telemetry subject; nothing else under its prefix, nor anyone else's, nor the dead-letter subject", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    await using agent = await registeredAgent(colony.url, project.localToken, "pub-a");
    const prefix = agent.registration!.nats!.subjectPrefix;
    const payload = new Uint8Array([1, 2, 3]);
    for (const subject of [`${prefix}.events`, `${prefix}.telemetry.more`, `${prefix}.x.y.z`, telemetrySubject(colony.colonyId, "pub-b"), deadLetterSubject(colony.colonyId)]) {
      const err = await agent.publishRaw(payload, { subject }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(err), subject).toMatch(/permissions violation for publish/i);
    }
    // Its own telemetry subject works (and the junk is set aside, not stored).
    const ack = await agent.publishRaw(payload);
    expect(ack.stream).toBe(streamName(colony.colonyId));
  });

  it("cannot send a message over the server's max_payload (1 MiB), whatever its client does", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    await using agent = await registeredAgent(colony.url, project.localToken, "big-a");
    const nats = agent.registration!.nats!;
    expect(agent.connection!.info?.max_payload).toBe(1024 * 1024);
    const { info, reply } = await rawPublish(nats.url, nats.user, nats.password, `${nats.subjectPrefix}.telemetry`, 2 * 1024 * 1024);
    expect(info.max_payload).toBe(1024 * 1024);
    expect(reply).toMatch(/-ERR 'Maximum Payload Violation'/);
  });

  it("cannot subscribe to another agent's inbox or to _INBOX.>, so it never sees their acknowledgements", async () => {
    await using project = await createTestProject();
    const colony = await project.start();
    await using a = await registeredAgent(colony.url, project.localToken, "inbox-a");
    await using b = await registeredAgent(colony.url, project.localToken, "inbox-b");
    const inboxA = a.registration!.nats!.inboxPrefix;
    expect(inboxA).toMatch(/^_INBOX_[0-9a-f]{8}_inbox-a$/);
    expect(b.registration!.nats!.inboxPrefix).not.toBe(inboxA);
    const nc = b.connection!;
    const seen: string[] = [];
    for (const subject of ["_INBOX.>", `${inboxA}.>`, ">", "_INBOX_COLONY.>"]) {
      const sub = nc.subscribe(subject, { callback: (err, m) => void (err ? undefined : seen.push(m.subject)) });
      const err = await sub.closed;
      expect(String(err), subject).toMatch(/permissions violation for subscription/i);
    }
    // A's publishes are acknowledged on A's own inbox; B saw none of it.
    for (let i = 0; i < 5; i++) expect((await a.publishRaw(new Uint8Array([i]))).seq).toBeGreaterThan(0);
    await nc.flush();
    expect(seen).toEqual([]);
    // And B still gets its own acknowledgements.
    expect((await b.publishRaw(new Uint8Array([9]))).seq).toBeGreaterThan(0);
  });
});

describe("the telemetry stream's caps", () => {
  it("by default captures only telemetry and dead letters, at most 1 GiB and 1 MiB a message", async () => {
    await using dir = await tempDir("stream-caps");
    await using nats = await startManagedNats({ dataDir: dir.path, port: 0 });
    const nc = await connect({ servers: nats.url, user: nats.colonyCredentials.user, pass: nats.colonyCredentials.password, inboxPrefix: nats.colonyCredentials.inboxPrefix });
    try {
      const info = await ensureTelemetryStream(await jetstreamManager(nc), "capped");
      expect(info.config).toMatchObject({ subjects: ["coral.capped.agent.*.telemetry", "coral.capped.deadletter"], max_bytes: 1024 ** 3, max_msg_size: 1024 ** 2 });
    } finally {
      await nc.close();
    }
  });

  it("keeps a flooding agent within the stream's byte cap and refuses a message over its size cap", async () => {
    await using dir = await tempDir("stream-flood");
    await using nats = await startManagedNats({ dataDir: dir.path, port: 0 });
    const colonyNc: NatsConnection = await connect({ servers: nats.url, user: nats.colonyCredentials.user, pass: nats.colonyCredentials.password, inboxPrefix: nats.colonyCredentials.inboxPrefix });
    const creds = await nats.addAgentUser("flood", agentSubjectPrefix("flooded", "flood"));
    const agentNc = await connect({ servers: nats.url, user: creds.user, pass: creds.password, inboxPrefix: creds.inboxPrefix });
    try {
      const jsm = await jetstreamManager(colonyNc);
      const cap = 512 * 1024;
      await ensureTelemetryStream(jsm, "flooded", { maxBytes: cap, maxMsgSize: 64 * 1024 });
      const js = jetstream(agentNc);
      const subject = telemetrySubject("flooded", "flood");
      for (let i = 0; i < 64; i++) await js.publish(subject, new Uint8Array(32 * 1024).fill(i));
      const state = await waitFor("the stream at its cap", async () => {
        const s = (await jsm.streams.info(streamName("flooded"))).state;
        return s.bytes <= cap && s.first_seq > 1 ? s : undefined;
      });
      expect(state.last_seq).toBe(64);
      expect(state.bytes).toBeLessThanOrEqual(cap);
      const refused = await js.publish(subject, new Uint8Array(100 * 1024)).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(refused)).toMatch(/maximum (message|allowed)|message size/i);
    } finally {
      await agentNc.close();
      await colonyNc.close();
    }
  });
});
