// Checks of what reaches the SDK from outside the app: its token setting
// and the flag sets the agent sends. Bad input is answered with a reason,
// never stored (a NaN timestamp would make every later set look newer).
import type { FlagInput } from "./flags.ts";

const tokenPattern = /^[A-Za-z0-9_-]{16,256}$/;

/**
 * CORAL_SDK_TOKEN fixes the token (for `coral connect --sdk PORT` where the
 * agent cannot read the announcement, e.g. a sidecar); unset: undefined.
 */
export function sdkToken(value: string | undefined): string | undefined {
  if (value === undefined || value === "") return undefined;
  if (!tokenPattern.test(value))
    throw new Error("CORAL_SDK_TOKEN must be 16-256 letters, digits, - or _ (e.g. from: openssl rand -hex 24)");
  return value;
}

export const maxFlags = 10_000;
const maxNameLength = 256;
const maxUsersPerFlag = 100_000;

/** Why this flag set must be refused, or undefined when it is fine. */
export function checkFlagSet(flags: readonly FlagInput[], generatedAtMs: number): string | undefined {
  if (!Number.isFinite(generatedAtMs)) return "generated_at: is not a valid time";
  if (flags.length > maxFlags) return `flags: at most ${maxFlags} (got ${flags.length})`;
  for (const [i, f] of flags.entries()) {
    if (!f.name || f.name.length > maxNameLength) return `flags[${i}].name: must be 1-${maxNameLength} characters`;
    if (f.userIds.length > maxUsersPerFlag) return `flags[${i}].user_ids: at most ${maxUsersPerFlag}`;
  }
  return undefined;
}
