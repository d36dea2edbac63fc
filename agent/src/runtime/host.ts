// One agent process for several services (`coral connect frontend:3000
// api:3001 …`): each service is observed as before, with its own identity in
// the colony (key, agent id, registration, heartbeats, outbox, store, debug
// sessions, flags, SDK link), so nothing changes for readers. Services are
// added, removed or changed while the process runs; one service failing to
// start, or its process going away, leaves the others alone.
import { SharedHttpTracer } from "../observe/http/shared-tracer.ts";
import { SharedKernelConnections } from "../observe/shared-kernel-connections.ts";
import { SharedContinuousProfiler } from "../profile/shared-continuous.ts";
import { processSymbols, startAgent, type AgentNotice, type AgentOptions, type RunningAgent, type SharedTracers } from "./agent.ts";
import { continuousProfileFromEnv } from "./continuous-profile.ts";
import type { Invitation } from "./colony-link.ts";
import { checkServiceSet, diffServices, ServiceSpecError, type ServiceSpec } from "./services.ts";

/** What every service's agent shares: everything of AgentOptions but what names the service. */
export type SharedAgentOptions = Omit<
  AgentOptions,
  "serviceName" | "port" | "healthUrl" | "metricsUrl" | "tags" | "version" | "sdkPort" | "dataDir" | "invitation" | "colonyPubkey" | "onNotice" | "sharedTracers"
>;

export interface HostAgentOptions {
  services: readonly ServiceSpec[];
  shared: SharedAgentOptions;
  /** Each service's own data folder (its key, agent id, store and outbox). */
  dataDirFor(service: string): string;
  /** How a service's agent enrolls when it has not yet (an invitation), or nothing. */
  enrollmentFor(service: string, dataDir: string): Promise<{ invitation?: Invitation; colonyPubkey?: string }>;
  onNotice?: (service: string, notice: AgentNotice) => void;
}

export interface HostedService {
  spec: ServiceSpec;
  state: "starting" | "running" | "failed";
  agentId?: string;
  /** Why it could not start (state failed). */
  error?: string;
}

export interface HostAgent extends AsyncDisposable {
  /** The services and how each is doing. */
  services(): HostedService[];
  /** A service's running agent. */
  agent(name: string): RunningAgent | undefined;
  /** Starts observing one more service; resolves once it runs (or rejects with why it could not start, and it is not kept). */
  add(spec: ServiceSpec): Promise<HostedService>;
  /** Stops observing a service (its agent says goodbye to the colony). */
  remove(name: string): Promise<void>;
  /** Makes the set `specs`: starts the new, stops the gone, restarts the changed. The others run on untouched. */
  reconcile(specs: readonly ServiceSpec[]): Promise<{ added: string[]; removed: string[]; changed: string[]; failed: { name: string; error: string }[] }>;
  close(reason?: string): Promise<void>;
}

interface Entry {
  spec: ServiceSpec;
  state: HostedService["state"];
  agent?: RunningAgent;
  error?: string;
  /** What startAgent threw (its class tells callers what kind of failure, e.g. AgentAlreadyRunningError). */
  cause?: unknown;
  started: Promise<void>;
}

export class UnknownServiceError extends Error {
  override name = "UnknownServiceError";
}

/**
 * Starts an agent for every service; resolves once each has started or
 * failed. Throws only when none could start (nothing would be observed).
 */
