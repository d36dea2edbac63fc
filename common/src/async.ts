// Waiting without sleeping blindly: polled waits with deadlines, sleeps a stop
// can cut short, exponential backoff with jitter, and periodic loops that never
// overlap. The one place in Coral for each of these (proto, which may not
// import this package, keeps its own retry in DiscoveryClient).

export interface PollOptions {
  timeoutMs: number;
  intervalMs?: number;
  /** Included in the timeout error. */
  what: string;
  signal?: AbortSignal;
  /**
   * What a `check` that throws means: "retry" (the default: try again, and
   * name the last error if the deadline passes) or "throw" (stop and rethrow
   * it at once, for checks that throw only when waiting longer is pointless).
   */
  onError?: "retry" | "throw";
}

/** pollUntil's deadline passed; `lastError` is the check's last error, if any. */
export class PollTimeoutError extends Error {
  override name = "PollTimeoutError";
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly lastError?: unknown,
  ) {
    const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
    super(`timed out after ${timeoutMs} ms waiting for ${what}${why}`, { cause: lastError });
  }
}

/**
 * Calls `check` until it returns something other than undefined, or throws a
 * PollTimeoutError after the deadline. The check runs once more at the
 * deadline, so a wait never ends early because the last sleep was cut short.
 */
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
      if (options.onError === "throw") throw err;
      lastError = err;
    }
    if (Date.now() >= deadline) throw new PollTimeoutError(options.what, options.timeoutMs, lastError);
    await sleep(Math.min(interval, Math.max(1, deadline - Date.now())), options.signal);
  }
}

/** setTimeout's largest delay; a longer one would fire at once. */
const maxTimerMs = 2_147_483_647;

export interface SleepOptions {
  /**
   * Let the process exit while this sleep is pending (timer.unref()): for a
   * background loop's idle wait, never for a wait someone awaits to go on.
   */
  unref?: boolean;
}

/** Resolves after `ms` (at most ~24.8 days), or early (without throwing) when the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal, options: SleepOptions = {}): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.min(Math.max(0, ms), maxTimerMs));
    if (options.unref) timer.unref?.();
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * How a backoff delay d = min(maxMs, initialMs · 2^attempt) is randomised:
 * - "spread" (the default): uniformly in [0.8·d, 1.2·d] (±20 %);
 * - "equal": uniformly in [d/2, d] ("equal jitter": never above the cap,
 *   never sooner than half of it);
 * - "none": exactly d.
 */
export type BackoffJitter = "spread" | "equal" | "none";

export interface BackoffOptions {
  jitter?: BackoffJitter;
  /** A uniform random number in [0, 1); tests pass a fixed one. Default Math.random. */
  random?: () => number;
}

/**
 * Exponential backoff: the delay (ms, rounded) before retry `attempt`, where
 * attempt 0 waits about `initialMs` and each later one twice the last, up to
 * `maxMs`, with jitter (see BackoffJitter). A negative attempt counts as 0.
 * A fixed pace is maxMs = initialMs.
 */
export function backoffMs(attempt: number, initialMs: number, maxMs: number, options: BackoffOptions = {}): number {
  const exp = Math.min(Math.max(0, attempt), 30);
  const d = Math.min(maxMs, initialMs * 2 ** exp);
  const jitter = options.jitter ?? "spread";
  if (jitter === "none") return Math.round(d);
  const random = options.random ?? Math.random;
  if (jitter === "equal") return Math.round(d / 2 + random() * (d / 2));
  return Math.round(d * (0.8 + random() * 0.4));
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

