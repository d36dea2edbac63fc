// The ingest benchmark's synthetic agents and telemetry, shared by run.ts
// (agents in the colony's process) and publisher.ts (agents in their own).
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { EventSchema, MetricSummarySchema, TelemetryBatchSchema, type MetricSummary, type TelemetryBatch } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { SyntheticAgent } from "../../tests/helpers/synthetic-agent.ts";

export const minute = 60_000;

export interface PublisherConfig {
  colonyUrl: string;
  /** The colony's local token: each synthetic agent mints its own invitation with it. */
  localToken: string;
  agents: Array<{ agentId: string; serviceName: string; port: number }>;
  messagesPerAgent: number;
  rowsPerMessage: number;
  /** Publishes in flight per agent: a window is sent, then all its acks are awaited. */
  window: number;
  /** Timestamp of message 0 (ms, whole minute). */
  baseMs: number;
  /**
   * "outbox": every batch is encoded before the clock starts and its bytes are
   * published with the agent's NATS credentials, as the real agent does (it
   * encodes at enqueue time and its outbox publishes stored bytes).
   * "synthetic-agent": SyntheticAgent.publish(), which encodes at publish time.
   */
  encoding: "outbox" | "synthetic-agent";
  /** With "outbox": every poisonEvery-th message of each agent is a poison batch instead (0: none). */
  poisonEvery?: number;
}

/** Whether message i of an agent is poison (in the middle of each run of poisonEvery). */
export function isPoison(config: Pick<PublisherConfig, "poisonEvery">, i: number): boolean {
  const every = config.poisonEvery ?? 0;
  return every > 0 && i % every === Math.floor(every / 2);
}

/** Poison messages per agent. */
export function poisonPerAgent(config: Pick<PublisherConfig, "poisonEvery" | "messagesPerAgent">): number {
  let n = 0;
  for (let i = 0; i < config.messagesPerAgent; i++) if (isPoison(config, i)) n++;
  return n;
}

/** A batch that decodes but that the store cannot take: the four kinds of issue 17, in turn. */
export function poisonBatch(agentId: string, batchId: string, serviceName: string, i: number): TelemetryBatch {
  const now = timestampFromDate(new Date());
  const kinds: Array<Pick<TelemetryBatch, "metrics"> | Pick<TelemetryBatch, "events">> = [
    { events: [create(EventSchema, { eventId: `p${i}`, eventType: "tick", timestamp: now, detailsJson: "{not json" })] },
    { metrics: [create(MetricSummarySchema, { metricName: "poison", interval: "1m", timestamp: now, count: 2n ** 64n - 1n })] },
    { metrics: [create(MetricSummarySchema, { metricName: "poison", interval: "1m", count: 1n })] },
    { events: [create(EventSchema, { eventId: `p${i}`, eventType: "", timestamp: now })] },
  ];
  return create(TelemetryBatchSchema, { batchId, agentId, serviceName, createdAt: now, ...kinds[i % kinds.length] });
}

export type PublisherMessage =
  | { type: "ready"; payloadBytes: number }
  | { type: "progress"; acked: number }
  | { type: "done"; acked: number; publishMs: number };

/** One 1-minute summary with plausible values. */
export function summary(metricName: string, at: Date, seed: number): MetricSummary {
  const base = 10 + (seed % 17);
  return create(MetricSummarySchema, {
    timestamp: timestampFromDate(at),
    metricName,
    interval: "1m",
    p50: base,
    p95: base * 2,
    p99: base * 3,
    mean: base * 1.1,
    max: base * 4,
    min: base / 2,
    count: 60n,
  });
}

/** Agent a's messages: message i holds rowsPerMessage distinct metrics at minute i (no key repeats). */
export function buildPayloads(config: Pick<PublisherConfig, "messagesPerAgent" | "rowsPerMessage" | "baseMs">, a: number): MetricSummary[][] {
  return Array.from({ length: config.messagesPerAgent }, (_, i) =>
    Array.from({ length: config.rowsPerMessage }, (_, r) => summary(`metric_${String(r).padStart(3, "0")}`, new Date(config.baseMs + i * minute), a + i + r)),
  );
}

export interface Publishers {
  payloadBytes: number;
  acked(): number;
  /** Publishes every message, config.window in flight per agent (a window's acks are awaited before the next). */
  go(): Promise<void>;
  close(): Promise<void>;
}

/** Registers every agent over Connect (with a heartbeat), connects it to NATS and prepares its messages. */
export async function startPublishers(config: PublisherConfig): Promise<Publishers> {
  const agents = config.agents.map((a) => new SyntheticAgent({ colonyUrl: config.colonyUrl, localToken: config.localToken, ...a }));
  const connections: NatsConnection[] = [];
  const close = async () => {
    for (const nc of connections) await nc.close().catch(() => {});
    for (const agent of agents) await agent[Symbol.asyncDispose]().catch(() => {});
  };
  try {
    const clients: JetStreamClient[] = [];
    for (const agent of agents) {
      const registration = await agent.register();
      await agent.heartbeat();
      if (config.encoding === "synthetic-agent") await agent.connectNats();
      else {
        const nats = registration.nats!;
        // The agent's own reply inbox: the only one it may read its PubAcks from.
        const nc = await connect({ servers: nats.url, user: nats.user, pass: nats.password, name: agent.options.agentId, inboxPrefix: nats.inboxPrefix || undefined });
        connections.push(nc);
        clients.push(jetstream(nc));
      }
    }
    const encode = (a: number, i: number, metrics: MetricSummary[]) => {
      const agentId = config.agents[a]!.agentId;
      const batch = isPoison(config, i) ? poisonBatch(agentId, `${agentId}-${i}`, config.agents[a]!.serviceName, i) : create(TelemetryBatchSchema, {
        batchId: `${agentId}-${i}`,
        agentId,
        serviceName: config.agents[a]!.serviceName,
        createdAt: timestampFromDate(new Date()),
        metrics,
      });
      return { batchId: batch.batchId, payload: toBinary(TelemetryBatchSchema, batch) };
    };
    const payloads = agents.map((_, a) => buildPayloads(config, a));
    const encoded = config.encoding === "outbox" ? payloads.map((mine, a) => mine.map((metrics, i) => encode(a, i, metrics))) : [];
    let acked = 0;
    const sendOne = async (a: number, i: number): Promise<void> => {
      if (config.encoding === "synthetic-agent") await agents[a]!.publish({ metrics: payloads[a]![i]! });
      else {
        const { batchId, payload } = encoded[a]![i]!;
        const h = headers();
        h.set("Nats-Msg-Id", batchId);
        const prefix = agents[a]!.registration!.nats!.subjectPrefix;
        await clients[a]!.publish(`${prefix}.telemetry`, payload, { headers: h, timeout: 10_000 });
      }
      acked++;
    };
    return {
      payloadBytes: encode(0, 0, payloads[0]![0]!).payload.length,
      acked: () => acked,
      async go() {
        await Promise.all(
          agents.map(async (_, a) => {
            for (let i = 0; i < config.messagesPerAgent; i += config.window) {
              const window = Array.from({ length: Math.min(config.window, config.messagesPerAgent - i) }, (_, j) => sendOne(a, i + j));
              await Promise.all(window);
            }
          }),
        );
      },
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}
