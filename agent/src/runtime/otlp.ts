// OpenTelemetry in, for a running agent: the OTLP endpoints (loopback by
// default) feeding the store through the tail keep rules. A port another
// program (or another agent on the host) already holds turns that endpoint
// off for this agent, said once, without stopping the agent.
import { OtlpIngest, type OtlpIngestStats } from "../otlp/ingest.ts";
import { OtlpReceiver, type OtlpReceiverStats } from "../otlp/receiver.ts";
import type { AgentStore } from "../storage/index.ts";
import type { MetricSummary } from "../storage/types.ts";

export interface OtlpOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 4318; null = off. */
  httpPort?: number | null;
  /** Default 4317; null = off. */
  grpcPort?: number | null;
  /** Share of traces kept that have no error and no slow span (default 0.1). */
  keepShare?: number;
  /** Spans at least this slow keep their trace (default 500 ms). */
  slowMs?: number;
}

export interface OtlpStatus {
  state: "running" | "partly" | "unavailable";
  reason?: string;
  httpPort?: number;
  grpcPort?: number;
  receiver: OtlpReceiverStats;
  ingest: OtlpIngestStats;
}

/** From CORAL_OTLP: "0" or "off" turns it off; else the options (default endpoints). */
export function otlpFromEnv(env: NodeJS.ProcessEnv = process.env): OtlpOptions | false {
  const v = (env.CORAL_OTLP ?? "").trim().toLowerCase();
  return v === "0" || v === "off" || v === "false" ? false : {};
}

export async function startOtlp(
  options: OtlpOptions,
  store: AgentStore,
  serviceName: string,
  log: { info(o: object, m: string): void; warn(o: object, m: string): void },
): Promise<{ status(): OtlpStatus; summaries(): MetricSummary[]; stop(): Promise<void> }> {
  const ingest = new OtlpIngest({
    store,
    defaultService: serviceName,
    sampler: { keepShare: options.keepShare, slowMs: options.slowMs },
    onError: (err) => log.warn({ err: String(err) }, "could not store OpenTelemetry data"),
  });
  const problems: string[] = [];
  const receivers: OtlpReceiver[] = [];
  // Each endpoint on its own, so one port held does not take the other down.
  for (const which of ["http", "grpc"] as const) {
    const port = which === "http" ? (options.httpPort === undefined ? 4318 : options.httpPort) : options.grpcPort === undefined ? 4317 : options.grpcPort;
    if (port === null) continue;
    const r = new OtlpReceiver({ host: options.host, httpPort: which === "http" ? port : null, grpcPort: which === "grpc" ? port : null, sink: ingest });
    try {
      await r.start();
      receivers.push(r);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(`OTLP/${which === "http" ? "HTTP" : "gRPC"} port ${port}: ${code === "EADDRINUSE" ? "already in use (another agent or collector on this host?)" : String(err)}`);
    }
  }
  ingest.start();
  const httpPort = receivers.find((r) => r.httpPort !== undefined)?.httpPort;
  const grpcPort = receivers.find((r) => r.grpcPort !== undefined)?.grpcPort;
  if (receivers.length) log.info({ httpPort, grpcPort, host: options.host ?? "127.0.0.1" }, "OpenTelemetry (OTLP) endpoints listening");
  for (const p of problems) log.warn({}, `OpenTelemetry endpoint off: ${p}`);
  const sum = (f: (s: OtlpReceiverStats) => number) => receivers.reduce((n, r) => n + f(r.stats()), 0);
  return {
    status: () => ({
      state: receivers.length === 0 ? "unavailable" : problems.length ? "partly" : "running",
      reason: problems.join("; ") || undefined,
      httpPort,
      grpcPort,
      receiver: {
        requests: { traces: sum((s) => s.requests.traces), metrics: sum((s) => s.requests.metrics), logs: sum((s) => s.requests.logs) },
        rejected: sum((s) => s.rejected),
        lastRejection: receivers.map((r) => r.stats().lastRejection).find(Boolean),
      },
      ingest: ingest.stats(),
    }),
    summaries: () => ingest.operations.drain(),
    async stop() {
      await Promise.all(receivers.map((r) => r.stop()));
      await ingest.stop();
    },
  };
}
