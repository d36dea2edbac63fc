// The agent's always-on CPU profiler, as the agent runs it: its settings
// from the environment, and a window as the colony receives it (a
// ProfileWindow in the telemetry batch).
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ProfileWindowSchema, type ProfileWindow } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import type { ProfileWindowData } from "../profile/continuous.ts";
import { PROFILE_LIMITS } from "../profile/program.ts";

/**
 * CORAL_PROFILE_HZ: unset = on at the default rate, 0 = off, 1..1000 = that
 * rate. Anything else is a mistake a person should hear about, not a silent
 * default.
 */
export function continuousProfileFromEnv(env: NodeJS.ProcessEnv = process.env): { hz?: number } | false {
  const raw = env.CORAL_PROFILE_HZ?.trim();
  if (raw === undefined || raw === "") return {};
  const hz = Number(raw);
  if (hz === 0) return false;
  if (!Number.isSafeInteger(hz) || hz < PROFILE_LIMITS.minHz || hz > PROFILE_LIMITS.maxHz)
    throw new RangeError(`CORAL_PROFILE_HZ: must be 0 (off) or a whole number from ${PROFILE_LIMITS.minHz} to ${PROFILE_LIMITS.maxHz} samples per second (got "${raw}")`);
  return { hz };
}

export function profileWindowToProto(w: ProfileWindowData): ProfileWindow {
  return create(ProfileWindowSchema, {
    timestamp: timestampFromDate(w.start),
    durationMs: w.durationMs,
    hz: w.hz,
    frames: w.frames,
    stacks: w.stacks.map((s) => ({ frameIds: s.frameIds, samples: BigInt(s.samples), pid: s.pid })),
    totalSamples: BigInt(w.totalSamples),
    otherSamples: BigInt(w.otherSamples),
  });
}
