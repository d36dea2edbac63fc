// One agent beside one app component: observes the process listening on a
// port, keeps raw data in its local store (SQLite), publishes summaries and events to
// the colony over NATS JetStream through a durable outbox, heartbeats, and
// answers the colony's detail queries.
import { createHash, randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join, resolve } from "node:path";
import { create, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { connect, headers, type NatsConnection } from "@nats-io/transport-node";
import { backoffMs, sleep } from "@coral/common/async";
import { TelemetryBatchSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import { startAgentApi, type AgentApiServer } from "../api/server.ts";
import { RollbackExecutor, SdkLink, type AgentRollbackConfig } from "../control/index.ts";
import type { UprobeCollectors } from "../debug/collectors.ts";
import { ContinuousProfiler, type ContinuousStatus, type ProfileWindowData } from "../profile/continuous.ts";
import type { ContinuousProfile, SharedContinuousProfiler } from "../profile/shared-continuous.ts";
import type { CpuProfiler } from "../profile/index.ts";
import { SymbolCache } from "../profile/symbols.ts";
import { continuousProfileFromEnv, profileWindowToProto } from "./continuous-profile.ts";
import { otlpFromEnv, startOtlp, type OtlpOptions, type OtlpStatus } from "./otlp.ts";
import { ProcessWatcher, healthTargetFor, probeHealth, scrapePrometheus, type HealthResult, type ProcessSetSnapshot, type TcpConnection } from "../observe/index.ts";
import { KernelConnections, type KernelConnectionsStatus, type OpenedCount } from "../observe/kernel-connections.ts";
import type { ConnectionTracer, SharedKernelConnections } from "../observe/shared-kernel-connections.ts";
import { HttpTracer, httpTracingEnabled, requestMetricPoints, type HttpTracerStatus } from "../observe/http/index.ts";
import type { RequestTracer, SharedHttpTracer } from "../observe/http/shared-tracer.ts";
import { TrafficPuller, type TrafficBufferBounds, type TrafficPullerStatus } from "../traffic/puller.ts";
import { Publisher, openAgentStore, type DropCounters, type OutboxBounds, type AgentStore, type MetricPoint } from "../storage/index.ts";
import { ColonyLink, needsReRegistration, type HeartbeatInfo, type Invitation } from "./colony-link.ts";
import { loadAgentIdentity } from "./identity.ts";
import { AgentAlreadyRunningError, lockHolder } from "./startup-errors.ts";

// One symbol cache for every service this process observes: files are keyed
// by device, inode, modification time and size, and services on one host run
// the same binaries (node's own table is 85,000 functions).
export const processSymbols = new SymbolCache();

export interface AgentLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface SharedTracers {
  kernelConnections?: SharedKernelConnections;
  http?: SharedHttpTracer;
  /** Its rate and window are the same for every service (the host's options). */
  continuous?: SharedContinuousProfiler;
}

export interface AgentOptions {
  serviceName: string;
  port: number;
  colonyUrl: string;
  /**
   * The invitation from the join token (or the local colony, or
   * CORAL_ENROLL_SECRET); needed until the colony has enrolled this agent's
   * key, ignored after.
   */
  invitation?: Invitation;
  /** The colony's identity key (base64) from the join token; pinned. Else the colony proves it over the invitation. */
  colonyPubkey?: string;
  healthUrl?: string;
  metricsUrl?: string;
  tags?: Record<string, string>;
  version?: string;
  dataDir: string;
  sampleIntervalMs?: number;
  /**
   * How often the service's health is probed while it is healthy (default 5
   * sample intervals: 5 s); while it is not, every sample interval. An HTTP
   * probe costs the agent ~1 ms of CPU and the service a request and a
   * connection; the default probe (is the port listening) a read of the
   * kernel's TCP tables (~7 ms on a large host). A process that exits is
   * seen by the sampler within one interval either way.
   */
  healthIntervalMs?: number;
  summaryIntervalMs?: number;
  scrapeIntervalMs?: number;
  /** Overrides the colony's heartbeat interval (tests). */
  heartbeatIntervalMs?: number;
  retentionMs?: number;
  /** The app's Coral SDK port (coral connect --sdk); else found from the SDK's announcement. */
  sdkPort?: number;
  /** Where SDKs announce themselves (default: CORAL_SDK_DIR, else the observed process owner's private folder, see @coral/sdk). */
  sdkAnnounceDir?: string;
  logger: AgentLogger;
  /** The agent's mesh address (wireguard mode): its API listens there and the colony is told so. */
  meshAddress?: string;
  /** Live debugging: at most this many uprobe collectors at once (default 10). */
  maxDebugSessions?: number;
  /** What this agent may run for a systemd or kubernetes rollback (coral connect --rollback-*); the colony sends only intents. */
  rollback?: AgentRollbackConfig;
  /** The API refuses larger request bodies before reading them (default 1 MiB). */
  apiMaxBodyBytes?: number;
  /** The outbox's bounds (default 64 MiB and 24 h): beyond them the oldest batches are dropped, counted and reported. */
  outbox?: Partial<OutboxBounds>;
  /** Called for what a person watching `coral connect` wants to see. */
  onNotice?: (notice: AgentNotice) => void;
  /**
   * Where connections come from: "auto" (default) sees every connect and
   * accept from the kernel with eBPF (bpftrace, as root) and falls back to
   * /proc snapshots when it cannot; "procfs" only snapshots. Default from
   * CORAL_CONNECTIONS_SOURCE.
   */
  connectionSource?: "auto" | "procfs";
  /** bpftrace for the kernel connection source and CPU profiles (default: CORAL_BPFTRACE, else PATH). */
  bpftracePath?: string;
  /** Kernel tracers the services of one agent process share (one bpftrace program each, not one per service). */
  sharedTracers?: SharedTracers;
  /**
   * The always-on CPU profiler (eBPF, as root): its rate and window, or false
   * for none. Default: on at 19 Hz with one-minute windows, unless
   * CORAL_PROFILE_HZ says another rate (0 = off).
   */
  continuousProfile?: { hz?: number; windowMs?: number } | false;
  /**
   * RED metrics from eBPF: every plaintext HTTP/1.x request the service's
   * processes serve (method, route, status, duration). Default from
   * CORAL_HTTP_TRACING, else on unless connectionSource is "procfs".
   */
  httpTracing?: boolean;
  /**
   * OpenTelemetry in (OTLP/HTTP on 4318, OTLP/gRPC on 4317, loopback), or
   * false for none. Default: on, unless CORAL_OTLP=0.
   */
  otlp?: OtlpOptions | false;
  /** coral exec beside this service (default true); false refuses every exec (config exec: false, --no-exec). */
  exec?: boolean;
  /** The traffic sample buffer's bounds (default 50 MiB and 1 h), pruned every traffic.pruneIntervalMs (default 30 s). */
  traffic?: Partial<TrafficBufferBounds> & { pruneIntervalMs?: number };
}

export type AgentNotice =
  | { kind: "connected"; colonyId: string }
  | { kind: "waiting"; port: number }
  | { kind: "observing"; pid: number; comm: string }
  | { kind: "connection"; remote: string }
  | { kind: "event"; type: string; details: Record<string, unknown> }
  | { kind: "health"; healthy: boolean; detail: string };

export interface RunningAgent extends AsyncDisposable {
  agentId: string;
  store: AgentStore;
  apiUrl: string;
  stats(): Promise<{ enqueued: number; published: number; pending: number; registered: boolean; dropped: DropCounters }>;
  /** Batches this run of the agent queued for the colony (also after close). */
  enqueued(): number;
  /** Computes and enqueues a summary batch now (also runs on its timer). */
  flushSummary(): Promise<void>;
  /** Where connections come from now ("ebpf" or "procfs", with why) and what the kernel source saw. */
  connectionSource(): KernelConnectionsStatus;
  /** What the always-on CPU profiler does, or undefined when it is turned off. */
  continuousProfile(): ContinuousStatus | undefined;
  /** What the HTTP request tracer does, or undefined when it is turned off. */
  httpTracing(): HttpTracerStatus | undefined;
  /** What the OTLP endpoints received and kept, or undefined when they are turned off. */
  otlp(): OtlpStatus | undefined;
  /** What the app's SDK middleware handed over: requests, samples, drops, and the sample rate. */
  traffic(): TrafficPullerStatus;
  close(reason?: string): Promise<void>;
}

/** Stable across restarts of the same agent, so its outbox and identity carry over. */
export async function agentIdFor(dataDir: string, serviceName: string): Promise<string> {
  await mkdir(dataDir, { recursive: true });
  const path = join(dataDir, "agent-id");
  if (existsSync(path)) return (await readFile(path, "utf8")).trim();
  const suffix = createHash("sha256").update(`${hostname()}:${resolve(dataDir)}:${randomUUID()}`).digest("hex").slice(0, 6);
  const id = `${serviceName}-${suffix}`;
  await writeFile(path, id + "\n");
  return id;
}

const healthState = (h: HealthResult | null): HeartbeatInfo["health"] => (h === null ? "unknown" : h.healthy ? "healthy" : "unhealthy");

export async function startAgent(options: AgentOptions): Promise<RunningAgent> {
  const log = options.logger;
  // A bad CORAL_PROFILE_HZ is refused before anything is opened.
  const continuousOptions = options.continuousProfile ?? continuousProfileFromEnv();
  const dataDir = resolve(options.dataDir);
  await mkdir(dataDir, { recursive: true });
  const agentId = await agentIdFor(dataDir, options.serviceName);
  const identity = await loadAgentIdentity(dataDir);
  if (options.colonyPubkey) {
    if (identity.colonyPubkey && identity.colonyPubkey !== options.colonyPubkey)
      throw new Error(
        `this agent (${dataDir}) belongs to another colony (key ${identity.colonyPubkey.slice(0, 12)}…) than the join token's (${options.colonyPubkey.slice(0, 12)}…); use another --data-dir for the new colony`,
      );
    identity.colonyPubkey = options.colonyPubkey;
  }
  const store = await openAgentStore(join(dataDir, "agent.sqlite"), {
    // An earlier agent's DuckDB store: its outbox and collectors are imported once, then it is renamed aside.
    upgradeFrom: join(dataDir, "agent.duckdb"),
    retentionMs: options.retentionMs,
    logger: (level, msg, fields) => log[level](fields ?? {}, msg),
    // Raw samples are written every 10 s in one transaction (queries flush first).
    writeBufferMs: 10_000,
  }).catch(async (err: unknown) => {
    // A second agent of the same name (same data folder): say so, not the store's lock error.
    const holder = lockHolder(err, await readFile(join(dataDir, "agent.pid"), "utf8").catch(() => undefined));
    throw holder.locked ? new AgentAlreadyRunningError(options.serviceName, holder.pid, dataDir) : err;
  });
  const abort = new AbortController();
  const timers: NodeJS.Timeout[] = [];
  const every = (ms: number, fn: () => Promise<void>) => {
    let running = false;
    const t = setInterval(() => {
      if (running || abort.signal.aborted) return;
      running = true;
      fn()
        .catch((err: unknown) => log.warn({ err: String(err) }, "agent task failed"))
        .finally(() => (running = false));
    }, ms);
    timers.push(t);
  };
  // Between the sampler's beats (…:00.500 at 1 s): a health probe's short-lived
  // connection then never shows among the service's sockets, which would
  // make the sampler read the TCP tables again on every tick.
  const offBeat = (interval: () => number, fn: () => Promise<void>) => {
    const next = () => {
      if (abort.signal.aborted) return;
      const ms = interval();
      setTimeout(() => {
        if (abort.signal.aborted) return;
        fn()
          .catch((err: unknown) => log.warn({ err: String(err) }, "agent task failed"))
          .finally(next);
      }, ms - ((Date.now() + ms / 2) % ms)).unref();
    };
    next();
  };

  // Uprobe collectors touch only the process under observation; a Node one's inspector is opened through its SDK when it runs one.
  let observedPid: number | null = null;
  const sdk = new SdkLink({ port: options.sdkPort, announceDir: options.sdkAnnounceDir, logger: log });
  // Loaded on first use (a debug call, or collectors of the previous run to pick up): most agents never debug.
  let debugLoaded: Promise<UprobeCollectors> | undefined;
  // Ended collectors stay listed this long; a start picks up the ones of the previous run within it.
  const debugKeepEndedMs = 3_600_000;
  const debug = () =>
    (debugLoaded ??= import("../debug/collectors.ts").then(
      ({ UprobeCollectors }) =>
        new UprobeCollectors({
          store,
          observedPid: () => observedPid,
          inProcess: { open: (pid) => sdk.openInspector(pid), close: (pid) => sdk.closeInspector(pid) },
          maxSessions: options.maxDebugSessions,
          keepEndedMs: debugKeepEndedMs,
          onError: (id, err) => log.warn({ collector_id: id, err: String(err) }, "could not store uprobe events"),
        }),
    ));
  // CPU profiles sample the same process set, on demand and always (at a low rate); symbol tables are parsed once for both.
  const bpftracePath = options.bpftracePath ?? (process.env.CORAL_BPFTRACE || undefined);
  const symbols = processSymbols;
  // On-demand CPU and heap profiles load on the first request (the inspector client, pprof encoding).
  let profilerLoaded: Promise<CpuProfiler> | undefined;
  const profiler = () =>
    (profilerLoaded ??= import("../profile/profiler.ts").then(({ CpuProfiler }) => new CpuProfiler({ observedPid: () => observedPid, bpftracePath, symbols, logger: log })));
  const onProfileWindow = async (w: ProfileWindowData) => {
    await store.recordProfileWindow(w);
    await enqueueBatch({ profiles: [profileWindowToProto(w)] });
  };
  const continuous: ContinuousProfile | undefined =
    continuousOptions === false
      ? undefined
      : (options.sharedTracers?.continuous?.view({ observedPid: () => observedPid, logger: log, onWindow: onProfileWindow }) ??
        new ContinuousProfiler({
          ...continuousOptions,
          observedPid: () => observedPid,
          bpftracePath,
          symbols,
          logger: log,
          onWindow: onProfileWindow,
        }));
  // Heap profiles ask the same process (Go: its net/http/pprof on the service's port, or one named per request).
  const heapProfiler = async () =>
    new (await import("../profile/heap.ts")).HeapProfiler({ observedPid: () => observedPid, servicePort: () => options.port, logger: log });
  const rollbacks = new RollbackExecutor({ serviceName: options.serviceName, config: options.rollback, sdk, log });
  // The SDK's request middleware: RED (preferred to eBPF's for the service while it reports) and traffic samples.
  const traffic = new TrafficPuller({ serviceName: options.serviceName, sdk, store, bounds: options.traffic, logger: log });
  // What other agents keep (AgentService.KeepTraces), for the OTLP keep rules once they run.
  const traceKeeps: { keep?: (traceIds: readonly string[]) => number } = {};
  const api: AgentApiServer = await startAgentApi({
    store,
    agentId,
    keepTraces: (traceIds) => traceKeeps.keep?.(traceIds) ?? 0,
    // Read on every call: the pinned key can arrive later (enrollment).
    colonyPublicKey: () => identity.colonyPubkey || undefined,
    maxBodyBytes: options.apiMaxBodyBytes,
    host: options.meshAddress,
    debug,
    profile: profiler,
    heapProfile: heapProfiler,
    traffic,
    query: { serviceName: options.serviceName },
    exec: {
      enabled: options.exec !== false,
      targetPid: () => observedPid ?? undefined,
      onExec: (e) => log.info({ exec_id: e.execId, argv: e.argv, host: e.host, exit_code: e.exitCode, duration_ms: e.durationMs }, e.exitCode === undefined ? "coral exec started" : "coral exec ended"),
    },
    control: {
      flags: {
        syncFlags: async (req) => {
          const delivered = await sdk.syncFlags(req);
          return { flagCount: req.flags.length, deliveredToSdk: delivered };
        },
      },
      rollback: {
        executeRollback: async (req) => {
          const res = await rollbacks.execute(req);
          // The colony verifies from heartbeats: send one soon.
          soon.beat?.();
          return res;
        },
      },
      rollbackPlan: { planRollback: (req) => rollbacks.plan(req) },
    },
  });
  const link = new ColonyLink({
    colonyUrl: options.colonyUrl,
    identity,
    dataDir,
    invitation: options.invitation,
    agentId,
    serviceName: options.serviceName,
    port: options.port,
    version: options.version ?? "",
    tags: options.tags ?? {},
    agentUrl: api.url,
    address: options.meshAddress,
  });

  // What we know about the process, for heartbeats and batches.
  let lastSnapshot: ProcessSetSnapshot | null = null;
  // The service's processes: the set when the watcher reports one, else the listener.
  const servicePids = (): number[] => (observedPid === null ? [] : (lastSnapshot?.pids ?? [observedPid]));
  let lastHealth: HealthResult | null = null;
  let restartCount = 0;
  let connections: TcpConnection[] = [];
  const seenRemotes = new Set<string>();
  // Connections opened per remote since the last batch: from the kernel
  // (every connect) when eBPF runs, else new sockets between /proc snapshots.
  const connectionMode = options.connectionSource ?? (process.env.CORAL_CONNECTIONS_SOURCE === "procfs" ? "procfs" : "auto");
  const kernel: ConnectionTracer | null =
    connectionMode === "procfs"
      ? null
      : (options.sharedTracers?.kernelConnections?.view(servicePids) ??
        new KernelConnections({
          bpftracePath: options.bpftracePath,
          pids: servicePids,
        }));
  const connectionSource = (): KernelConnectionsStatus =>
    kernel?.status() ?? {
      source: "procfs",
      state: "unavailable",
      reason: "eBPF turned off (connectionSource procfs, or CORAL_CONNECTIONS_SOURCE=procfs)",
      events: 0,
      matched: 0,
      connects: 0,
      accepts: 0,
      malformed: 0,
      restarts: 0,
    };
  // Requests served (eBPF): one metric point per request, summarised with the others.
  const httpTracer: RequestTracer | null = httpTracingEnabled(options.httpTracing, connectionMode)
    ? (options.sharedTracers?.http?.view(servicePids) ?? new HttpTracer({ bpftracePath: options.bpftracePath, pids: servicePids }))
    : null;
  httpTracer?.on("requests", (list) => {
    // The SDK sees the same requests (and HTTPS too): its figures stand, these would count them twice.
    if (traffic.sdkInstrumented()) return;
    void store.recordMetrics(requestMetricPoints(list)).catch((err: unknown) => log.warn({ err: String(err) }, "could not store requests"));
  });
  httpTracer?.on("status", (st) => log.info({ state: st.state, reason: st.reason }, "HTTP request tracing (eBPF)"));
  const procfsOpened = new Map<string, OpenedCount>();
  let procfsInodes = new Set<number>();
  /** Outbound connections opened since the last call, and who counted them. */
  const takeOpened = (): { counts: OpenedCount[]; source: "ebpf" | "procfs" } => {
    const fromProcfs = [...procfsOpened.values()];
    procfsOpened.clear();
    const fromKernel = kernel ? kernel.counter.take().filter((c) => c.direction === "outbound") : [];
    if (kernel?.active()) return { counts: fromKernel, source: "ebpf" };
    // Starting, restarting or unavailable: the snapshots' count (plus what the kernel saw before it stopped).
    return { counts: [...fromKernel, ...fromProcfs], source: "procfs" };
  };
  let published = 0;
  let enqueued = 0;
  let registered = false;
  let subjectPrefix = "";
  let nc: NatsConnection | undefined;
  let js: JetStreamClient | undefined;
  const natsWaiters: (() => void)[] = [];
  const releaseNatsWaiters = () => natsWaiters.splice(0).forEach((ready) => ready());
  abort.signal.addEventListener("abort", releaseNatsWaiters);

  const publisher = new Publisher({
    store,
    logger: (level, msg, fields) => log[level === "info" ? "debug" : level](fields ?? {}, msg),
    // Outbox rows hold the subject's last token; the prefix is this agent's
    // own, known once the colony has registered us.
    publish: async (subject, payload, msgId) => {
      // Right after start the first batch is usually ready before NATS is: wait for it a little instead of failing.
      if (!js || !subjectPrefix) await new Promise<void>((ready) => (natsWaiters.push(ready), setTimeout(ready, 5_000).unref()));
      if (!js || !subjectPrefix) throw new Error("not registered with the colony yet");
      const h = headers();
      h.set("Nats-Msg-Id", msgId);
      await js.publish(`${subjectPrefix}.${subject}`, payload, { headers: h, timeout: 10_000 });
      published++;
    },
    // Rows bigger than the server takes are split to fit.
    maxPayload: () => nc?.info?.max_payload,
    outboxBounds: options.outbox,
    // A drop is reported to the colony as an event (sent once NATS is back).
    onDrop: (drop) =>
      void recordEvent("outbox.dropped", { reason: drop.reason, rows: drop.rows, bytes: drop.bytes, items: drop.items, batch_ids: drop.batchIds.slice(0, 5) }).catch(
        (err: unknown) => log.warn({ err: String(err) }, "could not record an outbox drop"),
      ),
  });

  type BatchParts = Pick<MessageInitShape<typeof TelemetryBatchSchema>, "metrics" | "events" | "connections" | "profiles">;
  const enqueueBatch = async (parts: BatchParts) => {
    const batch = create(TelemetryBatchSchema, {
      batchId: `${agentId}-${randomUUID()}`,
      agentId,
      serviceName: options.serviceName,
      createdAt: timestampFromDate(new Date()),
      metrics: parts.metrics ?? [],
      events: parts.events ?? [],
      connections: parts.connections ?? [],
      profiles: parts.profiles ?? [],
    });
    await store.enqueue({ batchId: batch.batchId, subject: "telemetry", payload: toBinary(TelemetryBatchSchema, batch) });
    enqueued++;
    publisher.notify();
  };

  const recordEvent = async (type: string, details: Record<string, unknown>, at = new Date()) => {
    const stored = await store.recordEvent({ timestamp: at, eventType: type, processName: lastSnapshot?.comm ?? null, details });
    await enqueueBatch({
      events: [{ eventId: stored.eventId, timestamp: timestampFromDate(stored.timestamp), eventType: type, detailsJson: JSON.stringify(details) }],
    });
    options.onNotice?.({ kind: "event", type, details });
  };

  // Observe the process.
  // While the kernel reports the service's forks and connections, the process tree and sockets are read every 5th sample.
  const watcher = new ProcessWatcher({ port: options.port, intervalMs: options.sampleIntervalMs ?? 1000, kernelChanges: kernel ? () => kernel.changes() : undefined });
  watcher.on("error", (err) => log.debug({ err: err.message }, "sampling failed"));
  watcher.on("status", (status) => {
    if (status.state === "waiting") {
      log.info({ port: status.port }, "Waiting for a process to listen on the port");
      options.onNotice?.({ kind: "waiting", port: status.port });
    }
  });
  watcher.on("sample", (s) => {
    lastSnapshot = s;
    observedPid = s.pid;
    const points: MetricPoint[] = [
      { timestamp: s.timestamp, name: "cpu_percent", value: s.cpuPercent },
      { timestamp: s.timestamp, name: "memory_bytes", value: s.rssBytes },
      { timestamp: s.timestamp, name: "thread_count", value: s.threads },
      // cpu, memory, threads and fds above are sums over the process set.
      { timestamp: s.timestamp, name: "process_count", value: s.processCount },
    ];
    if (s.fdCount !== null) points.push({ timestamp: s.timestamp, name: "fd_count", value: s.fdCount });
    void store.recordMetrics(points).catch((err: unknown) => log.warn({ err: String(err) }, "could not store samples"));
    void store
      .recordSnapshot({ timestamp: s.timestamp, pid: s.pid, cpuPercent: s.cpuPercent, memoryBytes: s.rssBytes, fdCount: s.fdCount ?? 0, threadCount: s.threads })
      .catch((err: unknown) => log.warn({ err: String(err) }, "could not store a snapshot"));
  });
  const discover = (remote: string): boolean => {
    if (seenRemotes.has(remote)) return false;
    seenRemotes.add(remote);
    log.info({ remote }, "Discovered connection");
    options.onNotice?.({ kind: "connection", remote });
    return true;
  };
  // A new dependency shows up in the topology now, not at the next summary.
  let connectionsSoon: NodeJS.Timeout | undefined;
  const sendConnectionsSoon = () => {
    if (connectionsSoon || abort.signal.aborted) return;
    connectionsSoon = setTimeout(() => {
      connectionsSoon = undefined;
      if (abort.signal.aborted) return;
      const observed = connectionObservations(connections, new Date(), takeOpened());
      if (observed.length > 0)
        void enqueueBatch({ connections: observed }).catch((err: unknown) => log.warn({ err: String(err) }, "could not queue connections"));
    }, 200);
    timers.push(connectionsSoon);
  };
  watcher.on("connections", (list) => {
    connections = list;
    const now = new Date();
    void store.recordConnections(list, now).catch((err: unknown) => log.warn({ err: String(err) }, "could not store connections"));
    let discovered = false;
    const inodes = new Set<number>();
    for (const c of list) {
      if (c.direction !== "outbound") continue;
      inodes.add(c.inode);
      // A socket the last snapshot did not have: opened since (procfs counting).
      if (!procfsInodes.has(c.inode)) {
        const prev = procfsOpened.get(c.remoteAddr);
        if (prev) prev.opened++;
        else procfsOpened.set(c.remoteAddr, { direction: "outbound", remote: c.remoteAddr, localAddr: c.localAddr, opened: 1 });
      }
      if (c.state === "ESTABLISHED" && discover(c.remoteAddr)) discovered = true;
    }
    procfsInodes = inodes;
    if (discovered) sendConnectionsSoon();
  });
  kernel?.on("connection", (_e, count) => {
    if (count.direction === "outbound" && discover(count.remote)) sendConnectionsSoon();
  });
  // Say once where connections come from, and again when that changes.
  let reportedSource = "";
  const reportSource = (st: KernelConnectionsStatus) => {
    const key = `${st.source}|${st.state === "unavailable" ? "unavailable" : "ok"}`;
    if (st.state === "starting" || st.state === "stopped" || key === reportedSource) return;
    if (st.state === "restarting") {
      log.warn({ reason: st.reason, restarts: st.restarts }, "Kernel connection tracing stopped; restarting it");
      return;
    }
    reportedSource = key;
    if (st.source === "ebpf") log.info({ source: "ebpf" }, "Connections: each connect and accept of its processes, seen from the kernel (eBPF)");
    else log.warn({ source: "procfs", reason: st.reason }, "Connections: from /proc snapshots only (short-lived connections may be missed)");
    void recordEvent("connection_source", { source: st.source, reason: st.reason ?? "" }).catch((err: unknown) =>
      log.warn({ err: String(err) }, "could not record an event"),
    );
  };
  kernel?.on("status", reportSource);
  if (!kernel) reportSource(connectionSource());
  else void kernel.start();
  void httpTracer?.start();
  const otlpOptions = options.otlp ?? otlpFromEnv();
  // OTLP sent without a service.name of its own by one of the service's processes is the service's.
  const observed = { pids: servicePids, serviceOfPid: (pid: number) => (servicePids().includes(pid) ? options.serviceName : undefined) };
  const otlp = otlpOptions ? await startOtlp({ observed, ...otlpOptions }, store, options.serviceName, log, (traceIds) => link.reportKeptTraces(traceIds)) : undefined;
  traceKeeps.keep = otlp?.keepTraces;
  // A restarted agent resumes its collectors once it knows which process it
  // observes now, or that none listens (then they end, saying so).
  const firstLook = new Promise<void>((resolve) => {
    watcher.once("sample", () => resolve());
    watcher.on("status", (status) => {
      if (status.state === "waiting") resolve();
    });
  });
  void firstLook
    .then(async () => ((await store.listUprobeCollectors(new Date(Date.now() - debugKeepEndedMs))).length ? (await debug()).resume() : { resumed: [], ended: [] }))
    .then(
      (r) => {
        if (r.resumed.length || r.ended.length) log.info({ resumed: r.resumed, ended: r.ended }, "Debug collectors of the previous run picked up");
      },
      (err: unknown) => log.warn({ err: String(err) }, "could not resume the debug collectors"),
    );
  watcher.on("event", (e) => {
    if (e.type === "process_found") options.onNotice?.({ kind: "observing", pid: e.pid, comm: String(e.details.comm ?? "") });
    if (e.type === "restart") restartCount++;
    if (e.type === "process_exited") observedPid = null;
    soon.beat?.();
    void recordEvent(e.type, { pid: e.pid, previous_pid: e.previousPid, ...e.details }, e.at).catch((err: unknown) =>
      log.warn({ err: String(err) }, "could not record an event"),
    );
  });

  // Health probe: an HTTP URL (or tcp://host:port) if given, else whether the
  // port is still listening (from /proc: no connection the app must accept).
  const probe = async () => {
    const result = await probeHealth(healthTargetFor(options.healthUrl, options.port, observedPid), 2000);
    const now = new Date();
    await store.recordMetrics([
      { timestamp: now, name: "health_up", value: result.healthy ? 1 : 0 },
      { timestamp: now, name: "health_latency_ms", value: result.latencyMs },
    ]);
    const changed = lastHealth === null ? !result.healthy : lastHealth.healthy !== result.healthy;
    lastHealth = result;
    if (changed) {
      soon.beat?.();
      const detail = result.error ?? (result.status ? `HTTP ${result.status}` : result.kind);
      await recordEvent("health_changed", { healthy: result.healthy, status: result.status, error: result.error, latency_ms: result.latencyMs });
      options.onNotice?.({ kind: "health", healthy: result.healthy, detail });
    }
  };

  // Prometheus scrape: bad text or an unreachable endpoint is reported, not fatal.
  let lastScrapeError = "";
  const scrape = async () => {
    if (!options.metricsUrl) return;
    const result = await scrapePrometheus(options.metricsUrl, 5000);
    const error = result.ok ? "" : (result.error ?? `HTTP ${result.status ?? "error"}`);
    if (error !== lastScrapeError) {
      lastScrapeError = error;
      if (error) await recordEvent("metrics_scrape_failed", { url: options.metricsUrl, error });
      else await recordEvent("metrics_scrape_recovered", { url: options.metricsUrl });
    }
    if (!result.ok) return;
    const now = new Date();
    await store.recordMetrics(result.samples.map((s) => ({ timestamp: now, name: s.name, value: s.value, labels: s.labels })));
  };

  // Summaries: every interval, over the window since the last one.
  let windowStart = new Date();
  const summarize = async () => {
    const until = new Date();
    const since = windowStart;
    windowStart = until;
    // The OpenTelemetry series (per-operation latency, error counts) come from memory, not the raw table.
    const summaries = [...(await store.summarize(since, until)), ...(otlp?.summaries() ?? [])];
    const observed = connectionObservations(connections, until, takeOpened());
    if (summaries.length === 0 && observed.length === 0) return;
    await enqueueBatch({ metrics: summaryRows(summaries, since), connections: observed });
  };

  const heartbeatInfo = (): HeartbeatInfo => ({
    // No process yet (starting, or waiting for it to listen): say unknown, not unhealthy.
    health: lastSnapshot ? healthState(lastHealth) : "unknown",
    pid: lastSnapshot?.pid ?? 0,
    startedAt: lastSnapshot?.startTime ?? null,
    restartCount,
    cpuPercent: lastSnapshot?.cpuPercent ?? 0,
    memoryBytes: lastSnapshot?.rssBytes ?? 0,
    fdCount: lastSnapshot?.fdCount ?? 0,
    threadCount: lastSnapshot?.threads ?? 0,
    processCount: lastSnapshot?.processCount ?? 0,
    sdk: sdk.last(),
  });

  // The app's SDK: health and version for the heartbeat; a change is sent at once.
  let lastSdkState = "";
  // With no SDK in reach, each look reads the process's environment and the
  // announcement folders: every 5th beat then, and at once for a new process.
  let idleBeats = 0;
  let lookedFor = -1;
  const pollSdk = async () => {
    const pid = lastSnapshot?.pid ?? 0;
    if (!sdk.last() && options.sdkPort === undefined && pid === lookedFor && ++idleBeats < 5) return;
    idleBeats = 0;
    lookedFor = pid;
    const report = await sdk.poll(pid);
    const state = report ? `${report.info.serviceVersion}/${report.health.overallStatus}/${report.health.components.map((c) => `${c.name}=${c.status}`).join(",")}` : "";
    if (state !== lastSdkState) {
      lastSdkState = state;
      soon.beat?.();
    }
  };

  // NATS may be down when we start: keep trying in the background while the
  // outbox holds what we produce.
  let natsConnecting = false;
  const connectNats = async (creds: { url: string; user: string; password: string; inboxPrefix?: string }) => {
    if (natsConnecting) return;
    natsConnecting = true;
    for (let attempt = 0; !abort.signal.aborted && !nc; attempt++) {
      try {
        // Our own reply inbox: the colony lets each agent read only its own JetStream acks.
        nc = await connect({
          servers: creds.url,
          user: creds.user || undefined,
          pass: creds.password || undefined,
          name: agentId,
          maxReconnectAttempts: -1,
          reconnectTimeWait: 1000,
          inboxPrefix: creds.inboxPrefix || undefined,
        });
        js = jetstream(nc);
        releaseNatsWaiters();
        publisher.notify();
        log.info({ url: creds.url }, "Connected to NATS");
      } catch (err) {
        log.warn({ err: String(err) }, "NATS not reachable; retrying");
        // 0.5 s doubling up to 10 s; closing the agent cuts the wait short.
        await sleep(backoffMs(attempt, 500, 10_000, { jitter: "none" }), abort.signal);
      }
    }
    natsConnecting = false;
  };

  // Each registration hands out a new NATS password (the old one stops
  // working): drop a connection made with older credentials.
  let natsPassword = "";
  const reconnectNats = async (creds: { url: string; user: string; password: string; inboxPrefix?: string }) => {
    if (nc && natsPassword === creds.password) return;
    natsPassword = creds.password;
    const old = nc;
    nc = undefined;
    js = undefined;
    if (old) await bounded(old.close(), 2_000);
    await connectNats(creds);
  };

  // Tell the colony at once when something it shows changes.
  const soon: { beat?: () => void } = {};

  const register = async () => {
    const res = await link.registerWithRetry(abort.signal, (err, delay) =>
      log.warn({ err: err.rawMessage, retry_in_ms: Math.round(delay) }, "Colony not reachable; retrying"),
    );
    registered = true;
    subjectPrefix = res.nats?.subjectPrefix ?? "";
    if (res.nats) void reconnectNats(res.nats);
    options.onNotice?.({ kind: "connected", colonyId: res.colonyId });
    log.info({ colony_id: res.colonyId, agent_id: agentId }, "Registered with colony");
    return res;
  };

  watcher.start();
  await probe().catch(() => undefined);
  let registration: Awaited<ReturnType<typeof register>>;
  try {
    registration = await register();
  } catch (err) {
    // Refused for good (spent invitation, revoked, another colony): let go of
    // everything, so the process can end with the error.
    abort.abort();
    for (const t of timers) clearInterval(t);
    await watcher.stop().catch(() => undefined);
    await kernel?.stop().catch(() => undefined);
    await httpTracer?.stop().catch(() => undefined);
    await otlp?.stop().catch(() => undefined);
    await debugLoaded?.then((d) => d.close()).catch(() => undefined);
    await profilerLoaded?.then((p) => p.close()).catch(() => undefined);
    await api.close().catch(() => undefined);
    await store.close().catch(() => undefined);
    throw err;
  }
  const heartbeatMs = options.heartbeatIntervalMs ?? registration.heartbeatIntervalSeconds * 1000;
  publisher.start();
  continuous?.start();

  const sampleMs = options.sampleIntervalMs ?? 1000;
  const healthyProbeMs = options.healthIntervalMs ?? 5 * sampleMs;
  // A service that is not (yet) healthy is looked at every beat, so its recovery shows at once.
  offBeat(() => (lastHealth?.healthy ? healthyProbeMs : sampleMs), probe);
  every(options.sampleIntervalMs ?? 1000, pollSdk);
  every(options.sampleIntervalMs ?? 1000, () => traffic.pull());
  every(options.traffic?.pruneIntervalMs ?? 30_000, () => traffic.prune());
  every(options.scrapeIntervalMs ?? 10_000, scrape);
  every(options.summaryIntervalMs ?? 60_000, summarize);
  // Heartbeats in flight: the goodbye waits for them, or one that lands after
  // it brings the agent back online until the colony's offline deadline.
  const beatsInFlight = new Set<Promise<void>>();
  const beat = async () => {
    if (abort.signal.aborted) return;
    const sending = (async () => {
      try {
        await link.heartbeat(heartbeatInfo());
      } catch (err) {
        if (needsReRegistration(err) && !abort.signal.aborted) await register();
        else throw err;
      }
    })();
    beatsInFlight.add(sending);
    try {
      await sending;
    } finally {
      beatsInFlight.delete(sending);
    }
  };
  every(heartbeatMs, beat);
  let soonTimer: NodeJS.Timeout | undefined;
  soon.beat = () => {
    if (soonTimer || abort.signal.aborted) return;
    // After the sample that follows the change, so it carries fresh figures.
    soonTimer = setTimeout(() => {
      soonTimer = undefined;
      void beat().catch((err: unknown) => log.debug({ err: String(err) }, "heartbeat failed"));
    }, (options.sampleIntervalMs ?? 1000) + 100);
    timers.push(soonTimer);
  };
  await pollSdk().catch(() => undefined);
  await beat().catch(() => undefined);
  const stopCleanup = store.startCleanup();

  let closing: Promise<void> | undefined;
  const close = (reason = "agent stopping") =>
    (closing ??= (async () => {
      abort.abort();
      for (const t of timers) clearInterval(t);
      await watcher.stop();
      // The lines bpftrace printed before it stops are still counted.
      await kernel?.stop().catch(() => undefined);
      await httpTracer?.stop().catch(() => undefined);
      // What the apps sent is stored, undecided traces by their keep rules.
      await otlp?.stop().catch(() => undefined);
      // Its last, partial window is stored and queued too.
      await continuous?.close().catch(() => undefined);
      await summarize().catch(() => undefined);
      // The goodbyes need the colony and NATS; when they are gone (colony
      // stopped, tunnel down) each gets a bounded wait, so the local store is
      // still closed cleanly and the process ends.
      await bounded(Promise.allSettled([...beatsInFlight]), 6_000);
      await bounded(link.deregister(reason), 6_000);
      await bounded(publisher.stop(), 6_000);
      await stopCleanup();
      if (nc) {
        await bounded(nc.drain(), 3_000);
        if (!nc.isClosed()) await bounded(nc.close(), 1_000);
      }
      await debugLoaded?.then((d) => d.close());
      await profilerLoaded?.then((p) => p.close());
      await api.close();
      await store.close();
    })());

  return {
    agentId,
    store,
    apiUrl: api.url,
    enqueued: () => enqueued,
    stats: async () => ({ enqueued, published, pending: await store.pendingCount(), registered, dropped: publisher.dropped() }),
    flushSummary: summarize,
    connectionSource,
    continuousProfile: () => continuous?.status(),
    httpTracing: () => httpTracer?.status(),
    otlp: () => otlp?.status(),
    traffic: () => traffic.status(),
    close,
    [Symbol.asyncDispose]: () => close(),
  };
}

/** Waits for `p` at most `ms`; its failure or lateness is not the caller's concern. */
async function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  const settled = new AbortController();
  try {
    await Promise.race([
      p.then(
        () => undefined,
        () => undefined,
      ),
      sleep(ms, settled.signal),
    ]);
  } finally {
    settled.abort(); // ends the wait's timer when `p` won
  }
}

const maxConnectionObservations = 5_000;

/**
 * One observation per remote address: the established outbound connections
 * of the last snapshot (count) and the connections opened since the last
 * batch (opened; short ones too when the kernel source runs). A remote with
 * connections opened and already closed is sent with state OPENED, count 0.
 */
function connectionObservations(list: TcpConnection[], at: Date, opened: { counts: OpenedCount[]; source: "ebpf" | "procfs" }) {
  const byRemote = new Map<string, { localAddr: string; n: number; opened: number }>();
  for (const c of list) {
    if (c.direction !== "outbound" || c.state !== "ESTABLISHED") continue;
    const e = byRemote.get(c.remoteAddr);
    if (e) e.n++;
    else byRemote.set(c.remoteAddr, { localAddr: c.localAddr, n: 1, opened: 0 });
  }
  for (const o of opened.counts) {
    const e = byRemote.get(o.remote);
    if (e) e.opened += o.opened;
    else byRemote.set(o.remote, { localAddr: o.localAddr, n: 0, opened: o.opened });
  }
  // The colony takes at most 10 000 per batch: a service reaching more
  // endpoints in one interval (a crawler) sends its busiest ones.
  const busiest = [...byRemote].sort((a, b) => b[1].n + b[1].opened - (a[1].n + a[1].opened)).slice(0, maxConnectionObservations);
  return busiest.map(([remoteAddr, e]) => ({
    localAddr: e.localAddr,
    remoteAddr,
    state: e.n > 0 ? "ESTABLISHED" : "OPENED",
    observedAt: timestampFromDate(at),
    count: e.n,
    opened: Math.min(e.opened, 0xffff_ffff),
    source: opened.source,
  }));
}

function summaryRows(summaries: Awaited<ReturnType<AgentStore["summarize"]>>, since: Date) {
  return summaries.map((s) => ({
    timestamp: timestampFromDate(since),
    metricName: s.metricName,
    interval: "1m",
    p50: s.p50,
    p95: s.p95,
    p99: s.p99,
    mean: s.mean,
    max: s.max,
    min: s.min,
    count: BigInt(s.count),
  }));
}
