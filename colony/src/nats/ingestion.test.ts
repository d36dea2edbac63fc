import { jetstream, jetstreamManager, type JetStreamClient } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import type { TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  agentSubjectPrefix,
  deadLetterSubject,
  ensureIngestConsumer,
  type DeadLetter,
  ensureTelemetryStream,
  ingestDurableName,
  startIngestion,
  startManagedNats,
  streamName,
  telemetrySubject,
  type IngestionOptions,
  type ManagedNats,
} from "./index.ts";
import { pollUntil } from "@coral/common/async";
import { captureLogger, encodeBatch, makeBatch, natsServerForTests, tempDir } from "./testing.ts";

const binary = await natsServerForTests();

/** What the store throws once it is closed (matched by name, as ingestion does). */
class StoreClosedError extends Error {
  override name = "StoreClosedError";
}

/**
 * A sink that records what it was given. `failNext` makes the next calls
 * reject as a closed store does; `refuse` makes every call holding that batch
 * reject (`permanent`: as the store's own check does; else for no known reason).
 */
function recordingSink() {
  const calls: string[][] = [];
  const refused = new Map<string, boolean>();
  let failures = 0;
  return {
    calls,
    failNext(n: number) {
      failures = n;
    },
    refuse(batchId: string, permanent: boolean) {
      refused.set(batchId, permanent);
    },
    stored: () => calls.flat(),
    sink: async (batches: TelemetryBatch[]) => {
      if (failures > 0) {
        failures--;
        throw new StoreClosedError("the colony store is closed");
      }
      const bad = batches.find((b) => refused.has(b.batchId));
      if (bad) {
        if (refused.get(bad.batchId)) throw Object.assign(new Error(`batch ${bad.batchId}: Conversion Error: out of range`), { name: "IngestError", batchId: bad.batchId });
        throw new Error("something odd happened");
      }
      calls.push(batches.map((b) => b.batchId));
    },
  };
}

// Generous: this machine is small and shared; the poll returns as soon as the condition holds.
const waitFor = <T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 45_000) => pollUntil(check, { timeoutMs, what, intervalMs: 25 });

