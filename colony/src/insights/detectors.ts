// The detectors: pure functions of a snapshot of the store. Each returns the
// findings of one kind; versionDegradation combines the others' findings with
// the version changes.
import { LOG_ERRORS_METRIC, SPAN_ERRORS_METRIC } from "@coral/common/span-metric-name";
import type { ConnectionEdgeRow } from "../store/index.ts";
import { formatValue, isCumulative, metricLabel, metricUnit, minShiftDelta, round } from "./units.ts";
import type { Baseline, Finding, InsightsConfig, RecentStat, Snapshot, SnapshotEvent, VersionChange } from "./types.ts";

const minutes = (ms: number): number => Math.round(ms / 60_000);
const iso = (d: Date): string => d.toISOString();
const hhmm = (d: Date): string => d.toISOString().slice(11, 16);

/** "09:42 UTC", or "May 1 09:42 UTC" when not on the day of `now`. Stored text uses absolute times: it is read later. */
function when(d: Date, now: Date): string {
  const sameDay = d.toISOString().slice(0, 10) === now.toISOString().slice(0, 10);
  return sameDay ? `${hhmm(d)} UTC` : `${d.toLocaleString("en-US", { month: "short", day: "numeric", timeZone: "UTC" })} ${hhmm(d)} UTC`;
}

/** Callers of a service: the services with an edge to it. */
function dependents(edges: readonly ConnectionEdgeRow[], service: string): string[] {
  return [...new Set(edges.filter((e) => e.toService === service && e.fromService !== service).map((e) => e.fromService))].sort();
}

// ---------------------------------------------------------------- metric shift

interface Judged {
  baseline: Baseline;
  ratio: number;
  sigmas: number;
}

function judge(recent: RecentStat, b: Baseline, config: InsightsConfig): Judged | null {
  if (b.sampleCount < config.minBaselineSamples || !(b.mean > 0)) return null;
  const delta = recent.mean - b.mean;
  const minDelta = (config.minDelta ?? minShiftDelta)(recent.metric);
  if (delta <= 0 || delta < minDelta) return null;
  const ratio = recent.mean / b.mean;
  // A constant baseline has no spread: any real increase is beyond it.
  const spread = Math.max(b.stddev, Math.abs(b.mean) * 1e-6, 1e-12);
  const sigmas = Math.min(delta / spread, 1000);
  if (ratio < config.shiftRatio || sigmas < config.shiftSigmas) return null;
  return { baseline: b, ratio, sigmas };
}

function baselineEvidence(b: Baseline): Record<string, number> {
  return { mean: round(b.mean, 6), stddev: round(b.stddev, 6), p50: round(b.p50, 6), p95: round(b.p95, 6), p99: round(b.p99, 6), samples: b.sampleCount };
}

/**
 * A metric's mean over the recent window at least shiftRatio× its baseline
 * mean and shiftSigmas standard deviations above it (1h baseline preferred,
 * else 1d), with enough samples on both sides and an increase above the
 * metric's floor. Only increases: memory, latency, CPU, counts going up.
 * Cumulative series (Prometheus counters) are not judged.
 */
