// Periodic background work (rollups, retention). A run never overlaps the
// previous one and never throws out of the timer: errors go to the logger.
import type { StoreLogger } from "./types.ts";

export interface MaintenanceLoop {
  /** Stops the timer; resolves once a run in progress has finished. */
  stop(): Promise<void>;
}

export function startLoop(
  intervalMs: number,
  run: () => Promise<void>,
  logger: StoreLogger | undefined,
): MaintenanceLoop {
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new Error(`maintenance interval must be a positive number of ms, got ${intervalMs}`);
  }
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let current: Promise<void> = Promise.resolve();

  const tick = (): void => {
    timer = undefined;
    if (stopped) return;
    current = (async () => {
      try {
        await run();
      } catch (err) {
        try {
          logger?.("error", "store maintenance failed", { err: (err as Error).message });
        } catch {
          // a broken logger must not break the loop either
        }
      }
    })().finally(() => {
      if (!stopped) schedule();
    });
  };
  const schedule = (): void => {
    timer = setTimeout(tick, intervalMs);
    timer.unref?.();
  };
  schedule();

  return {
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await current;
    },
  };
}
