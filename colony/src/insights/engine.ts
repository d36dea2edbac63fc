// One insights run (baselines → snapshot → detectors → insights rows) and the
// loop that runs it every minute.
import type { ColonyStore, StoreLogger } from "../store/index.ts";
import { computeBaselines } from "./baselines.ts";
import { detectAll } from "./detectors.ts";
import * as repo from "./repository.ts";
import { loadSnapshot } from "./snapshot.ts";
import { resolveInsightsConfig, type Finding, type InsightRecord, type InsightsConfig } from "./types.ts";

export interface InsightsRunResult extends Omit<repo.ApplyResult, "ids"> {
  now: Date;
  /** Baseline rows written. */
  baselines: number;
  findings: Finding[];
  /** The insight id of each finding, in order. */
  ids: number[];
}

/**
 * One run at `now`: recompute the baselines, read a snapshot, run every
 * detector and store the findings (deduplicated; dismissed ones stay quiet).
 */
export async function runInsights(store: ColonyStore, now: Date, config: Partial<InsightsConfig> = {}): Promise<InsightsRunResult> {
  const cfg = resolveInsightsConfig(config);
  const baselines = await computeBaselines(store, now, { excludeRecentMs: cfg.recentWindowMs });
  const snapshot = await loadSnapshot(store, now, cfg);
  const findings = detectAll(snapshot, cfg);
  const applied = await store.write((c) => repo.applyFindings(c, findings, now, cfg.ttlMs));
  return { now, baselines, findings, ...applied };
}

export function listInsights(store: ColonyStore, query: repo.ListInsightsQuery = {}, now = new Date()): Promise<InsightRecord[]> {
  return store.read((c) => repo.listInsights(c, query, now));
}

export function getInsight(store: ColonyStore, id: number, now = new Date()): Promise<InsightRecord | null> {
  return store.read((c) => repo.getInsight(c, id, now));
}

/** Null when no insight has that id. Dismissing twice is fine. */
export function dismissInsight(store: ColonyStore, id: number, options: { by?: string; now?: Date } = {}): Promise<InsightRecord | null> {
  return store.write((c) => repo.dismissInsight(c, id, options.now ?? new Date(), options.by ?? "unknown"));
}

/** Active insights (not dismissed, not expired), for `coral status`. */
export function countActiveInsights(store: ColonyStore, now = new Date()): Promise<number> {
  return store.read((c) => repo.countActiveInsights(c, now));
}

export interface InsightsLoopOptions {
  /** Between runs (default CORAL_INSIGHTS_INTERVAL_MS or 60 s). */
  intervalMs?: number;
  /** Before the first run (default: intervalMs). */
  initialDelayMs?: number;
  config?: Partial<InsightsConfig>;
  logger?: StoreLogger;
  /** The clock (tests). */
  now?: () => Date;
  /** Called after every successful run. */
  onRun?: (result: InsightsRunResult) => void;
}

export interface InsightsLoop {
  /** Runs now (after a run in progress); the timer keeps its schedule. */
  runOnce(): Promise<InsightsRunResult>;
  /** Stops the timer; resolves once a run in progress has finished. */
  stop(): Promise<void>;
}

/** The interval from the environment (CORAL_INSIGHTS_INTERVAL_MS), else 60 s. */
export function defaultInsightsIntervalMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.CORAL_INSIGHTS_INTERVAL_MS;
  if (raw === undefined || raw === "") return 60_000;
  const ms = Number(raw);
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`CORAL_INSIGHTS_INTERVAL_MS must be a positive number of ms, got "${raw}"`);
  return ms;
}

/**
 * Runs the insights every interval. Runs never overlap and never throw out of
 * the timer: errors go to the logger.
 */
export function startInsightsLoop(store: ColonyStore, options: InsightsLoopOptions = {}): InsightsLoop {
  const intervalMs = options.intervalMs ?? defaultInsightsIntervalMs();
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) throw new Error(`insights interval must be a positive number of ms, got ${intervalMs}`);
  const config = resolveInsightsConfig(options.config);
  const clock = options.now ?? (() => new Date());
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let current: Promise<unknown> = Promise.resolve();

  const run = (): Promise<InsightsRunResult> => {
    const next = current.then(async () => {
      const result = await runInsights(store, clock(), config);
      options.onRun?.(result);
      if (result.created > 0 || result.expired > 0)
        options.logger?.("info", "insights updated", { created: result.created, updated: result.updated, expired: result.expired });
      return result;
    });
    current = next.catch(() => undefined);
    return next;
  };
  const tick = (): void => {
    timer = undefined;
    if (stopped) return;
    run()
      .catch((err: unknown) => {
        if (stopped) return;
        try {
          options.logger?.("error", "insights run failed", { err: (err as Error).message });
        } catch {
          // a broken logger must not break the loop
        }
      })
      .finally(() => {
        if (!stopped) schedule(intervalMs);
      });
  };
  const schedule = (delay: number): void => {
    timer = setTimeout(tick, delay);
    timer.unref?.();
  };
  schedule(options.initialDelayMs ?? intervalMs);

  return {
    runOnce: run,
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      await current;
    },
  };
}