export function metricShift(snap: Snapshot, config: InsightsConfig): Finding[] {
  const byKey = new Map<string, Baseline>();
  for (const b of snap.baselines) byKey.set(`${b.service}\u0000${b.metric}\u0000${b.window}`, b);
  const findings: Finding[] = [];
  for (const r of snap.recent) {
    if (config.ignoreMetrics.includes(r.metric) || isCumulative(r.metric) || errorSeries.has(r.metric) || r.samples < config.minRecentSamples) continue;
    const baselines = config.shiftWindows.flatMap((w) => {
      const b = byKey.get(`${r.service}\u0000${r.metric}\u0000${w}`);
      return b ? [b] : [];
    });
    const hit = baselines.map((b) => judge(r, b, config)).find((j) => j !== null);
    if (!hit) continue;
    const { baseline: b, ratio, sigmas } = hit;
    const label = metricLabel(r.metric);
    const callers = dependents(snap.edges, r.service);
    const x = `${ratio.toFixed(1)}×`;
    const recentWindow = minutes(config.recentWindowMs);
    const latency = metricUnit(r.metric) === "ms";
    const evidenceLines = [
      `${r.metric} mean ${formatValue(r.metric, r.mean)} over the last ${recentWindow} min (${r.samples} samples, peak ${formatValue(r.metric, r.max)})`,
      `usual (${b.window} baseline): ${formatValue(r.metric, b.mean)} ± ${formatValue(r.metric, b.stddev)}, p95 ${formatValue(r.metric, b.p95)} (${b.sampleCount} samples)`,
      `${x} the baseline, ${sigmas >= 1000 ? "far" : sigmas.toFixed(1)} standard deviations above it`,
    ];
    if (callers.length) evidenceLines.push(`called by ${callers.join(", ")}`);
    const recommendations = [`coral metrics ${r.service} ${r.metric} --since 2h`, `coral events --service ${r.service} --since 2h`];
    if (metricUnit(r.metric) === "bytes") recommendations.unshift(`If it keeps growing, look for a memory leak in ${r.service} (recent deploys, a heap profile)`);
    if (latency && callers.length) recommendations.unshift(`Check ${r.service}: ${callers.join(", ")} ${callers.length === 1 ? "depends" : "depend"} on it`);
    findings.push({
      detector: "metric_shift",
      service: r.service,
      key: r.metric,
      type: "anomaly",
      priority: ratio >= 3 ? "high" : "medium",
      title: `${r.service} ${label} ${x} its usual (${formatValue(r.metric, b.mean)} → ${formatValue(r.metric, r.mean)})`,
      summary:
        `${r.service}'s ${label} averaged ${formatValue(r.metric, r.mean)} over the last ${recentWindow} minutes, ` +
        `${x} its ${b.window} baseline of ${formatValue(r.metric, b.mean)}` +
        (callers.length ? `; ${callers.join(", ")} ${callers.length === 1 ? "calls" : "call"} it.` : "."),
      evidence: {
        metric: r.metric,
        recent_mean: round(r.mean, 6),
        recent_max: round(r.max, 6),
        recent_samples: r.samples,
        recent_window_minutes: recentWindow,
        recent_from: iso(r.from),
        baseline_window: b.window,
        baseline_mean: round(b.mean, 6),
        baseline_stddev: round(b.stddev, 6),
        baseline_p95: round(b.p95, 6),
        baseline_samples: b.sampleCount,
        ratio: round(ratio, 3),
        sigmas: round(sigmas, 3),
        baselines: Object.fromEntries(baselines.map((x) => [x.window, baselineEvidence(x)])),
        dependents: callers,
      },
      evidenceLines,
      recommendations,
      affectedServices: [r.service, ...callers],
      confidence: round(Math.min(0.95, 0.5 + 0.15 * Math.log2(ratio) + 0.03 * Math.min(sigmas, 10)), 2),
    });
  }
  return findings;
}

// ---------------------------------------------------------------- error burst

/** The agents' per-interval OpenTelemetry error counts (@coral/common/span-metric-name): judged by errorBurst, not metricShift. */
const errorSeries = new Map<string, { what: string; read: (service: string) => string }>([
  [LOG_ERRORS_METRIC, { what: "log records at ERROR or worse", read: (s) => `coral logs --service ${s} --severity error --since 15m` }],
  [SPAN_ERRORS_METRIC, { what: "failed spans", read: (s) => `coral traces --service ${s} --errors --since 15m` }],
]);

/**
 * A burst of errors: at least errorBurstMin failed spans (or error log
 * records) in the recent window, and at least shiftRatio× the per-minute
 * rate of the 1h (else 1d) baseline. Unlike a metric shift, a quiet
 * baseline (no errors at all) counts: errors from nothing are the news.
 */
