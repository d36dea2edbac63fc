// From the OTLP endpoints to the agent's store: spans through the tail keep
// rules, log records as they come, metric data points as the agent's own
// metric points (./metrics.ts), all written in batches every second
// (one appender flush per table). Rows waiting for the store are bounded;
// when the store cannot keep up or fails, the oldest are dropped and
// counted, and the receiver never waits on the disk. Each resource's data
// is attributed by its service.name and by the process that sent it
// (./records.ts attribute; the receiver finds the sender's pid).
import type { OtlpRequest } from "./decode.ts";
import type { MetricPoint } from "../storage/types.ts";
import { metricPoints } from "./metrics.ts";
import { OperationStats } from "./operations.ts";
import { attribute, logRecords, spanRecords, type Attribution, type LogRecordRow, type SpanRecord } from "./records.ts";
import type { OtlpSink } from "./receiver.ts";
import { TailSampler, type TailSamplerOptions, type TailSamplerStats } from "./tail-sampler.ts";

export interface OtlpStore {
  recordSpans(spans: readonly SpanRecord[]): Promise<number>;
  recordLogs(logs: readonly LogRecordRow[]): Promise<number>;
  recordMetrics(points: readonly MetricPoint[]): Promise<number>;
}

export interface OtlpIngestOptions {
  store: OtlpStore;
  sampler?: TailSamplerOptions;
  /** service.name for data whose resource has none (default the agent's service). */
  defaultService: string;
  /** The observed service a process belongs to (its process set), if any: data its processes send without a name of their own is that service's. */
  serviceOfPid?: (pid: number) => string | undefined;
  /** How often kept spans and logs are written (default 1 s). */
  flushEveryMs?: number;
  /** Rows waiting for the store, per table, before the oldest are dropped (default 200,000). */
  maxPendingRows?: number;
  onError?: (err: unknown) => void;
  now?: () => number;
}

export interface OtlpIngestStats {
  sampler: TailSamplerStats;
  spansStored: number;
  logsReceived: number;
  logsStored: number;
  metricPointsReceived: number;
  /** Metric points stored as the agent's own (they reach `coral metrics`). */
  metricPointsStored: number;
  /** Data points beyond the per-request cap (./metrics.ts maxPointsPerRequest), not kept. */
  metricPointsOverCap: number;
  /** Rows dropped because the store did not keep up. */
  droppedPending: number;
  /** Resources (of spans, logs or metrics) without a service.name of their own, attributed to the observed service of the process that sent them. */
  attributedByProcess: number;
  /** Resources whose service.name differs from the observed service of the process that sent them (the name was kept). */
  serviceNameDisagreements: number;
}

export class OtlpIngest implements OtlpSink {
  readonly sampler: TailSampler;
  /** Per-operation latency and the interval's error counts, over everything received (./operations.ts). */
  readonly operations = new OperationStats();
  readonly #opts: Required<Omit<OtlpIngestOptions, "sampler" | "onError" | "serviceOfPid">> & Pick<OtlpIngestOptions, "onError" | "serviceOfPid">;
  #spans: SpanRecord[] = [];
  #logs: LogRecordRow[] = [];
  #metrics: MetricPoint[] = [];
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();
  readonly #stats = { spansStored: 0, logsReceived: 0, logsStored: 0, metricPointsReceived: 0, metricPointsStored: 0, metricPointsOverCap: 0, droppedPending: 0, attributedByProcess: 0, serviceNameDisagreements: 0 };

  constructor(options: OtlpIngestOptions) {
    this.sampler = new TailSampler(options.sampler);
    this.#opts = { flushEveryMs: 1000, maxPendingRows: 200_000, now: Date.now, ...options };
  }

