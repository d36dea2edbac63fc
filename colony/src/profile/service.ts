// ProfileService: CPU and heap profiles of a component, taken by the agent that
// observes it (its whole process set) and passed back as they are. The colony
// validates the request at the edge (the agent checks again), picks the
// service's live agent like a debug session does, and audits who profiled
// what, before and after.
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { IdentityKey } from "@coral/proto";
import { AgentProfileService } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import type { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { callerKey } from "../auth/index.ts";
import { agentServiceClient } from "../agents/transport.ts";
import { agentError, type DebugSessions } from "../debug/sessions.ts";
import { queryStoredCpuProfile, type StoredProfileDeps } from "./stored.ts";

export const profileLimits = { minHz: 1, maxHz: 1000, defaultHz: 99, maxDurationMs: 300_000, defaultDurationMs: 30_000 };
/** Time the agent has beyond the profile's duration: bpftrace's start (it reads the kernel's BTF) and symbolizing. */
const agentSlackMs = 90_000;

export interface ProfileDeps extends StoredProfileDeps {
  /** Finds a service's live agent (the same choice as debug sessions). */
  debug: Pick<DebugSessions, "agentFor">;
  identity: IdentityKey;
  audit(actor: string, action: string, target: string, details: Record<string, unknown>): Promise<void>;
}

/** The request's hz and duration with defaults, or an InvalidArgument error a person can act on. */
export function profileParameters(req: { hz: number; durationMs: number }): { hz: number; durationMs: number } {
  const hz = req.hz || profileLimits.defaultHz;
  const durationMs = req.durationMs || profileLimits.defaultDurationMs;
  if (hz < profileLimits.minHz || hz > profileLimits.maxHz) throw new ConnectError(`hz: must be from ${profileLimits.minHz} to ${profileLimits.maxHz} samples per second (got ${hz})`, Code.InvalidArgument);
  if (durationMs > profileLimits.maxDurationMs) throw new ConnectError(`duration_ms: at most ${profileLimits.maxDurationMs / 60_000} minutes (got ${Math.round(durationMs / 1000)}s)`, Code.InvalidArgument);
  return { hz, durationMs };
}

export const heapLimits = { maxDurationMs: 300_000, defaultDurationMs: 10_000, minSamplingIntervalBytes: 1024, maxSamplingIntervalBytes: 16 * 1024 * 1024, maxPort: 65_535 };

/** A heap request's duration, sampling interval and pprof port (0s kept: the agent fills its defaults), or InvalidArgument naming the field. */
export function heapParameters(req: { durationMs: number; samplingIntervalBytes: number; pprofPort: number }): { durationMs: number; samplingIntervalBytes: number; pprofPort: number } {
  const durationMs = req.durationMs || heapLimits.defaultDurationMs;
  const { samplingIntervalBytes, pprofPort } = req;
  if (durationMs > heapLimits.maxDurationMs) throw new ConnectError(`duration_ms: at most ${heapLimits.maxDurationMs / 60_000} minutes (got ${Math.round(durationMs / 1000)}s)`, Code.InvalidArgument);
  if (samplingIntervalBytes !== 0 && (samplingIntervalBytes < heapLimits.minSamplingIntervalBytes || samplingIntervalBytes > heapLimits.maxSamplingIntervalBytes))
    throw new ConnectError(`sampling_interval_bytes: must be from ${heapLimits.minSamplingIntervalBytes} to ${heapLimits.maxSamplingIntervalBytes}, or 0 for the default (got ${samplingIntervalBytes})`, Code.InvalidArgument);
  if (pprofPort > heapLimits.maxPort) throw new ConnectError(`pprof_port: must be a port from 1 to ${heapLimits.maxPort}, or 0 for the service's own port (got ${pprofPort})`, Code.InvalidArgument);
  return { durationMs, samplingIntervalBytes, pprofPort };
}

export function profileService(deps: ProfileDeps): ServiceImpl<typeof ProfileService> {
  const who = (ctx: HandlerContext) => ctx.values.get(callerKey)?.name ?? "unknown";
  type AgentClient = ReturnType<typeof agentServiceClient<typeof AgentProfileService>>;
  /**
   * One on-demand profile: the service's live agent asked for it, audited
   * before (`profile.<kind>`) and after (`.done` with `doneDetails`, or
   * `.failed` with the agent's error as the caller sees it).
   */
  async function auditedProfile<R extends { profile?: unknown }>(
    kind: "cpu" | "heap",
    serviceName: string,
    ctx: HandlerContext,
    details: Record<string, unknown>,
    call: (client: AgentClient, label: string) => Promise<R>,
    doneDetails: (res: R) => Record<string, unknown>,
  ) {
    const agent = await deps.debug.agentFor(serviceName);
    const by = who(ctx);
    await deps.audit(by, `profile.${kind}`, serviceName, { agentId: agent.agentId, ...details });
    const client = agentServiceClient(AgentProfileService, agent.agentUrl, agent.agentId, deps.identity);
    const started = Date.now();
    try {
      const res = await call(client, `${by} via colony`);
      await deps.audit(by, `profile.${kind}.done`, serviceName, { agentId: agent.agentId, ...doneDetails(res), ms: Date.now() - started });
      return { profile: res.profile as R["profile"], serviceName, agentId: agent.agentId };
    } catch (err) {
      const ce = agentError(err, agent);
      await deps.audit(by, `profile.${kind}.failed`, serviceName, { agentId: agent.agentId, code: Code[ce.code], message: ce.rawMessage.slice(0, 300) });
      throw ce;
    }
  }
  const serviceNameRequired = (name: string) => {
    if (!name) throw new ConnectError("service_name: required (a component name from coral status)", Code.InvalidArgument);
  };
  return {
    async profileCpu(req, ctx) {
      serviceNameRequired(req.serviceName);
      const { hz, durationMs } = profileParameters(req);
      return auditedProfile(
        "cpu",
        req.serviceName,
        ctx,
        { hz, durationMs },
        // The caller's cancel (Ctrl-C in the CLI) stops the agent's profile too.
        (client, label) => client.profileCpu({ hz, durationMs, label }, { timeoutMs: durationMs + agentSlackMs, signal: ctx.signal }),
        (res) => ({ samples: Number(res.profile?.totalSamples ?? 0) }),
      );
    },
    async profileHeap(req, ctx) {
      serviceNameRequired(req.serviceName);
      const params = heapParameters(req);
      return auditedProfile(
        "heap",
        req.serviceName,
        ctx,
        params,
        (client, label) => client.profileHeap({ ...params, label }, { timeoutMs: params.durationMs + agentSlackMs, signal: ctx.signal }),
        (res) => ({ stacks: res.profile?.stacks.length ?? 0, method: res.profile?.method ?? "" }),
      );
    },
    // The always-on profiler's stored stacks: read data, no agent asked.
    queryCpuProfile: (req) => queryStoredCpuProfile(deps, req),
  };
}