describe.skipIf(!binary)("ingestion from JetStream", () => {
  let dir: { path: string } & AsyncDisposable;
  let nats: ManagedNats;
  let colony: NatsConnection;
  let colonyCount = 0;

  beforeAll(async () => {
    dir = await tempDir("nats-ingest");
    nats = await startManagedNats({ dataDir: dir.path, port: 0 });
    colony = await connect({
      servers: nats.url,
      user: nats.colonyCredentials.user,
      pass: nats.colonyCredentials.password,
      inboxPrefix: nats.colonyCredentials.inboxPrefix,
    });
  });
  afterAll(async () => {
    await colony?.drain();
    await nats?.stop();
    await dir?.[Symbol.asyncDispose]();
  });

  /** A fresh colony id (its own stream), an agent user publishing into it, and a way to start ingestion. */
  async function setup(agentId = "agent-1") {
    const colonyId = `colony-${++colonyCount}`;
    await ensureTelemetryStream(await jetstreamManager(colony), colonyId);
    const creds = await nats.addAgentUser(`${colonyId}-${agentId}`, agentSubjectPrefix(colonyId, agentId));
    const agentNc = await connect({ servers: nats.url, user: creds.user, pass: creds.password, inboxPrefix: creds.inboxPrefix });
    const js: JetStreamClient = jetstream(agentNc);
    const subject = telemetrySubject(colonyId, agentId);
    const publish = (batchId: string) => js.publish(subject, encodeBatch(makeBatch(agentId, batchId)), { msgID: batchId });
    const ingest = (extra: Partial<IngestionOptions> & Pick<IngestionOptions, "sink">) =>
      startIngestion({ nc: colony, colonyId, nakDelayMs: 200, retryInitialMs: 100, retryMaxMs: 1000, ...extra });
    const consumerInfo = async () => (await jetstreamManager(colony)).consumers.info(streamName(colonyId), ingestDurableName);
    return { colonyId, agentId, subject, js, publish, ingest, consumerInfo, [Symbol.asyncDispose]: () => agentNc.close() };
  }

  it("stores each published batch exactly once, then acks it", async () => {
    await using t = await setup();
    const rec = recordingSink();
    await using ingestion = t.ingest({ sink: rec.sink });
    const ids = Array.from({ length: 25 }, (_, i) => `batch-${i}`);
    for (const id of ids) expect((await t.publish(id)).duplicate).toBe(false);

    await waitFor("all batches stored", () => (rec.stored().length >= ids.length ? true : undefined));
    await waitFor("all acks", () => (ingestion.stats().acked === ids.length ? true : undefined));
    expect(rec.stored().sort()).toEqual([...ids].sort());
    const info = await t.consumerInfo();
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
    expect(info.config.ack_policy).toBe("explicit");
    expect(ingestion.stats()).toMatchObject({ received: 25, acked: 25, poison: 0, sinkErrors: 0, redelivered: 0 });
  });

  it("lets JetStream drop a repeated publish with the same Nats-Msg-Id", async () => {
    await using t = await setup();
    const rec = recordingSink();
    expect((await t.publish("same")).duplicate).toBe(false);
    const again = await t.publish("same");
    expect(again.duplicate).toBe(true);
    // A raw publish with the header (as any client would send it) is dropped too.
    const h = headers();
    h.set("Nats-Msg-Id", "same");
    expect((await t.js.publish(t.subject, encodeBatch(makeBatch(t.agentId, "same")), { headers: h })).duplicate).toBe(true);
    await t.publish("after");

    await using ingestion = t.ingest({ sink: rec.sink });
    await waitFor("both batches stored", () => (rec.stored().length >= 2 ? true : undefined));
    await waitFor("acks", () => (ingestion.stats().acked === 2 ? true : undefined));
    expect(rec.stored().sort()).toEqual(["after", "same"]);
    expect((await t.consumerInfo()).num_pending).toBe(0);
  });

  it("holds the batches while the store is unavailable and acks them once stored, burning no deliveries", async () => {
    await using t = await setup();
    const rec = recordingSink();
    rec.failNext(2);
    const log = captureLogger();
    await t.publish("retry-1");
    await t.publish("retry-2");
    await using ingestion = t.ingest({ sink: rec.sink, logger: log });

    await waitFor("first sink failure", () => (ingestion.stats().sinkErrors >= 1 ? true : undefined));
    expect(ingestion.stats().acked).toBe(0);

    await waitFor("batches stored after the store came back", () => (rec.stored().length >= 2 ? true : undefined));
    await waitFor("acks", () => (ingestion.stats().acked === 2 ? true : undefined));
    expect(rec.stored().sort()).toEqual(["retry-1", "retry-2"]);
    const stats = ingestion.stats();
    expect(stats).toMatchObject({ sinkErrors: 2, heldRetries: 2, nakked: 0, redelivered: 0, deadLettered: 0 });
    const info = await t.consumerInfo();
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
    expect(info.num_redelivered).toBe(0);
    expect(log.lines.some((l) => l.level === "warn" && /store is unavailable/.test(l.msg))).toBe(true);
  });

  it("stores the rest of a fetch when the store refuses one batch, and sets that one aside", async () => {
    await using t = await setup("agent-r");
    const rec = recordingSink();
    rec.refuse("bad-3", true);
    const letters: DeadLetter[] = [];
    const ids = Array.from({ length: 8 }, (_, i) => (i === 3 ? "bad-3" : `ok-${i}`));
    for (const id of ids) await t.publish(id);
    await using ingestion = t.ingest({ sink: rec.sink, deadLetterSink: async (l) => void letters.push(...l) });

    await waitFor("the good batches", () => (ingestion.stats().acked === 7 ? true : undefined));
    await waitFor("the refused one set aside", () => (ingestion.stats().deadLettered === 1 ? true : undefined));
    expect(rec.stored().sort()).toEqual(ids.filter((id) => id !== "bad-3").sort());
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({ agentId: "agent-r", batchId: "bad-3", subject: t.subject, deliveries: 1 });
    expect(letters[0]!.reason).toMatch(/^the store refused it: .*Conversion Error/);
    expect(ingestion.stats().lastDeadLetter).toMatchObject({ agentId: "agent-r", batchId: "bad-3" });
    // Termed: nothing pending or coming back. The whole message is on the dead-letter subject.
    await waitFor("no pending acks", async () => ((await t.consumerInfo()).num_ack_pending === 0 ? true : undefined));
    expect((await t.consumerInfo()).num_pending).toBe(0);
    const copy = await waitFor("the dead-letter copy", async () =>
      (
        (await (await jetstreamManager(colony)).streams.getMessage(streamName(t.colonyId), { last_by_subj: deadLetterSubject(t.colonyId) }).catch(() => null)) ?? undefined
      ),
    );
    expect(copy.header.get("Coral-Batch-Id")).toBe("bad-3");
    expect(copy.header.get("Coral-Reason")).toMatch(/Conversion Error/);
    expect([...copy.data]).toEqual([...letters[0]!.payload]);
  });

  it("redelivers a batch that fails alone for an unknown reason, then sets it aside after maxDeliveries", async () => {
    await using t = await setup("agent-u");
    const rec = recordingSink();
    rec.refuse("odd", false);
    const letters: DeadLetter[] = [];
    await t.publish("odd");
    await t.publish("fine");
    await using ingestion = t.ingest({ sink: rec.sink, maxDeliveries: 3, deadLetterSink: async (l) => void letters.push(...l) });
    await waitFor("the odd one set aside", () => (letters.length === 1 ? true : undefined));
    expect(letters[0]).toMatchObject({ batchId: "odd", deliveries: 3 });
    expect(letters[0]!.reason).toMatch(/not stored after 3 deliveries: something odd happened/);
    expect(rec.stored()).toEqual(["fine"]);
    expect(ingestion.stats()).toMatchObject({ acked: 1, deadLettered: 1, nakked: 2 });
  });

  it("sets aside, untried, a message already delivered more than maxDeliveries times (e.g. one that crashed colonies)", async () => {
    await using t = await setup("agent-x");
    await t.publish("crashy");
    // Three earlier deliveries that never finished, as colonies killed while storing it would leave.
    const jsm = await jetstreamManager(colony);
    await ensureIngestConsumer(jsm, t.colonyId);
    const consumer = await jetstream(colony).consumers.get(streamName(t.colonyId), ingestDurableName);
    for (let i = 0; i < 3; i++) {
      const iter = await consumer.fetch({ max_messages: 1, expires: 2000 });
      for await (const m of iter) m.nak();
    }
    const rec = recordingSink();
    const letters: DeadLetter[] = [];
    await using ingestion = t.ingest({ sink: rec.sink, maxDeliveries: 3, deadLetterSink: async (l) => void letters.push(...l) });
    await waitFor("set aside", () => (letters.length === 1 ? true : undefined));
    expect(letters[0]).toMatchObject({ batchId: "crashy", deliveries: 4, reason: "delivered 4 times without being stored" });
    expect(rec.calls).toEqual([]);
    expect(ingestion.stats()).toMatchObject({ deadLettered: 1, acked: 0, sinkErrors: 0 });
  });

  it("stores a fetch's good batches and its dead letters in one call when it can, and apart when that fails", async () => {
    for (const failCombined of [false, true]) {
      await using t = await setup(failCombined ? "agent-c2" : "agent-c1");
      await t.js.publish(t.subject, new Uint8Array([0x0a, 0xff, 0x01]), { msgID: "garbage" });
      await t.publish("good-1");
      await t.publish("good-2");
      const rec = recordingSink();
      const combined: Array<{ batches: string[]; letters: string[] }> = [];
      const apart: DeadLetter[] = [];
      await using ingestion = t.ingest({
        sink: rec.sink,
        sinkWithDeadLetters: async (batches, letters) => {
          if (failCombined) throw new Error("something odd happened");
          combined.push({ batches: batches.map((b) => b.batchId), letters: letters.map((l) => l.batchId) });
        },
        deadLetterSink: async (l) => void apart.push(...l),
      });
      await waitFor("all handled", () => (ingestion.stats().acked === 2 && ingestion.stats().deadLettered === 1 ? true : undefined));
      if (failCombined) {
        expect(combined).toEqual([]);
        expect(rec.stored().sort()).toEqual(["good-1", "good-2"]);
        expect(apart.map((l) => l.batchId)).toEqual(["garbage"]);
      } else {
        expect(combined).toEqual([{ batches: ["good-1", "good-2"], letters: ["garbage"] }]);
        expect(rec.stored()).toEqual([]);
        expect(apart).toEqual([]);
      }
    }
  });

  it("holds what it sets aside until it can be recorded", async () => {
    await using t = await setup("agent-h");
    const rec = recordingSink();
    const letters: DeadLetter[] = [];
    let refusals = 2;
    await t.js.publish(t.subject, new Uint8Array([0x0a, 0xff, 0x01]), { msgID: "garbage" });
    await using ingestion = t.ingest({
      sink: rec.sink,
      deadLetterSink: async (l) => {
        if (refusals-- > 0) throw new StoreClosedError("the colony store is closed");
        letters.push(...l);
      },
    });
    await waitFor("recorded after the store came back", () => (letters.length === 1 ? true : undefined));
    expect(letters[0]!.reason).toMatch(/not a protobuf TelemetryBatch/);
    expect(ingestion.stats()).toMatchObject({ poison: 1, deadLettered: 1, nakked: 0 });
  });

  it("terminates poison messages and still delivers the good ones after them", async () => {
    await using t = await setup("agent-p");
    const rec = recordingSink();
    const log = captureLogger();
    // Not protobuf at all (a length-delimited field that runs past the end).
    await t.js.publish(t.subject, new Uint8Array([0x0a, 0xff, 0x01]), { msgID: "garbage" });
    // A valid batch claiming to come from another agent than the subject says.
    await t.js.publish(t.subject, encodeBatch(makeBatch("someone-else", "liar")), { msgID: "liar" });
    // A valid batch without a batch id.
    await t.js.publish(t.subject, encodeBatch(makeBatch(t.agentId, "")));
    await t.publish("good-after-poison");

    await using ingestion = t.ingest({ sink: rec.sink, logger: log });
    await waitFor("the good batch", () => (rec.stored().includes("good-after-poison") ? true : undefined));
    await waitFor("acks", () => (ingestion.stats().acked === 1 ? true : undefined));
    expect(rec.stored()).toEqual(["good-after-poison"]);
    expect(ingestion.stats()).toMatchObject({ poison: 3, deadLettered: 3 });
    // Termed, not pending: they will not come back.
    await waitFor("no pending acks", async () => ((await t.consumerInfo()).num_ack_pending === 0 ? true : undefined));
    const info = await t.consumerInfo();
    expect(info.num_redelivered).toBe(0);
    expect(info.num_pending).toBe(0);
    const poisonLogs = log.lines.filter((l) => /set aside/.test(l.msg));
    expect(poisonLogs).toHaveLength(3);
    expect(poisonLogs.every((l) => l.fields.subject === t.subject)).toBe(true);
    expect(poisonLogs.map((l) => String(l.fields.reason)).join("\n")).toMatch(/not a protobuf TelemetryBatch[\s\S]*does not match[\s\S]*batch_id is empty/);
  });

  it("resumes from the durable consumer: after a stop it delivers only what is new", async () => {
    await using t = await setup();
    const first = recordingSink();
    const one = t.ingest({ sink: first.sink });
    await t.publish("old-1");
    await t.publish("old-2");
    await waitFor("first ingestion stores", () => (one.stats().acked === 2 ? true : undefined));
    await one.stop();
    await one.stop();

    await t.publish("new-1");
    await t.publish("new-2");
    expect((await t.consumerInfo()).num_pending).toBe(2);

    const second = recordingSink();
    await using two = t.ingest({ sink: second.sink });
    await waitFor("second ingestion stores", () => (two.stats().acked === 2 ? true : undefined));
    expect(first.stored().sort()).toEqual(["old-1", "old-2"]);
    expect(second.stored().sort()).toEqual(["new-1", "new-2"]);
    expect(two.stats().redelivered).toBe(0);
  });

  it("stop lets the batch in hand finish: stored and acked before stop resolves", async () => {
    await using t = await setup();
    let release!: () => void;
    const gate = new Promise<void>((done) => (release = done));
    const stored: string[] = [];
    let entered = false;
    const ingestion = t.ingest({
      sink: async (batches) => {
        entered = true;
        await gate;
        stored.push(...batches.map((b) => b.batchId));
      },
    });
    await t.publish("in-flight");
    await waitFor("sink entered", () => (entered ? true : undefined));
    const stopped = ingestion.stop();
    release();
    await stopped;
    expect(stored).toEqual(["in-flight"]);
    expect(ingestion.stats().acked).toBe(1);
    const info = await t.consumerInfo();
    expect(info.num_ack_pending).toBe(0);
    expect(info.num_pending).toBe(0);
  });

  it("batches up to batchSize messages per sink call", async () => {
    await using t = await setup();
    const ids = Array.from({ length: 12 }, (_, i) => `m-${i}`);
    for (const id of ids) await t.publish(id);
    const rec = recordingSink();
    await using ingestion = t.ingest({ sink: rec.sink, batchSize: 5 });
    await waitFor("all stored", () => (ingestion.stats().acked === ids.length ? true : undefined));
    expect(rec.calls.every((c) => c.length <= 5)).toBe(true);
    expect(rec.calls.length).toBeGreaterThanOrEqual(3);
    expect(rec.stored().sort()).toEqual([...ids].sort());
  });
});

