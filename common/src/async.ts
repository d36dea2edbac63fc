// Waiting without sleeping blindly: polled waits with deadlines, sleeps a stop
// can cut short, exponential backoff with jitter, and periodic loops that never
// overlap.

export interface PollOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Included in the timeout error. */
  what: string;
  signal?: AbortSignal;
}

/** Calls `check` until it returns something other than undefined, or throws after the deadline. */
export async function pollUntil<T>(check: () => Promise<T | undefined> | T | undefined, options: PollOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  const interval = options.intervalMs ?? 50;
  let lastError: unknown;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${options.what}${why}`, { cause: lastError });
    }
    await sleep(Math.min(interval, Math.max(1, deadline - Date.now())), options.signal);
  }
}

/** Resolves after `ms`, or early (without throwing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Exponential backoff: initial · 2^attempt, capped, with ±20 % jitter. */
export function backoffMs(attempt: number, initialMs: number, maxMs: number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/** A loop that runs a task periodically; see startPeriodic. */
export interface PeriodicLoop {
  /** Stops the timer; resolves once a run in progress has finished. */
  stop(): Promise<void>;
}

/**
 * Runs `run` every `intervalMs` (retention, rollups): a run never overlaps the
 * previous one and never throws out of the timer; errors go to `onError`.
 */
export function startPeriodic(intervalMs: number, run: () => Promise<void>, onError: (err: Error) => void): PeriodicLoop {
  if (typeof intervalMs !== "number" || !Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new RangeError(`interval must be a positive number of ms, got ${String(intervalMs)}`);
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
          onError(err as Error);
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

