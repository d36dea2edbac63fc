// Insights: learned baselines and the detectors that run every minute over
// the store (metric shifts, restart loops, health flapping, connection changes
// after a deploy, degradation after a version change). No LLM involved.
// The public surface; nothing outside this folder imports its other modules.
export {
  runInsights,
  startInsightsLoop,
  listInsights,
  getInsight,
  dismissInsight,
  countActiveInsights,
  defaultInsightsIntervalMs,
  type InsightsLoop,
  type InsightsLoopOptions,
  type InsightsRunResult,
} from "./engine.ts";
export { computeBaselines, listBaselines, type BaselineOptions } from "./baselines.ts";
export { detectAll, metricShift, restartLoop, healthFlapping, connectionChange, versionDegradation } from "./detectors.ts";
export { loadSnapshot, versionChangesFrom, watchedEventTypes, versionEventTypes } from "./snapshot.ts";
export { dedupeKey, type InsightFilter, type ListInsightsQuery, type ApplyResult } from "./repository.ts";
export { formatValue, metricLabel, minShiftDelta } from "./units.ts";
export * from "./types.ts";
