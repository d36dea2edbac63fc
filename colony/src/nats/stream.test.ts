import { AckPolicy, jetstreamManager, StorageType } from "@nats-io/jetstream";
import { connect, nanos, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureIngestConsumer, ensureTelemetryStream, ingestDurableName, startManagedNats, type ManagedNats } from "./index.ts";
import { natsServerForTests, tempDir } from "./testing.ts";

const binary = await natsServerForTests();

describe.skipIf(!binary)("telemetry stream and ingestion consumer", () => {
  let dir: { path: string } & AsyncDisposable;
  let nats: ManagedNats;
  let nc: NatsConnection;

  beforeAll(async () => {
    dir = await tempDir("nats-stream");
    nats = await startManagedNats({ dataDir: dir.path, port: 0 });
    nc = await connect({ servers: nats.url, user: nats.colonyCredentials.user, pass: nats.colonyCredentials.password });
  });
  afterAll(async () => {
    await nc?.close();
    await nats?.stop();
    await dir?.[Symbol.asyncDispose]();
  });

  it("creates one file-backed stream per colony, deduping by Nats-Msg-Id for 2 minutes, keeping 24 h and at most 1 GiB", async () => {
    const jsm = await jetstreamManager(nc);
    const info = await ensureTelemetryStream(jsm, "shop-dev");
    expect(info.config).toMatchObject({
      name: "CORAL_SHOP_DEV",
      subjects: ["coral.shop-dev.agent.*.telemetry", "coral.shop-dev.deadletter"],
      max_bytes: 1024 * 1024 * 1024,
      max_msg_size: 1024 * 1024,
      storage: "file",
      retention: "limits",
      discard: "old",
      duplicate_window: nanos(2 * 60_000),
      max_age: nanos(24 * 60 * 60_000),
    });
  });

  it("is idempotent and updates an existing stream to the wanted limits", async () => {
    const jsm = await jetstreamManager(nc);
    await ensureTelemetryStream(jsm, "again");
    await ensureTelemetryStream(jsm, "again");
    const changed = await ensureTelemetryStream(jsm, "again", { maxAgeMs: 60 * 60_000, duplicateWindowMs: 30_000 });
    expect(changed.config.max_age).toBe(nanos(60 * 60_000));
    expect(changed.config.duplicate_window).toBe(nanos(30_000));
    expect((await jsm.streams.names().next()).filter((n) => n === "CORAL_AGAIN")).toHaveLength(1);
  });

  it("narrows an old stream that captured every subject of the colony", async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: "CORAL_OLD", subjects: ["coral.old.>"], storage: StorageType.File });
    const info = await ensureTelemetryStream(jsm, "old");
    expect(info.config.subjects).toEqual(["coral.old.agent.*.telemetry", "coral.old.deadletter"]);
    expect(info.config.max_bytes).toBe(1024 * 1024 * 1024);
  });

  it("creates the durable pull consumer with explicit acks and finite, backed-off redelivery, idempotently", async () => {
    const jsm = await jetstreamManager(nc);
    await ensureTelemetryStream(jsm, "consumer");
    await ensureIngestConsumer(jsm, "consumer");
    const info = await ensureIngestConsumer(jsm, "consumer", { ackWaitMs: 45_000 });
    expect(info.config).toMatchObject({
      durable_name: ingestDurableName,
      ack_policy: "explicit",
      deliver_policy: "all",
      max_deliver: 13,
      ack_wait: nanos(45_000),
      filter_subject: "coral.consumer.agent.*.telemetry",
    });
    expect(info.config.deliver_subject).toBeUndefined();
  });

  it("makes an old consumer's unlimited redelivery finite", async () => {
    const jsm = await jetstreamManager(nc);
    await ensureTelemetryStream(jsm, "legacy");
    await jsm.consumers.add("CORAL_LEGACY", { durable_name: ingestDurableName, ack_policy: AckPolicy.Explicit, max_deliver: -1, filter_subject: "coral.legacy.agent.*.telemetry" });
    const info = await ensureIngestConsumer(jsm, "legacy", { maxDeliver: 5 });
    expect(info.config.max_deliver).toBe(5);
  });
});