export function errorBurst(snap: Snapshot, config: InsightsConfig): Finding[] {
  const findings: Finding[] = [];
  for (const r of snap.recent) {
    const series = errorSeries.get(r.metric);
    if (!series) continue;
    const total = Math.round(r.mean * r.samples);
    if (total < config.errorBurstMin) continue;
    const b = config.shiftWindows.map((w) => snap.baselines.find((x) => x.service === r.service && x.metric === r.metric && x.window === w)).find((x) => x && x.sampleCount >= config.minBaselineSamples);
    const usual = b?.mean ?? 0;
    if (r.mean < config.shiftRatio * usual) continue;
    const recentWindow = minutes(config.recentWindowMs);
    const ratio = usual > 0 ? r.mean / usual : null;
    const usualText = !b ? "none recorded before" : usual > 0 ? `${formatValue(r.metric, usual)} a minute over the last ${b.window}` : `none in the last ${b.window}`;
    findings.push({
      detector: "error_burst",
      service: r.service,
      key: r.metric,
      type: "anomaly",
      priority: ratio === null || ratio >= 5 ? "high" : "medium",
      title: `${r.service}: ${total} ${series.what} in ${recentWindow} min (usually ${usualText})`,
      summary: `${r.service} reported ${total} ${series.what} over the last ${recentWindow} minutes, ${formatValue(r.metric, r.mean)} a minute against ${usualText}.`,
      evidence: {
        metric: r.metric,
        recent_total: total,
        recent_per_minute: round(r.mean, 6),
        recent_peak_minute: round(r.max, 6),
        recent_window_minutes: recentWindow,
        recent_from: iso(r.from),
        baseline_window: b?.window ?? null,
        baseline_per_minute: b ? round(b.mean, 6) : null,
        ratio: ratio === null ? null : round(ratio, 3),
      },
      evidenceLines: [
        `${total} ${series.what} in the last ${recentWindow} min (peak ${formatValue(r.metric, r.max)} in one minute)`,
        b ? `usual (${b.window} baseline): ${formatValue(r.metric, usual)} a minute (${b.sampleCount} minutes)` : "no errors of this kind in the baseline",
      ],
      recommendations: [series.read(r.service), `coral events --service ${r.service} --since 1h`],
      affectedServices: [r.service, ...dependents(snap.edges, r.service)],
      confidence: round(Math.min(0.95, 0.6 + 0.05 * Math.log2(total)), 2),
    });
  }
  return findings;
}

// ---------------------------------------------------------------- restart loop

function within(events: readonly SnapshotEvent[], since: Date, until: Date): SnapshotEvent[] {
  return events.filter((e) => e.at > since && e.at <= until);
}

function numberOrNull(v: unknown): number | null {
  return typeof v === "number" && Number.isFinite(v) ? v : null;
}

/** Restarts in an event list: restart events, or exits and crashes when the agent saw no restart (the process stayed down). */
function countRestarts(events: readonly SnapshotEvent[]): { restarts: number; exits: number; n: number } {
  const restarts = events.filter((e) => e.type === "restart").length;
  const exits = events.filter((e) => e.type === "process_exited" || e.type === "crash").length;
  return { restarts, exits, n: Math.max(restarts, exits) };
}

