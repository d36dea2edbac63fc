// A periodic background task (retention). A run never overlaps the previous
// one and never throws out of the timer: errors go to the logger.
import type { StorageLogger } from "./types.ts";

export interface Loop {
  /** Stops the timer; resolves once a run in progress has finished. */
  stop(): Promise<void>;
}

export function startLoop(intervalMs: number, run: () => Promise<void>, logger: StorageLogger | undefined): Loop {
  if (typeof intervalMs !== "number" || !Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new RangeError(`cleanup interval must be a positive number of ms, got ${String(intervalMs)}`);
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
          logger?.("error", "agent storage cleanup failed", { err: (err as Error).message });
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
