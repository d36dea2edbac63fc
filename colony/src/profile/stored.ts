// QueryCpuProfile: the always-on profiler's stored minutes of a service, merged
// into one CpuProfile (and a baseline window's, to compare with). Read data
// only: no agent is asked, nothing is audited.
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { CpuProfileSchema, type CpuProfile, type ProfileFrame, type ProfileStack } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { QueryCpuProfileResponseSchema, type QueryCpuProfileRequest, type QueryCpuProfileResponse } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { profileServiceKnown, readProfileWindow, type ColonyStore, type StoredProfileWindow } from "../store/index.ts";

const minuteMs = 60_000;
export const maxProfileWindowMs = 31 * 24 * 60 * minuteMs;

export interface StoredProfileDeps {
  store: Pick<ColonyStore, "read">;
}

interface Window {
  from: Date;
  until: Date;
}

const invalid = (message: string) => new ConnectError(message, Code.InvalidArgument);

function window(startField: string, endField: string, start: Timestamp | undefined, end: Timestamp | undefined, now: Date): Window {
  if (!start) throw invalid(`${startField}: required (the start of the window)`);
  const from = timestampDate(start);
  const until = end ? timestampDate(end) : now;
  if (!Number.isFinite(from.getTime()) || !Number.isFinite(until.getTime())) throw invalid(`${startField}: not a valid time`);
  if (from >= until) throw invalid(`${startField}: must be before ${endField} (got ${from.toISOString()} and ${until.toISOString()})`);
  if (until.getTime() - from.getTime() > maxProfileWindowMs) throw invalid(`${endField}: the window is at most 31 days (got ${Math.ceil((until.getTime() - from.getTime()) / 86_400_000)} days)`);
  // Minutes that overlap the window: a window from 12:00:30 includes the 12:00 minute.
  return { from: new Date(Math.floor(from.getTime() / minuteMs) * minuteMs), until };
}

/** The request's windows, or InvalidArgument naming the field. */
export function storedProfileWindows(req: QueryCpuProfileRequest, now = new Date()): { window: Window; baseline: Window | null } {
  if (!req.serviceName) throw invalid("service_name: required (a component name from coral status)");
  const main = window("start", "end", req.start, req.end, now);
  if (!req.baselineStart !== !req.baselineEnd) throw invalid(`${req.baselineStart ? "baseline_end" : "baseline_start"}: set both baseline_start and baseline_end, or neither`);
  const baseline = req.baselineStart ? window("baseline_start", "baseline_end", req.baselineStart, req.baselineEnd, now) : null;
  return { window: main, baseline };
}

/** One CpuProfile of the stored minutes: frames shared, stacks root-first, other samples in the total. */
export function mergedProfile(w: StoredProfileWindow): CpuProfile {
  const frames: ProfileFrame[] = [];
  const frameIds = new Map<string, number>();
  const frameId = (f: [string, string, boolean]): number => {
    const key = `${f[0]}\u0000${f[1]}\u0000${f[2]}`;
    let id = frameIds.get(key);
    if (id === undefined) {
      id = frames.length;
      frameIds.set(key, id);
      frames.push({ $typeName: "coral.agent.v1.ProfileFrame", function: f[0], module: f[1], kernel: f[2] });
    }
    return id;
  };
  const stacks: ProfileStack[] = w.stacks.map((s) => ({ $typeName: "coral.agent.v1.ProfileStack", frameIds: s.frames.map(frameId), samples: s.samples, pid: 0 }));
  const inStacks = w.stacks.reduce((n, s) => n + s.samples, 0n);
  const hz = w.hz[0] ?? 0;
  const notes: string[] = [];
  if (w.minutes === 0) notes.push("no stored stacks in this window: the always-on profiler sent none for the service (off, or the minutes are older than the metrics retention)");
  else {
    notes.push(`${w.minutes} minute${w.minutes === 1 ? "" : "s"} of the always-on profiler at ${hz} Hz`);
    if (w.hz.length > 1) notes.push(`some minutes were sampled at ${w.hz.slice(1).join(", ")} Hz`);
    const other = w.totalSamples - inStacks;
    if (other > 0n) notes.push(`${other} samples in stacks beyond the top kept per minute`);
  }
  return create(CpuProfileSchema, {
    frames,
    stacks,
    // Stacks left out still took CPU: the total counts them, so shares stay true.
    totalSamples: w.totalSamples > inStacks ? w.totalSamples : inStacks,
    hz,
    durationMs: w.minutes * minuteMs,
    ...(w.firstMinute ? { startedAt: timestampFromDate(w.firstMinute) } : {}),
    pids: [],
    method: "continuous",
    note: notes.join("; "),
  });
}

/** QueryCpuProfile: InvalidArgument for a bad request, NotFound for a service the colony never saw. */
export async function queryStoredCpuProfile(deps: StoredProfileDeps, req: QueryCpuProfileRequest, now = new Date()): Promise<QueryCpuProfileResponse> {
  const { window: main, baseline } = storedProfileWindows(req, now);
  const service = req.serviceName;
  const read = await deps.store.read(async (c) => {
    if (!(await profileServiceKnown(c, service))) return null;
    return {
      main: await readProfileWindow(c, service, main.from, main.until),
      baseline: baseline ? await readProfileWindow(c, service, baseline.from, baseline.until) : null,
    };
  });
  if (!read) throw new ConnectError(`no agent has ever observed ${service}`, Code.NotFound);
  return create(QueryCpuProfileResponseSchema, {
    profile: mergedProfile(read.main),
    ...(read.baseline ? { baseline: mergedProfile(read.baseline), baselineMinutes: read.baseline.minutes } : {}),
    serviceName: service,
    minutes: read.main.minutes,
  });
}