/** At least restartThreshold restarts (or exits) of a service within restartWindowMs. */
export function restartLoop(snap: Snapshot, config: InsightsConfig): Finding[] {
  const since = new Date(snap.now.getTime() - config.restartWindowMs);
  const byService = new Map<string, SnapshotEvent[]>();
  for (const e of within(snap.events, since, snap.now)) {
    if (e.type !== "restart" && e.type !== "process_exited" && e.type !== "crash") continue;
    byService.set(e.service, [...(byService.get(e.service) ?? []), e]);
  }
  const findings: Finding[] = [];
  for (const [service, list] of [...byService].sort(([a], [b]) => a.localeCompare(b))) {
    const { restarts, exits, n } = countRestarts(list);
    if (n < config.restartThreshold) continue;
    const window = minutes(config.restartWindowMs);
    const times = list.filter((e) => (restarts >= exits ? e.type === "restart" : e.type !== "restart")).map((e) => e.at);
    const rss = list.filter((e) => e.type === "process_exited").map((e) => numberOrNull(e.details.last_rss_bytes)).filter((v): v is number => v !== null);
    const growing = rss.length >= 2 && rss.every((v, i) => i === 0 || v >= rss[i - 1]!);
    const evidenceLines = [
      `${n} restarts in the last ${window} min (threshold ${config.restartThreshold}): ${times.map(hhmm).join(", ")} UTC`,
    ];
    if (rss.length) evidenceLines.push(`memory when it exited: ${rss.map((v) => formatValue("memory_bytes", v)).join(", ")}`);
    findings.push({
      detector: "restart_loop",
      service,
      key: "",
      type: "pattern",
      priority: "high",
      title: `${service} has restarted ${n}× in ${window} min${growing ? " - possible memory leak" : ""}`,
      summary:
        `${service} restarted ${n} times in the last ${window} minutes, most recently at ${when(times[times.length - 1] ?? snap.now, snap.now)}` +
        (growing ? `; its memory was higher at each exit (${rss.map((v) => formatValue("memory_bytes", v)).join(" → ")}).` : "."),
      evidence: {
        window_minutes: window,
        threshold: config.restartThreshold,
        restarts,
        exits,
        count: n,
        times: times.map(iso),
        exit_rss_bytes: rss,
      },
      evidenceLines,
      recommendations: [`coral events --service ${service} --since 1h`, `coral metrics ${service} memory_bytes --since 1h`],
      affectedServices: [service],
      confidence: round(Math.min(0.95, 0.7 + 0.05 * (n - config.restartThreshold)), 2),
    });
  }
  return findings;
}

// ------------------------------------------------------------- health flapping

/** At least flapThreshold health changes of a service within flapWindowMs. */
export function healthFlapping(snap: Snapshot, config: InsightsConfig): Finding[] {
  const since = new Date(snap.now.getTime() - config.flapWindowMs);
  const byService = new Map<string, SnapshotEvent[]>();
  for (const e of within(snap.events, since, snap.now)) {
    if (e.type === "health_changed") byService.set(e.service, [...(byService.get(e.service) ?? []), e]);
  }
  const findings: Finding[] = [];
  for (const [service, list] of [...byService].sort(([a], [b]) => a.localeCompare(b))) {
    if (list.length < config.flapThreshold) continue;
    const window = minutes(config.flapWindowMs);
    const down = list.filter((e) => e.details.healthy === false).length;
    const transitions = list.map((e) => ({ at: iso(e.at), healthy: e.details.healthy === true }));
    findings.push({
      detector: "health_flapping",
      service,
      key: "",
      type: "pattern",
      priority: "medium",
      title: `${service} health is flapping (${list.length} changes in ${window} min)`,
      summary: `${service}'s health check changed ${list.length} times in the last ${window} minutes (${down} times to unhealthy).`,
      evidence: { window_minutes: window, threshold: config.flapThreshold, changes: list.length, to_unhealthy: down, transitions },
      evidenceLines: [
        `${list.length} health changes in the last ${window} min (threshold ${config.flapThreshold})`,
        transitions.map((t) => `${hhmm(new Date(t.at))} ${t.healthy ? "healthy" : "unhealthy"}`).join(", "),
      ],
      recommendations: [`coral events --service ${service} --type health_changed --since 30m`, `coral metrics ${service} health_latency_ms --since 1h`],
      affectedServices: [service],
      confidence: round(Math.min(0.9, 0.6 + 0.05 * (list.length - config.flapThreshold)), 2),
    });
  }
  return findings;
}

