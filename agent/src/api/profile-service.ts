// AgentProfileService: the colony asks this agent for a CPU or heap profile
// of the process set it observes. Validation happens here (Connect codes with
// messages a person can act on); the profile itself is profile/'s. The
// caller's cancel or deadline (ctx.signal) ends the profile early and
// detaches everything.
import { performance } from "node:perf_hooks";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { CpuProfileSchema, HeapProfileSchema, type AgentProfileService, type CpuProfile, type HeapProfile, type ProfileCpuRequest, type ProfileHeapRequest } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { heapParameters, ProfileError, profileParameters, type CpuProfileData, type CpuProfiler, type HeapProfileData, type HeapProfiler, type ProfileErrorCode } from "../profile/index.ts";

const codes: Record<ProfileErrorCode, Code> = {
  invalid_argument: Code.InvalidArgument,
  no_process: Code.FailedPrecondition,
  process_exited: Code.FailedPrecondition,
  busy: Code.ResourceExhausted,
  bpftrace_missing: Code.FailedPrecondition,
  no_permission: Code.FailedPrecondition,
  bpftrace_failed: Code.Internal,
  inspector_failed: Code.FailedPrecondition,
  cancelled: Code.Canceled,
  no_pprof: Code.FailedPrecondition,
  unsupported: Code.FailedPrecondition,
  pprof_failed: Code.Unavailable,
};

/** ProfileError → ConnectError (the profile code travels in x-coral-profile-error); anything else as Connect wraps it. */
export function profileConnectError(err: unknown): ConnectError {
  if (err instanceof ProfileError) {
    const ce = new ConnectError(err.message, codes[err.code], undefined, undefined, err);
    ce.metadata.set("x-coral-profile-error", err.code);
    return ce;
  }
  return ConnectError.from(err);
}

export function profileToProto(p: CpuProfileData): CpuProfile {
  return create(CpuProfileSchema, {
    frames: p.frames,
    stacks: p.stacks.map((s) => ({ frameIds: s.frameIds, samples: BigInt(s.samples), pid: s.pid })),
    totalSamples: BigInt(p.totalSamples),
    hz: p.hz,
    durationMs: p.durationMs,
    startedAt: timestampFromDate(p.startedAt),
    pids: p.pids,
    method: p.method,
    note: p.note,
    processNames: Object.fromEntries(p.processNames),
    firstSampleAfterMs: p.firstSampleAfterMs ?? 0,
  });
}

async function profileCpu(profiler: CpuProfiler, req: ProfileCpuRequest, ctx: HandlerContext) {
  const receivedAt = performance.now();
  const params = profileParameters(req);
  if ("error" in params) throw new ConnectError(params.error, Code.InvalidArgument);
  try {
    const profile = await profiler.profile({ ...params, label: req.label.slice(0, 200), receivedAt }, ctx.signal);
    return { profile: profileToProto(profile) };
  } catch (err) {
    throw profileConnectError(err);
  }
}

export function heapProfileToProto(p: HeapProfileData): HeapProfile {
  return create(HeapProfileSchema, {
    frames: p.frames,
    stacks: p.stacks.map((s) => ({
      frameIds: s.frameIds,
      inuseBytes: BigInt(s.inuseBytes),
      inuseObjects: BigInt(s.inuseObjects),
      allocBytes: BigInt(s.allocBytes),
      allocObjects: BigInt(s.allocObjects),
      pid: s.pid,
    })),
    takenAt: timestampFromDate(p.takenAt),
    durationMs: p.durationMs,
    method: p.method,
    note: p.note,
    pids: p.pids,
    processNames: Object.fromEntries(p.processNames),
    samplingIntervalBytes: p.samplingIntervalBytes,
  });
}

async function profileHeap(profiler: HeapProfiler, req: ProfileHeapRequest, ctx: HandlerContext) {
  const params = heapParameters(req);
  if ("error" in params) throw new ConnectError(params.error, Code.InvalidArgument);
  try {
    const profile = await profiler.profile({ ...params, label: req.label.slice(0, 200) }, ctx.signal);
    return { profile: heapProfileToProto(profile) };
  } catch (err) {
    throw profileConnectError(err);
  }
}

export function agentProfileService(profiler: CpuProfiler, heap?: HeapProfiler): ServiceImpl<typeof AgentProfileService> {
  return {
    profileCpu: (req, ctx) => profileCpu(profiler, req, ctx),
    profileHeap: (req, ctx) => (heap ? profileHeap(heap, req, ctx) : Promise.reject(new ConnectError("heap profiles are not served by this agent", Code.Unimplemented))),
  };
}
