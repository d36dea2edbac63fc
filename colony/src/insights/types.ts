// What the insights engine works with: learned baselines, a snapshot of the
// store's recent data, the findings detectors produce and the stored insights.
import type { ConnectionEdgeRow } from "../store/index.ts";

export type InsightType = "anomaly" | "pattern" | "recommendation";
export type InsightPriority = "high" | "medium" | "low";
/** `expired`: no detector run has found the condition since expires_at. */
export type InsightStatus = "active" | "dismissed" | "expired";
export type DetectorName = "metric_shift" | "error_burst" | "restart_loop" | "health_flapping" | "connection_change" | "version_degradation";

export type BaselineWindow = "1h" | "1d" | "7d";
export const baselineWindows: readonly BaselineWindow[] = ["1h", "1d", "7d"];
export const baselineWindowMs: Readonly<Record<BaselineWindow, number>> = {
  "1h": 3_600_000,
  "1d": 86_400_000,
  "7d": 7 * 86_400_000,
};

/** One row of the baselines table: a service's metric over one window. */
export interface Baseline {
  service: string;
  metric: string;
  window: BaselineWindow;
  /** Count-weighted mean of the 1-minute means. */
  mean: number;
  /** Count-weighted standard deviation of the 1-minute means around `mean`. */
  stddev: number;
  /** Percentiles of the 1-minute means. */
  p50: number;
  p95: number;
  p99: number;
  /** Number of summaries (minutes, or 15-minute rollups for the part of 7d older than the 1m rows). */
  sampleCount: number;
  lastUpdated: Date;
}

/** A service's metric over the recent window (what is judged against the baseline). */
export interface RecentStat {
  service: string;
  metric: string;
  /** Count-weighted mean of the 1-minute means in the window. */
  mean: number;
  max: number;
  /** Number of 1-minute summaries in the window. */
  samples: number;
  from: Date;
  to: Date;
}

export interface SnapshotEvent {
  service: string;
  at: Date;
  type: string;
  details: Record<string, unknown>;
}

export interface VersionChange {
  service: string;
  at: Date;
  from: string;
  to: string;
  /** "registration" (the agent registered with another version) or the event type (deploy, version_changed). */
  source: string;
}

export interface SnapshotAgent {
  agentId: string;
  service: string;
  version: string;
  health: string;
}

/** Everything the detectors read, taken once per run. Detectors are pure functions of it. */
export interface Snapshot {
  now: Date;
  baselines: Baseline[];
  recent: RecentStat[];
  /** Restarts, exits, crashes and health changes since now - the version lookback. */
  events: SnapshotEvent[];
  /** Version changes inside the version lookback, oldest first. */
  versionChanges: VersionChange[];
  agents: SnapshotAgent[];
  edges: ConnectionEdgeRow[];
}

/** What one detector found in one run. */
export interface Finding {
  detector: DetectorName;
  /** The service the finding is about ("" when it is about several). */
  service: string;
  /** Tells findings of one detector about one service apart (a metric name, an edge, a version). */
  key: string;
  type: InsightType;
  priority: InsightPriority;
  title: string;
  summary: string;
  /** The numbers the detector used (JSON-safe). */
  evidence: Record<string, unknown>;
  /** The same evidence as lines people read. */
  evidenceLines: string[];
  recommendations: string[];
  affectedServices: string[];
  /** 0 to 1. */
  confidence: number;
}

/** A stored insight, as ListInsights returns it. */
export interface InsightRecord {
  id: number;
  detector: string;
  service: string;
  key: string;
  type: InsightType;
  priority: InsightPriority;
  title: string;
  summary: string;
  evidence: Record<string, unknown>;
  evidenceLines: string[];
  recommendations: string[];
  affectedServices: string[];
  confidence: number;
  status: InsightStatus;
  createdAt: Date;
  lastSeen: Date;
  expiresAt: Date;
  /** Detector runs that found it. */
  occurrences: number;
  dismissedAt: Date | null;
  dismissedBy: string;
}

export interface InsightsConfig {
  /** The recent window judged against the baselines (and left out of them). Default 5 min. */
  recentWindowMs: number;
  /** Summaries the recent window needs before it is judged. Default 3. */
  minRecentSamples: number;
  /** Summaries a baseline needs before anything is judged against it (a quiet start does not fire). Default 30. */
  minBaselineSamples: number;
  /** A shift is a recent mean at least this many times the baseline mean… Default 2. */
  shiftRatio: number;
  /** …and at least this many baseline standard deviations above it. Default 3. */
  shiftSigmas: number;
  /** Baselines a shift is judged against, in order of preference. Default 1h, 1d. */
  shiftWindows: BaselineWindow[];
  /** Metrics never judged for shifts. Default health_up (a 0/1 flag: health flapping covers it). */
  ignoreMetrics: string[];
  /** Smallest increase worth reporting, by metric name; defaults by unit (see minShiftDelta). */
  minDelta?: (metric: string) => number;
  /** Error burst: at least this many failed spans, or log records at ERROR or worse, in the recent window… Default 10. */
  errorBurstMin: number;
  /** Restart loop: this many restarts (or exits) within restartWindowMs. Default 3 in 15 min. */
  restartThreshold: number;
  restartWindowMs: number;
  /** Health flapping: this many health changes within flapWindowMs. Default 4 in 10 min. */
  flapThreshold: number;
  flapWindowMs: number;
  /** How long after a version change connection changes and degradations are tied to it. Default 2 h. */
  versionLookbackMs: number;
  /** Events this soon after a version change belong to the deploy itself (its own restart). Default 2 min. */
  deployGraceMs: number;
  /** A connection seen before a version change and not since this long is gone. Default 5 min. */
  vanishAfterMs: number;
  /** An insight no run has found for this long expires. Default 30 min. */
  ttlMs: number;
}

export const defaultInsightsConfig: Readonly<InsightsConfig> = Object.freeze<InsightsConfig>({
  recentWindowMs: 5 * 60_000,
  minRecentSamples: 3,
  minBaselineSamples: 30,
  shiftRatio: 2,
  shiftSigmas: 3,
  shiftWindows: ["1h", "1d"],
  ignoreMetrics: ["health_up"],
  errorBurstMin: 10,
  restartThreshold: 3,
  restartWindowMs: 15 * 60_000,
  flapThreshold: 4,
  flapWindowMs: 10 * 60_000,
  versionLookbackMs: 2 * 3_600_000,
  deployGraceMs: 2 * 60_000,
  vanishAfterMs: 5 * 60_000,
  ttlMs: 30 * 60_000,
});

export function resolveInsightsConfig(partial: Partial<InsightsConfig> = {}): InsightsConfig {
  const config: InsightsConfig = { ...defaultInsightsConfig, shiftWindows: [...defaultInsightsConfig.shiftWindows], ignoreMetrics: [...defaultInsightsConfig.ignoreMetrics] };
  for (const [key, value] of Object.entries(partial) as [keyof InsightsConfig, unknown][]) {
    if (value === undefined) continue;
    if (typeof defaultInsightsConfig[key] === "number" && (typeof value !== "number" || !Number.isFinite(value) || value <= 0))
      throw new Error(`insights.${key} must be a positive number, got ${String(value)}`);
    (config as unknown as Record<string, unknown>)[key] = value;
  }
  return config;
}
