// Test helpers: agents' telemetry as real agents send it (1-minute summary
// batches with connection observations, event batches), and registrations as
// MeshService.Register records them (agents row + audit log).
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import {
  ConnectionObservationSchema,
  EventSchema,
  MetricSummarySchema,
  TelemetryBatchSchema,
  type TelemetryBatch,
} from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import type { ColonyStore } from "../store/index.ts";

export type Clock = (minutes: number) => Date;

/** A clock of minutes after t0 (fractions allowed). */
export function timeline(t0: Date): Clock {
  return (minutes) => new Date(t0.getTime() + Math.round(minutes * 60_000));
}

export const T0 = new Date("2024-05-01T08:00:00.000Z");
/** T0 + n minutes. */
export const at: Clock = timeline(T0);

/** A steady value with a small symmetric wobble that averages out over every 4 minutes. */
export function steady(value: number, minute: number, wobble: number): number {
  const offsets = [-1.5, -0.5, 0.5, 1.5];
  return value + (offsets[((minute % 4) + 4) % 4]! * wobble) / 1.5;
}

/** Deterministic noise in [-1, 1) (a linear congruential generator). */
export function noise(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

/** Samples per minute behind a summary, as the agent's observers take them. */
const samplesPerMinute: Record<string, number> = { health_up: 6, health_latency_ms: 6, otel_log_errors: 1, otel_span_errors: 1 };

export class SimAgent {
  #seq = 0;
  #local = 40_000;
  readonly batches: TelemetryBatch[] = [];

  constructor(
    readonly store: ColonyStore,
    readonly agentId: string,
    readonly service: string,
    readonly port: number,
  ) {
    this.#local += port % 1000;
  }

  /** What MeshService.Register stores: the agent row and an agent.register audit row with the version. */
  async register(when: Date, version: string, health = "healthy"): Promise<void> {
    const existing = await this.store.getAgent(this.agentId);
    await this.store.upsertAgent({
      agentId: this.agentId,
      serviceName: this.service,
      port: this.port,
      address: "127.0.0.1",
      version,
      hostname: "laptop",
      tags: { version },
      agentUrl: `http://127.0.0.1:${this.port + 10_000}`,
      registeredAt: when,
      lastSeen: when,
      health: existing?.health ?? health,
      pid: 1000,
      processStartedAt: when,
      restartCount: existing?.restartCount ?? 0,
      cpuPercent: 0,
      memoryBytes: 0,
    });
    await this.store.appendAudit({
      at: when,
      actor: `agent:${this.agentId}`,
      action: "agent.register",
      target: this.service,
      details: { port: this.port, version, address: "127.0.0.1" },
    });
  }

  /** Queues the summary batch of the minute starting at `start`, with the outbound connections held then. */
  minute(start: Date, metrics: Record<string, number>, remotes: string[] = []): this {
    const end = new Date(start.getTime() + 60_000);
    this.batches.push(
      create(TelemetryBatchSchema, {
        batchId: `${this.agentId}-${++this.#seq}`,
        agentId: this.agentId,
        serviceName: this.service,
        createdAt: timestampFromDate(end),
        metrics: Object.entries(metrics).map(([name, value]) =>
          create(MetricSummarySchema, {
            timestamp: timestampFromDate(start),
            metricName: name,
            interval: "1m",
            mean: value,
            p50: value,
            p95: value * 1.05,
            p99: value * 1.1,
            max: value * 1.2,
            min: value * 0.9,
            count: BigInt(samplesPerMinute[name] ?? 60),
          }),
        ),
        connections: remotes.map((remote, i) =>
          create(ConnectionObservationSchema, {
            localAddr: `127.0.0.1:${this.#local + i}`,
            remoteAddr: remote,
            state: "ESTABLISHED",
            observedAt: timestampFromDate(end),
            count: 1,
          }),
        ),
      }),
    );
    return this;
  }

  /** Queues an event batch. */
  event(when: Date, type: string, details: Record<string, unknown> = {}): this {
    const n = ++this.#seq;
    this.batches.push(
      create(TelemetryBatchSchema, {
        batchId: `${this.agentId}-${n}`,
        agentId: this.agentId,
        serviceName: this.service,
        createdAt: timestampFromDate(when),
        events: [create(EventSchema, { eventId: `${this.agentId}-ev-${n}`, timestamp: timestampFromDate(when), eventType: type, detailsJson: JSON.stringify(details) })],
      }),
    );
    return this;
  }

  /** The process went away and a new one listens again 5 s later (process_exited, then restart), as the watcher reports it. */
  restart(when: Date, lastRssBytes?: number): this {
    this.event(when, "process_exited", { port: this.port, reason: "vanished", ...(lastRssBytes === undefined ? {} : { last_rss_bytes: lastRssBytes }) });
    return this.event(new Date(when.getTime() + 5000), "restart", { port: this.port, reason: "exited", downtime_ms: 5000 });
  }

  /** Ingests what is queued, as the colony's NATS consumer does. */
  async flush(): Promise<void> {
    const batches = this.batches.splice(0);
    for (let i = 0; i < batches.length; i += 200) await this.store.ingest(batches.slice(i, i + 200));
  }
}

const MB = 1e6;

/**
 * The scripted incident. frontend (1.9.1) calls api and legacy for two hours.
 * At minute 100 it is redeployed as 1.9.2 (one restart): it stops calling
 * legacy and starts calling a cache nobody observes (127.0.0.1:6379). From
 * minute 116 it restarts three times in ten minutes (each exit with more
 * memory) and from minute 121 its memory climbs to 3× (mean 300 MB over
 * minutes 121-125 against a steady 100 MB before). Judge it at minute 126.
 */
export async function leakingFrontend(store: ColonyStore, at: Clock): Promise<{ frontend: SimAgent; api: SimAgent; legacy: SimAgent }> {
  const frontend = new SimAgent(store, "frontend-1", "frontend", 3000);
  const api = new SimAgent(store, "api-1", "api", 8080);
  const legacy = new SimAgent(store, "legacy-1", "legacy", 7000);
  await frontend.register(at(0), "1.9.1");
  await api.register(at(0), "2.1.0");
  await legacy.register(at(0), "0.9.0");
  const leak = [260, 280, 300, 320, 340].map((v) => v * MB);
  for (let m = 0; m < 126; m++) {
    const memory = m >= 121 ? leak[m - 121]! : steady(100 * MB, m, 1.5 * MB);
    const remotes = ["127.0.0.1:8080", ...(m < 100 ? ["127.0.0.1:7000"] : []), ...(m >= 101 ? ["127.0.0.1:6379"] : [])];
    frontend.minute(at(m), { memory_bytes: memory, cpu_percent: steady(5, m, 1), health_latency_ms: steady(3, m, 0.3), health_up: 1, thread_count: 12 }, remotes);
    api.minute(at(m), { memory_bytes: steady(200 * MB, m, 2 * MB), cpu_percent: steady(10, m, 2), health_latency_ms: steady(20, m, 2), health_up: 1 }, ["127.0.0.1:5432"]);
    legacy.minute(at(m), { memory_bytes: 50 * MB, cpu_percent: 1, health_up: 1 });
  }
  // The deploy: the process restarts and the agent registers with the new version.
  frontend.restart(at(99.9));
  frontend.restart(at(116.5), 310 * MB).restart(at(120.5), 330 * MB).restart(at(124.5), 355 * MB);
  await Promise.all([frontend.flush(), api.flush(), legacy.flush()]);
  await frontend.register(at(100), "1.9.2");
  return { frontend, api, legacy };
}