export async function startHostAgent(options: HostAgentOptions): Promise<HostAgent> {
  const entries = new Map<string, Entry>();
  // One change at a time: an add racing a remove of the same name ends in a known state.
  let queue: Promise<unknown> = Promise.resolve();
  const serially = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = queue.then(fn, fn);
    queue = run.catch(() => undefined);
    return run;
  };
  let closed = false;
  // The OTLP ports are the host's, so one service's agent listens on them at a time.
  let otlpOwner: string | undefined;
  // One bpftrace program of each kind for every service (each ~100 MB resident), not one per service.
  const tracers: SharedTracers & Required<Pick<SharedTracers, "kernelConnections" | "http">> = {
    kernelConnections: new SharedKernelConnections({ bpftracePath: options.shared.bpftracePath }),
    http: new SharedHttpTracer({ bpftracePath: options.shared.bpftracePath }),
    continuous: sharedContinuousProfiler(options.shared),
  };

  const view = (e: Entry): HostedService => ({ spec: e.spec, state: e.state, agentId: e.agent?.agentId, error: e.error });

  const launch = (spec: ServiceSpec): Entry => {
    const entry: Entry = { spec, state: "starting", started: Promise.resolve() };
    otlpOwner ??= spec.name;
    const ownsOtlp = otlpOwner === spec.name;
    entry.started = (async () => {
      const dataDir = options.dataDirFor(spec.name);
      try {
        const enrollment = await options.enrollmentFor(spec.name, dataDir);
        const agent = await startAgent({
          ...options.shared,
          ...enrollment,
          serviceName: spec.name,
          port: spec.port,
          healthUrl: spec.healthUrl,
          metricsUrl: spec.metricsUrl,
          tags: spec.tags,
          version: spec.tags?.version,
          sdkPort: spec.sdkPort,
          exec: options.shared.exec !== false && spec.exec !== false,
          dataDir,
          sharedTracers: tracers,
          otlp: ownsOtlp ? options.shared.otlp : false,
          logger: childLogger(options.shared.logger, spec.name),
          onNotice: (n) => options.onNotice?.(spec.name, n),
        });
        if (closed || entries.get(spec.name) !== entry) {
          // Removed (or the host closed) while it was starting.
          await agent.close("removed while starting");
          return;
        }
        entry.agent = agent;
        entry.state = "running";
      } catch (err) {
        if (otlpOwner === spec.name) otlpOwner = undefined;
        entry.state = "failed";
        entry.cause = err;
        entry.error = err instanceof Error ? err.message : String(err);
        options.shared.logger.error({ service: spec.name, err: entry.error }, "could not start observing the service");
      }
    })();
    return entry;
  };

  const stop = async (name: string, reason: string) => {
    const e = entries.get(name);
    if (!e) return;
    entries.delete(name);
    await e.started;
    await e.agent?.close(reason);
    if (otlpOwner === name) otlpOwner = undefined;
  };

  const initial = checkServiceSet(options.services);
  if (initial.length === 0) throw new ServiceSpecError("no service to observe: name at least one, e.g. api:3001");
  for (const spec of initial) entries.set(spec.name, launch(spec));
  await Promise.all([...entries.values()].map((e) => e.started));
  if ([...entries.values()].every((e) => e.state === "failed")) {
    const why = [...entries.values()].map((e) => `${e.spec.name}: ${e.error}`).join("; ");
    // One service: its own error, as a single agent would throw it.
    if (initial.length === 1) throw entries.values().next().value?.cause ?? new Error(why);
    throw new Error(`no service could be observed (${why})`);
  }

  const add = (spec: ServiceSpec) =>
    serially(async () => {
      if (closed) throw new Error("the agent is stopping");
      const existing = entries.get(spec.name);
      if (existing && existing.state !== "failed") throw new ServiceSpecError(`the agent already observes "${spec.name}" (port ${existing.spec.port}); remove it first`);
      const others = [...entries.values()].filter((e) => e.spec.name !== spec.name).map((e) => e.spec);
      checkServiceSet([...others, spec]);
      if (existing) entries.delete(spec.name);
      const entry = launch(spec);
      entries.set(spec.name, entry);
      await entry.started;
      if (entry.state === "failed") {
        entries.delete(spec.name);
        throw new Error(`could not start observing "${spec.name}": ${entry.error}`);
      }
      return view(entry);
    });

  const remove = (name: string) =>
    serially(async () => {
      if (!entries.has(name)) throw new UnknownServiceError(`the agent does not observe "${name}"; it observes: ${[...entries.keys()].join(", ") || "nothing"}`);
      await stop(name, "removed from the agent");
    });

  const reconcile = (specs: readonly ServiceSpec[]) =>
    serially(async () => {
      const wanted = checkServiceSet(specs);
      const current = [...entries.values()].filter((e) => e.state !== "failed").map((e) => e.spec);
      const d = diffServices(current, wanted);
      // Failed ones are tried again when still wanted.
      const retry = wanted.filter((s) => entries.get(s.name)?.state === "failed");
      for (const name of [...d.remove, ...d.change.map((s) => s.name)]) await stop(name, "removed from the agent's configuration");
      for (const s of retry) entries.delete(s.name);
      const started = [...d.add, ...d.change, ...retry].map((s) => {
        const e = launch(s);
        entries.set(s.name, e);
        return e;
      });
      await Promise.all(started.map((e) => e.started));
      const failed = started.filter((e) => e.state === "failed").map((e) => ({ name: e.spec.name, error: e.error ?? "" }));
      return { added: [...d.add, ...retry].map((s) => s.name), removed: d.remove, changed: d.change.map((s) => s.name), failed };
    });

  let closing: Promise<void> | undefined;
  const close = (reason = "agent stopping") =>
    (closing ??= (async () => {
      closed = true;
      await queue;
      await Promise.all([...entries.keys()].map((name) => stop(name, reason)));
      await Promise.all([tracers.kernelConnections.close(), tracers.http.close(), tracers.continuous?.close()]);
    })());

  return {
    services: () => [...entries.values()].map(view),
    agent: (name) => entries.get(name)?.agent,
    add,
    remove,
    reconcile,
    close,
    [Symbol.asyncDispose]: () => close(),
  };
}

/** The always-on profiler every service shares, unless it is off; options it refuses make each service's agent say why, as alone. */
function sharedContinuousProfiler(shared: SharedAgentOptions): SharedContinuousProfiler | undefined {
  try {
    const wanted = shared.continuousProfile ?? continuousProfileFromEnv();
    if (wanted === false) return undefined;
    return new SharedContinuousProfiler({ ...wanted, bpftracePath: shared.bpftracePath ?? (process.env.CORAL_BPFTRACE || undefined), symbols: processSymbols, logger: shared.logger });
  } catch {
    return undefined;
  }
}

/** Each service's lines carry its name (pino-style child when the logger has one). */
function childLogger(log: AgentOptions["logger"], service: string): AgentOptions["logger"] {
  const withChild = log as AgentOptions["logger"] & { child?: (bindings: object) => AgentOptions["logger"] };
  if (typeof withChild.child === "function") return withChild.child({ service });
  const tag = (o: object) => ({ service, ...o });
  return {
    info: (o, m) => log.info(tag(o), m),
    warn: (o, m) => log.warn(tag(o), m),
    error: (o, m) => log.error(tag(o), m),
    debug: (o, m) => log.debug(tag(o), m),
  };
}