// ----------------------------------------------------------- connection change

/** An edge last observed this long before a version change was still in use then. */
const usedBeforeMs = 15 * 60_000;

/**
 * After a version change of a service: edges from it first observed after the
 * change (new), and edges it used right before the change that have not been
 * observed for vanishAfterMs while the service kept reporting (vanished).
 */
export function connectionChange(snap: Snapshot, config: InsightsConfig): Finding[] {
  const findings: Finding[] = [];
  const latestPerService = new Map<string, number>();
  for (const e of snap.edges) latestPerService.set(e.fromService, Math.max(latestPerService.get(e.fromService) ?? 0, e.lastObserved.getTime()));
  for (const r of snap.recent) latestPerService.set(r.service, Math.max(latestPerService.get(r.service) ?? 0, r.to.getTime() + 60_000));
  // The latest change of each service decides.
  const latestChange = new Map<string, VersionChange>();
  for (const c of snap.versionChanges) latestChange.set(c.service, c);
  for (const change of latestChange.values()) {
    const tv = change.at.getTime();
    const edges = snap.edges.filter((e) => e.fromService === change.service);
    const describe = `${change.service} ${change.from} → ${change.to} at ${when(change.at, snap.now)} (${change.source})`;
    for (const e of edges) {
      const first = e.firstObserved.getTime();
      const last = e.lastObserved.getTime();
      let kind: "new" | "vanished" | null = null;
      if (first >= tv) kind = "new";
      else if (
        last >= tv - usedBeforeMs &&
        last < snap.now.getTime() - config.vanishAfterMs &&
        (latestPerService.get(change.service) ?? 0) >= last + config.vanishAfterMs
      )
        kind = "vanished";
      if (!kind) continue;
      const target = `${e.fromService} → ${e.toService}`;
      findings.push({
        detector: "connection_change",
        service: change.service,
        key: `${kind}:${e.toService}`,
        type: "pattern",
        priority: "medium",
        title: kind === "new" ? `New connection after deploy: ${target}` : `Connection gone after deploy: ${target}`,
        summary:
          kind === "new"
            ? `${change.service} started connecting to ${e.toService}${e.external ? " (not an observed component)" : ""} after it changed to ${change.to}; it did not before.`
            : `${change.service} stopped connecting to ${e.toService} after it changed to ${change.to}.`,
        evidence: {
          change: kind,
          from_service: e.fromService,
          to_service: e.toService,
          external: e.external,
          first_observed: iso(e.firstObserved),
          last_observed: iso(e.lastObserved),
          connection_count: e.connectionCount,
          version_change: { from: change.from, to: change.to, at: iso(change.at), source: change.source },
        },
        evidenceLines: [
          `version change: ${describe}`,
          kind === "new"
            ? `${target} first observed at ${when(e.firstObserved, snap.now)}, after the change`
            : `${target} last observed at ${when(e.lastObserved, snap.now)}`,
        ],
        recommendations: [`coral topology`, `coral events --service ${change.service} --since 2h`],
        affectedServices: [...new Set([change.service, ...(e.external ? [] : [e.toService])])],
        confidence: 0.7,
      });
    }
  }
  return findings;
}

// --------------------------------------------------------- version degradation

/**
 * A version change followed, within versionLookbackMs, by trouble: a metric
 * shift found now, restarts after the deploy's own, or the health check going
 * bad. Recommends going back to the previous version.
 */
