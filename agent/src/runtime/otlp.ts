// OpenTelemetry in, for a running agent: the OTLP endpoints (loopback by
// default) feeding the store through the tail keep rules. A port another
// program (or another agent on the host) already holds turns that endpoint
// off for this agent, said once, without stopping the agent. Traces kept
// here for an error or slow span are reported to the colony at once, which
// tells the other agents (keepTraces is what they were told), so every agent
// keeps its spans of such a trace. Data is attributed by service.name and
// by the sending process: for loopback connections the receiver finds the
// sender's pid (./otlp/sender.ts), and a process of an observed service
// that sends without a name of its own sends for that service.
import { OtlpIngest, type OtlpIngestStats } from "../otlp/ingest.ts";
import { KeepReporter, type KeepReportStats } from "../otlp/keep-reports.ts";
import { OtlpReceiver, type OtlpReceiverStats } from "../otlp/receiver.ts";
import { SenderPids, type OtlpPeer, type SenderPidStats } from "../otlp/sender.ts";
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
  /** The observed services' processes: without them senders are not looked up. */
  observed?: ObservedProcesses;
}

/** What the agent observes, for attribution by the sending process. */
export interface ObservedProcesses {
  /** The pids of every observed service's process set (looked at first for a sender). */
  pids(): Iterable<number>;
  /** The observed service whose process set has `pid`. */
  serviceOfPid(pid: number): string | undefined;
}

export interface OtlpStatus {
  state: "running" | "partly" | "unavailable";
  reason?: string;
  httpPort?: number;
  grpcPort?: number;
  receiver: OtlpReceiverStats;
  ingest: OtlpIngestStats;
  /** Kept traces reported to the colony (ingest.sampler has what other agents told this one). */
  keepReports: KeepReportStats;
  /** Sending processes looked up (when the agent gave its observed processes). */
  senders?: SenderPidStats;
}

export interface RunningOtlp {
  status(): OtlpStatus;
  summaries(): MetricSummary[];
  /** Other agents keep these traces (AgentService.KeepTraces): keep this agent's spans of them. Returns the waiting spans kept now. */
  keepTraces(traceIds: readonly string[]): number;
  stop(): Promise<void>;
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
  log: { info(o: object, m: string): void; warn(o: object, m: string): void; debug?(o: object, m: string): void },
  /** Sends a batch of kept trace ids to the colony (MeshService.ReportKeptTraces); without it nothing is reported. */
  reportKeptTraces: (traceIds: string[]) => Promise<void> = async () => undefined,
): Promise<RunningOtlp> {
  const reports = new KeepReporter({
    send: reportKeptTraces,
    onError: (err) => log.debug?.({ err: String(err) }, "could not report kept traces to the colony"),
  });
  const observed = options.observed;
  const ingest = new OtlpIngest({
    store,
    defaultService: serviceName,
    serviceOfPid: observed && ((pid) => observed.serviceOfPid(pid)),
    sampler: { keepShare: options.keepShare, slowMs: options.slowMs, onKeep: (traceId) => reports.report(traceId) },
    onError: (err) => log.warn({ err: String(err) }, "could not store OpenTelemetry data"),
  });
  const senders = observed && new SenderPids({ candidates: () => observed.pids() });
  const senderPid = senders && ((peer: OtlpPeer) => senders.pidOf(peer));
  const problems: string[] = [];
  const receivers: OtlpReceiver[] = [];
  // Each endpoint on its own, so one port held does not take the other down.
  for (const which of ["http", "grpc"] as const) {
    const port = which === "http" ? (options.httpPort === undefined ? 4318 : options.httpPort) : options.grpcPort === undefined ? 4317 : options.grpcPort;
    if (port === null) continue;
    const r = new OtlpReceiver({ host: options.host, httpPort: which === "http" ? port : null, grpcPort: which === "grpc" ? port : null, sink: ingest, senderPid });
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
      keepReports: reports.stats(),
      senders: senders?.stats(),
    }),
    summaries: () => ingest.operations.drain(),
    keepTraces: (traceIds) => ingest.keepTold(traceIds),
    async stop() {
      await Promise.all(receivers.map((r) => r.stop()));
      reports.stop();
      await ingest.stop();
    },
  };
}
