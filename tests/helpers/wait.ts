// Polls a condition until it holds or the deadline passes: tests never sleep
// to synchronise. A thin wrapper over pollUntil (@coral/common/async).
import { pollUntil } from "@coral/common/async";

/** Polls `probe` (every 100 ms by default) until it returns something other than undefined or false. */
export function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  { timeoutMs = 30_000, intervalMs = 100 } = {},
): Promise<T> {
  return pollUntil(
    async () => {
      const value = await probe();
      return value === false ? undefined : value;
    },
    { what, timeoutMs, intervalMs },
  );
}