  stats(): OtlpIngestStats {
    return { sampler: this.sampler.stats(), ...this.#stats };
  }

  /** How this request's resources are attributed, `senderPid` being the process that sent it (when known); counted. */
  #attribution(senderPid: number | undefined): Attribution {
    const sender = senderPid ? { pid: senderPid, service: this.#opts.serviceOfPid?.(senderPid) } : undefined;
    return (attrs) => {
      const a = attribute(attrs, this.#opts.defaultService, sender);
      if (a.byProcess) this.#stats.attributedByProcess++;
      if (a.disagrees) this.#stats.serviceNameDisagreements++;
      return a;
    };
  }

  traces(req: OtlpRequest<"traces">, _via?: "http" | "grpc", senderPid?: number): void {
    const spans = spanRecords(req, this.#attribution(senderPid));
    for (const s of spans) this.operations.span(this.#opts.defaultService, s.service, s.name, s.durationMs, s.error);
    this.#keep("spans", this.sampler.add(spans, this.#opts.now()));
  }

  /** Other agents keep these traces: this agent's spans of them are kept too (./tail-sampler.ts keepTold). Returns the waiting spans kept now. */
  keepTold(traceIds: readonly string[]): number {
    const spans = this.sampler.keepTold(traceIds, this.#opts.now());
    this.#keep("spans", spans);
    return spans.length;
  }

  logs(req: OtlpRequest<"logs">, _via?: "http" | "grpc", senderPid?: number): void {
    const rows = logRecords(req, this.#attribution(senderPid));
    for (const r of rows) this.operations.log(r.severityNumber);
    this.#stats.logsReceived += rows.length;
    this.#keep("logs", rows);
  }

  metrics(req: OtlpRequest<"metrics">, _via?: "http" | "grpc", senderPid?: number): void {
    const { points, dropped } = metricPoints(req, this.#opts.defaultService, new Date(this.#opts.now()), this.#attribution(senderPid));
    this.#stats.metricPointsReceived += points.length + dropped;
    this.#stats.metricPointsOverCap += dropped;
    this.#keep("metrics", points);
  }

  #keep(kind: "spans" | "logs" | "metrics", rows: readonly (SpanRecord | LogRecordRow | MetricPoint)[]): void {
    if (rows.length === 0) return;
    const list = kind === "spans" ? this.#spans : kind === "logs" ? this.#logs : this.#metrics;
    for (const r of rows) (list as (SpanRecord | LogRecordRow | MetricPoint)[]).push(r);
    const over = list.length - this.#opts.maxPendingRows;
    if (over > 0) {
      list.splice(0, over);
      this.#stats.droppedPending += over;
    }
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.flush(), this.#opts.flushEveryMs);
    this.#timer.unref();
  }

  /** Decides the traces whose wait is over (all with `all`) and writes what is pending. */
  flush(all = false): Promise<void> {
    this.#writing = this.#writing.then(async () => {
      this.#keep("spans", this.sampler.flush(this.#opts.now(), all));
      const spans = this.#spans;
      const logs = this.#logs;
      const metrics = this.#metrics;
      this.#spans = [];
      this.#logs = [];
      this.#metrics = [];
      try {
        if (spans.length) this.#stats.spansStored += await this.#opts.store.recordSpans(spans);
      } catch (err) {
        this.#keep("spans", spans); // again next time, within the bound
        this.#opts.onError?.(err);
      }
      try {
        if (logs.length) this.#stats.logsStored += await this.#opts.store.recordLogs(logs);
      } catch (err) {
        this.#keep("logs", logs);
        this.#opts.onError?.(err);
      }
      try {
        if (metrics.length) {
          // Stamped as they are stored, not as they arrived: a point written after its arrival second
          // had been summarised would never reach the colony (the agent summarises the raw table by time).
          const at = new Date(this.#opts.now());
          for (const p of metrics) p.timestamp = at;
          this.#stats.metricPointsStored += await this.#opts.store.recordMetrics(metrics);
        }
      } catch (err) {
        this.#keep("metrics", metrics);
        this.#opts.onError?.(err);
      }
    });
    return this.#writing;
  }

  /** Stops the timer and writes everything, undecided traces included. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush(true);
  }
}