describe.skipIf(!binary)("ingestion across a NATS outage", () => {
  it("carries on after the nats-server dies and is restarted", async () => {
    await using dir = await tempDir("nats-outage");
    await using nats = await startManagedNats({ dataDir: dir.path, port: 0 });
    const colonyId = "outage";
    await using colony = await connect({
      servers: nats.url,
      user: nats.colonyCredentials.user,
      pass: nats.colonyCredentials.password,
      inboxPrefix: nats.colonyCredentials.inboxPrefix,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
    });
    await ensureTelemetryStream(await jetstreamManager(colony), colonyId);
    const creds = await nats.addAgentUser("agent-o", agentSubjectPrefix(colonyId, "agent-o"));
    await using agent = await connect({ servers: nats.url, user: creds.user, pass: creds.password, inboxPrefix: creds.inboxPrefix, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const js = jetstream(agent);
    const publish = (id: string) => js.publish(telemetrySubject(colonyId, "agent-o"), encodeBatch(makeBatch("agent-o", id)), { msgID: id });
    const rec = recordingSink();
    const log = captureLogger();
    await using ingestion = startIngestion({ nc: colony, colonyId, sink: rec.sink, logger: log, retryInitialMs: 100, retryMaxMs: 1000 });

    await publish("before");
    await waitFor("batch before the outage", () => (rec.stored().includes("before") ? true : undefined));

    const oldPid = nats.pid!;
    process.kill(oldPid, "SIGKILL");
    await waitFor("nats-server restarted", () => (nats.pid !== undefined && nats.pid !== oldPid ? true : undefined), 30_000);
    // The agent's client reconnects on its own; retry the publish as the agent's outbox would.
    await pollUntil(async () => ((await publish("after")).seq > 0 ? true : undefined), { timeoutMs: 30_000, what: "publish after the restart", intervalMs: 200 });
    await waitFor("batch after the outage", () => (rec.stored().includes("after") ? true : undefined), 45_000);
    expect(rec.stored().filter((id) => id === "after")).toHaveLength(1);
    // An ack lost in the reconnect comes back after the 30 s ack wait and is acked then.
    await waitFor("acks after the outage", () => (ingestion.stats().acked >= 2 ? true : undefined), 60_000);
  }, 180_000);
});