export function versionDegradation(snap: Snapshot, config: InsightsConfig, others: readonly Finding[]): Finding[] {
  const latestChange = new Map<string, VersionChange>();
  for (const c of snap.versionChanges) latestChange.set(c.service, c);
  const findings: Finding[] = [];
  for (const change of latestChange.values()) {
    const after = new Date(change.at.getTime() + config.deployGraceMs);
    if (after > snap.now) continue;
    const events = within(snap.events, after, snap.now).filter((e) => e.service === change.service);
    const signals: Record<string, unknown>[] = [];
    const lines: string[] = [`version change: ${change.service} ${change.from} → ${change.to} at ${when(change.at, snap.now)} (${change.source})`];
    for (const f of others) {
      if (f.detector !== "metric_shift" || f.service !== change.service) continue;
      const ev = f.evidence;
      signals.push({ kind: "metric_shift", metric: ev.metric, ratio: ev.ratio, recent_mean: ev.recent_mean, baseline_mean: ev.baseline_mean, baseline_window: ev.baseline_window });
      lines.push(`${metricLabel(String(ev.metric))} ${Number(ev.ratio).toFixed(1)}× its usual after the change (${formatValue(String(ev.metric), Number(ev.baseline_mean))} → ${formatValue(String(ev.metric), Number(ev.recent_mean))})`);
    }
    const { n: restarts } = countRestarts(events);
    if (restarts > 0) {
      signals.push({ kind: "restarts", count: restarts, since: iso(after) });
      lines.push(`${restarts} restart${restarts === 1 ? "" : "s"} since the change`);
    }
    const unhealthy = events.filter((e) => e.type === "health_changed" && e.details.healthy === false);
    if (unhealthy.length > 0) {
      signals.push({ kind: "unhealthy", count: unhealthy.length, first_at: iso(unhealthy[0]!.at) });
      lines.push(`health check failed ${unhealthy.length}× since the change (first ${hhmm(unhealthy[0]!.at)} UTC)`);
    }
    const current = snap.agents.filter((a) => a.service === change.service && (a.health === "unhealthy" || a.health === "degraded"));
    if (current.length > 0 && unhealthy.length === 0) {
      signals.push({ kind: "health", health: current[0]!.health });
      lines.push(`reported ${current[0]!.health} now`);
    }
    // A lone restart is not enough (deploys restart); a shift, repeated restarts or bad health is.
    const strong = signals.some((s) => s.kind !== "restarts") || restarts >= 2;
    if (!strong) continue;
    const kinds = new Set(signals.map((s) => s.kind));
    const what = [
      ...signals.filter((s) => s.kind === "metric_shift").map((s) => `${metricLabel(String(s.metric))} ${Number(s.ratio).toFixed(1)}×`),
      ...(restarts > 0 ? [`${restarts} restarts`] : []),
      ...(kinds.has("unhealthy") || kinds.has("health") ? ["failing health checks"] : []),
    ];
    findings.push({
      detector: "version_degradation",
      service: change.service,
      key: change.to,
      type: "recommendation",
      priority: "high",
      title: `${change.service} degraded after ${change.from} → ${change.to}: ${what.join(", ")}`,
      summary:
        `Since ${change.service} changed from ${change.from} to ${change.to} at ${when(change.at, snap.now)}: ${what.join(", ")}. ` +
        `The new version is the likely cause; ${change.from} was running before.`,
      evidence: {
        from_version: change.from,
        to_version: change.to,
        changed_at: iso(change.at),
        source: change.source,
        minutes_since_change: minutes(snap.now.getTime() - change.at.getTime()),
        signals,
      },
      evidenceLines: lines,
      recommendations: [`Roll back ${change.service} to ${change.from}`, `Compare ${change.from} and ${change.to} for the change that causes this`, `coral events --service ${change.service} --since 2h`],
      affectedServices: [change.service],
      confidence: round(Math.min(0.9, 0.55 + 0.15 * kinds.size), 2),
    });
  }
  return findings;
}

/** Every detector over one snapshot. */
export function detectAll(snap: Snapshot, config: InsightsConfig): Finding[] {
  const base = [...metricShift(snap, config), ...errorBurst(snap, config), ...restartLoop(snap, config), ...healthFlapping(snap, config), ...connectionChange(snap, config)];
  return [...base, ...versionDegradation(snap, config, base)];
}
