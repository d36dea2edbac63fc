/**
 * Pulls what the app's Coral SDK middleware gathered: RED aggregates (into
 * the request metric series, source sdk) and traffic samples (into the
 * store, ids "<service>.<sdk id>"), on the agent's sampling tick; prunes the
 * sample buffer by bytes and age on its own timer; and keeps the sample rate
 * the colony asked for, sending it again whenever the SDK (re)appears with
 * another one.
 */
import type { DrainRequestsResponse, DrainTrafficResponse } from "@coral/proto/gen/coral/sdk/v1/sdk_pb";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { sdkRequestPoints } from "../observe/http/index.ts";
import type { AgentStore, TrafficSampleInput } from "../storage/index.ts";

export interface TrafficSdk {
  drainRequests(): Promise<DrainRequestsResponse | null>;
  drainTraffic(maxSamples: number): Promise<DrainTrafficResponse | null>;
  configureTraffic(sampleRate: number): Promise<number | null>;
}

export interface TrafficBufferBounds {
  /** Default 50 MiB. */
  maxBytes: number;
  /** Default 1 h. */
  maxAgeMs: number;
}

export const defaultTrafficBounds: TrafficBufferBounds = { maxBytes: 50 * 1024 * 1024, maxAgeMs: 3_600_000 };

/** Samples asked for per DrainTraffic call, and calls per tick at most. */
const perCall = 200;
const callsPerTick = 10;
/** The SDK's middleware counts as present this long after it last said so. */
const instrumentedForMs = 10_000;

export interface TrafficPullerStatus {
  /** The SDK's middleware answered instrumented recently: its RED replaces eBPF's. */
  sdkInstrumented: boolean;
  /** The SDK's sample rate as last seen (-1: not seen yet). */
  sampleRate: number;
  /** The rate the colony asked for (-1: none). */
  configuredRate: number;
  requests: number;
  samples: number;
  sdkDropped: number;
  pruned: number;
}

export class TrafficPuller {
  #instrumentedAt = 0;
  #status: TrafficPullerStatus = { sdkInstrumented: false, sampleRate: -1, configuredRate: -1, requests: 0, samples: 0, sdkDropped: 0, pruned: 0 };

  constructor(
    private readonly options: {
      serviceName: string;
      sdk: TrafficSdk;
      store: Pick<AgentStore, "recordMetrics" | "recordTrafficSamples" | "pruneTraffic">;
      bounds?: Partial<TrafficBufferBounds>;
      logger: { warn(obj: object, msg?: string): void; debug(obj: object, msg?: string): void };
    },
  ) {}

  get bounds(): TrafficBufferBounds {
    return { ...defaultTrafficBounds, ...this.options.bounds };
  }

  status(): TrafficPullerStatus {
    return { ...this.#status, sdkInstrumented: this.sdkInstrumented() };
  }

  /** Whether the SDK's request figures stand for the service now (then the eBPF ones are left out: not counted twice). */
  sdkInstrumented(now = Date.now()): boolean {
    return this.#instrumentedAt > 0 && now - this.#instrumentedAt < instrumentedForMs;
  }

  /** One tick: RED aggregates, then the queued samples. `now`: when the figures reach the store (default: once drained). */
  async pull(at?: Date): Promise<void> {
    let red: DrainRequestsResponse | null;
    try {
      red = await this.options.sdk.drainRequests();
    } catch (err) {
      // An SDK without the middleware RPCs (older), or one that just went away: nothing to pull now.
      this.options.logger.debug({ err: String(err) }, "Could not drain the SDK's request figures");
      return;
    }
    if (!red) return;
    // Stamped now, not when the tick began: the agent summarises [last summary, now), and a
    // window summarised while the drain was under way would never count figures stamped inside it.
    const now = at ?? new Date();
    if (red.instrumented) this.#instrumentedAt = now.getTime();
    const made = sdkRequestPoints(red, now);
    if (made.skipped > 0) this.options.logger.warn({ skipped: made.skipped }, "Left out SDK request figures that are malformed or too many");
    if (made.points.length > 0) await this.options.store.recordMetrics(made.points);
    this.#status.requests += made.requests;
    for (let i = 0; i < callsPerTick; i++) {
      const res = await this.options.sdk.drainTraffic(perCall);
      if (!res) return;
      this.#status.sampleRate = res.sampleRate;
      this.#status.sdkDropped += Number(res.dropped);
      if (res.samples.length > 0) {
        const stored = await this.options.store.recordTrafficSamples(res.samples.map((s) => this.#input(s)), now);
        this.#status.samples += stored;
      }
      if (res.remaining === 0 || res.samples.length === 0) break;
    }
    const wanted = this.#status.configuredRate;
    if (wanted >= 0 && this.#status.sampleRate >= 0 && Math.abs(this.#status.sampleRate - wanted) > 1e-9) {
      const rate = await this.options.sdk.configureTraffic(wanted);
      if (rate !== null) this.#status.sampleRate = rate;
    }
  }

  /** Remembers the rate and passes it on now when the SDK is reachable. */
  async configure(sampleRate: number): Promise<{ sampleRate: number; delivered: boolean }> {
    this.#status.configuredRate = sampleRate;
    const rate = await this.options.sdk.configureTraffic(sampleRate).catch((err: unknown) => {
      this.options.logger.warn({ err: String(err) }, "Could not pass the sample rate to the SDK; retrying on the next pull");
      return null;
    });
    if (rate === null) return { sampleRate, delivered: false };
    this.#status.sampleRate = rate;
    return { sampleRate: rate, delivered: true };
  }

  async prune(now = new Date()): Promise<void> {
    const r = await this.options.store.pruneTraffic(this.bounds, now);
    this.#status.pruned += r.byAge + r.byBytes;
  }

  #input(s: DrainTrafficResponse["samples"][number]): TrafficSampleInput {
    return {
      id: `${this.options.serviceName}.${s.id}`,
      method: s.method,
      path: s.path,
      route: s.route,
      status: s.status,
      startTime: s.startTime ? timestampDate(s.startTime) : new Date(),
      durationMs: s.durationMs,
      requestHeaders: s.requestHeaders.map((h) => ({ name: h.name, value: h.value })),
      responseHeaders: s.responseHeaders.map((h) => ({ name: h.name, value: h.value })),
      requestBody: s.requestBody,
      requestBodyTruncated: s.requestBodyTruncated,
      requestBodySize: Number(s.requestBodySize),
      responseBody: s.responseBody,
      responseBodyTruncated: s.responseBodyTruncated,
      responseBodySize: Number(s.responseBodySize),
      reason: s.reason,
    };
  }
}
