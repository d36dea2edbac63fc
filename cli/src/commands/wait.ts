import { PollTimeoutError, pollUntil } from "@coral/common/async";

/**
 * Polls (every 200 ms) until `probe` returns a value, or fails after
 * `timeoutMs`. An error the probe throws ends the wait at once (the colony
 * exited, say): waiting longer would not help.
 */
export async function waitUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  try {
    return await pollUntil(probe, { what, timeoutMs, intervalMs: 200, onError: "throw" });
  } catch (err) {
    if (err instanceof PollTimeoutError) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${what}`);
    throw err;
  }
}
