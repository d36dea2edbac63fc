// coral_analyze_correlation: what changed around an incident. Gathers the
// events (deploys, restarts, exits, health changes, agent state changes), the
// 1m metric summaries and the connections first seen within a window around
// the incident time, and ranks the changes by closeness in time × magnitude,
// with the numbers that make each one count.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import {
  clock,
  compactDetails,
  defineTool,
  toolArgs,
  durationArg,
  durationMs,
  fitLines,
  iso,
  num,
  offset,
  parseDetails,
  parseTime,
  ratio,
  textBudgetChars,
  timeArg,
  tsDate,
} from "./common.ts";
import { ToolError } from "./types.ts";

export interface CorrelationEvent {
  timestamp: Date;
  service: string;
  eventType: string;
  details: Record<string, unknown>;
}

export interface CorrelationPoint {
  /** Start of the summary interval. */
  timestamp: Date;
  mean: number;
  p95: number;
  count: number;
}

export interface CorrelationSeries {
  service: string;
  metric: string;
  points: CorrelationPoint[];
}

export interface CorrelationEdge {
  from: string;
  to: string;
  protocol: string;
  external: boolean;
  connectionCount: number;
  firstObserved: Date;
}

export interface CorrelationInput {
  incident: Date;
  /** Changes up to this far before or after the incident count. */
  windowMs: number;
  events: CorrelationEvent[];
  series: CorrelationSeries[];
  edges: CorrelationEdge[];
  /** Only these components (an edge counts when either end is one); all when absent. */
  services?: string[];
  /** Length of one summary interval (default 1m). */
  bucketMs?: number;
}

export type ChangeKind = "event" | "state_change" | "metric_shift" | "new_connection";

export interface Change {
  kind: ChangeKind;
  service: string;
  /** When it happened (ISO); for a metric shift, the start of the first interval that moved. */
  at: string;
  /** Seconds from the incident: negative before, positive after. */
  offsetSeconds: number;
  title: string;
  /** The numbers behind it. */
  evidence: string;
  /** 0..1: how much the change matters on its own (a deploy or exit 1, a 2× metric shift 1, a 1.25× one 0.66, an agent coming online 0.3). */
  magnitude: number;
  /** 0..1: 1 at the incident time, 0 at the window's edge. */
  closeness: number;
  /** closeness × magnitude, rounded to 2 decimals: the ranking key. */
  score: number;
  details: Record<string, unknown>;
}

/** How much an event of a type matters by itself. */
export function eventMagnitude(eventType: string, details: Record<string, unknown> = {}): number {
  switch (eventType) {
    case "crash":
    case "oom":
    case "oom_killed":
    case "process_exited":
    case "deploy":
      return 1;
    case "restart":
    case "agent_offline":
      return 0.9;
    case "health_changed":
      return details.healthy === false || /unhealthy|degraded|down/i.test(String(details.status ?? "")) ? 0.8 : 0.4;
    case "agent_degraded":
      return 0.7;
    case "agent_expired":
      return 0.6;
    case "metrics_scrape_failed":
    case "agent_registering":
      return 0.4;
    case "agent_online":
    case "process_found":
      return 0.3;
    case "metrics_scrape_recovered":
      return 0.2;
    default:
      return 0.3;
  }
}

function eventTitle(e: CorrelationEvent): { kind: ChangeKind; title: string } {
  const d = e.details;
  const who = e.service || "(unknown component)";
  if (e.eventType.startsWith("agent_")) {
    const to = e.eventType.slice("agent_".length);
    return { kind: "state_change", title: `${who}'s agent went ${typeof d.from === "string" && d.from ? `${d.from} → ` : ""}${to}` };
  }
  switch (e.eventType) {
    case "deploy":
      return { kind: "event", title: `${who} deployed${d.version ? ` version ${String(d.version)}` : ""}${d.previous_version ? ` (was ${String(d.previous_version)})` : ""}` };
    case "restart":
      return { kind: "event", title: `${who} restarted` };
    case "process_exited":
      return { kind: "event", title: `${who}'s process exited${d.exit_code !== undefined ? ` (exit code ${String(d.exit_code)})` : ""}` };
    case "crash":
      return { kind: "event", title: `${who} crashed` };
    case "health_changed": {
      const status = typeof d.status === "string" && d.status ? d.status : d.healthy === false ? "unhealthy" : d.healthy === true ? "healthy" : "changed";
      return { kind: "event", title: `${who} health → ${status}` };
    }
    default:
      return { kind: "event", title: `${who}: ${e.eventType}` };
  }
}

const round2 = (n: number) => Math.round(n * 100) / 100;

function closeness(dtMs: number, windowMs: number): number {
  return Math.max(0, Math.min(1, 1 - Math.abs(dtMs) / windowMs));
}

const avg = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
function stddev(xs: number[]): number {
  if (xs.length < 2) return 0;
  const m = avg(xs);
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
}

/** Smallest relative change of a metric worth reporting. */
export const minRelativeShift = 0.25;
/** With at least 3 points before, the shift must also exceed this many standard deviations of them. */
export const minShiftZ = 3;

/** Compares the intervals before the incident with those from it on; undefined when nothing moved enough. */
export function metricShift(series: CorrelationSeries, incident: Date, windowMs: number, bucketMs = 60_000): Change | undefined {
  const t0 = incident.getTime();
  const pts = series.points
    .filter((p) => p.timestamp.getTime() >= t0 - windowMs && p.timestamp.getTime() <= t0 + windowMs)
    .sort((a, b) => a.timestamp.getTime() - b.timestamp.getTime());
  // An interval belongs before the incident when it ended by then; the one holding the incident counts as after.
  const before = pts.filter((p) => p.timestamp.getTime() + bucketMs <= t0);
  const after = pts.filter((p) => p.timestamp.getTime() + bucketMs > t0);
  if (before.length === 0 || after.length === 0) return undefined;
  let best: (Change & { strength: number }) | undefined;
  for (const stat of ["p95", "mean"] as const) {
    const bv = before.map((p) => p[stat]);
    const av = after.map((p) => p[stat]);
    const b = avg(bv);
    const a = avg(av);
    if (!Number.isFinite(a) || !Number.isFinite(b) || a === b) continue;
    const rel = b !== 0 ? (a - b) / Math.abs(b) : Infinity;
    if (Math.abs(rel) < minRelativeShift) continue;
    const sd = before.length >= 3 ? stddev(bv) : 0;
    const z = sd > 0 ? Math.abs(a - b) / sd : undefined;
    if (z !== undefined && z < minShiftZ) continue;
    const r = b > 0 && a > 0 ? a / b : undefined;
    const strength = r !== undefined ? Math.abs(Math.log2(r)) : 1;
    const magnitude = round2(0.5 + 0.5 * Math.min(1, strength));
    // Onset: the first interval that moved at least half way to the new level.
    const onset = after.find((p) => (p[stat] - b) * (a - b) > 0 && Math.abs(p[stat] - b) >= 0.5 * Math.abs(a - b)) ?? after[0]!;
    const dt = onset.timestamp.getTime() - t0;
    const near = closeness(dt, windowMs);
    const direction = a > b ? "rose" : "fell";
    const factor = r !== undefined ? ratio(r) : b === 0 ? "from 0" : `${num(rel * 100)}%`;
    const evidence =
      `${stat} ${num(b)} → ${num(a)} (${factor}): average of ${before.length} interval${before.length === 1 ? "" : "s"} before the incident ` +
      `vs ${after.length} from it on; before ranged ${num(Math.min(...bv))}–${num(Math.max(...bv))}` +
      (z !== undefined ? ` (sd ${num(sd)}, shift ${num(z)} sd)` : "") +
      `; first moved at ${iso(onset.timestamp)} (${num(onset[stat])})`;
    const change = {
      kind: "metric_shift" as const,
      service: series.service,
      at: iso(onset.timestamp),
      offsetSeconds: Math.round(dt / 1000),
      title: `${series.service} ${series.metric} ${stat} ${direction} ${factor}`,
      evidence,
      magnitude,
      closeness: round2(near),
      score: round2(near * magnitude),
      details: {
        metric: series.metric,
        stat,
        before: b,
        after: a,
        ratio: r ?? null,
        relativeChange: Number.isFinite(rel) ? rel : null,
        beforePoints: before.length,
        afterPoints: after.length,
        beforeStddev: sd,
        z: z ?? null,
        onset: iso(onset.timestamp),
        onsetValue: onset[stat],
      },
      strength,
    };
    if (!best || strength > best.strength) best = change;
  }
  if (!best) return undefined;
  const { strength: _strength, ...change } = best;
  return change;
}

/** Every change within the window, strongest first (score, then closeness in time). */
export function rankChanges(input: CorrelationInput): Change[] {
  const t0 = input.incident.getTime();
  const w = input.windowMs;
  const only = input.services && input.services.length ? new Set(input.services) : undefined;
  const inWindow = (t: number) => Math.abs(t - t0) <= w;
  const changes: Change[] = [];
  for (const e of input.events) {
    if (only && !only.has(e.service)) continue;
    const t = e.timestamp.getTime();
    if (!inWindow(t)) continue;
    const magnitude = eventMagnitude(e.eventType, e.details);
    const near = closeness(t - t0, w);
    const { kind, title } = eventTitle(e);
    const details = compactDetails(JSON.stringify(e.details), 140);
    changes.push({
      kind,
      service: e.service,
      at: iso(e.timestamp),
      offsetSeconds: Math.round((t - t0) / 1000),
      title,
      evidence: `${e.eventType} at ${iso(e.timestamp)}${details ? `: ${details}` : ""}`,
      magnitude,
      closeness: round2(near),
      score: round2(near * magnitude),
      details: { eventType: e.eventType, ...e.details },
    });
  }
  for (const s of input.series) {
    if (only && !only.has(s.service)) continue;
    const shift = metricShift(s, input.incident, w, input.bucketMs);
    if (shift) changes.push(shift);
  }
  for (const e of input.edges) {
    if (only && !only.has(e.from) && !only.has(e.to)) continue;
    const t = e.firstObserved.getTime();
    if (!inWindow(t)) continue;
    const near = closeness(t - t0, w);
    changes.push({
      kind: "new_connection",
      service: e.from,
      at: iso(e.firstObserved),
      offsetSeconds: Math.round((t - t0) / 1000),
      title: `new connection ${e.from} → ${e.to}${e.external ? " (external)" : ""}`,
      evidence: `first seen ${iso(e.firstObserved)}, ${e.protocol || "tcp"}, peak ${e.connectionCount} connection${e.connectionCount === 1 ? "" : "s"}`,
      magnitude: 0.6,
      closeness: round2(near),
      score: round2(near * 0.6),
      details: { from: e.from, to: e.to, external: e.external, protocol: e.protocol, connectionCount: e.connectionCount },
    });
  }
  return changes.sort(
    (a, b) => b.score - a.score || Math.abs(a.offsetSeconds) - Math.abs(b.offsetSeconds) || b.magnitude - a.magnitude || a.title.localeCompare(b.title),
  );
}

const maxWindowMs = 6 * 3_600_000;
const maxServices = 40;
const eventCap = 5000;

export const analyzeCorrelationTool = defineTool({
  name: "coral_analyze_correlation",
  title: "What changed around an incident",
  description:
    "Given an incident time, lists what changed around it, ranked by closeness in time × magnitude: deploys, restarts, process exits, " +
    "health changes, agent state changes (agent_offline, ...), metric shifts (1m summaries before vs after the incident), and connections first seen. " +
    "Each change comes with its numbers as evidence. Use it first for 'why did X happen at T?'.",
  inputSchema: toolArgs({
    incident_time: timeArg('When the incident happened: ISO time, a duration ago like "10m", or "now"'),
    services: z.array(z.string().min(1)).min(1).max(maxServices).optional().describe("Only these components (default: all)"),
    window: durationArg("How far before and after the incident to look (default 15m, at most 6h)", maxWindowMs, "6h").default("15m"),
    limit: z.number().int().min(1).max(50).default(10).describe("Show at most this many changes (default 10)"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const now = clock(ctx);
    const incident = parseTime(args.incident_time, now)!;
    if (incident.getTime() > now + 60_000) throw new ToolError(`incident_time ${iso(incident)} is in the future`, "invalid_argument");
    const windowMs = durationMs(args.window);
    const since = new Date(incident.getTime() - windowMs);
    const until = new Date(Math.min(now, incident.getTime() + windowMs));
    const status = await ctx.colony.getStatus({});
    const known = [...new Set(status.services.map((s) => s.name))].sort();
    const requested = args.services ? [...new Set(args.services)] : undefined;
    const unknown = requested?.filter((s) => !known.includes(s)) ?? [];
    const services = (requested ?? known).slice(0, maxServices);
    const range = { since: timestampFromDate(since), until: timestampFromDate(until) };

    const eventLists = requested
      ? await Promise.all(services.map((service) => ctx.colony.queryEvents({ service, ...range, limit: eventCap })))
      : [await ctx.colony.queryEvents({ ...range, limit: eventCap })];
    const eventsCapped = eventLists.some((l) => l.events.length >= eventCap);
    const events: CorrelationEvent[] = eventLists.flatMap((l) =>
      l.events.map((e) => ({ timestamp: tsDate(e.timestamp)!, service: e.service, eventType: e.eventType, details: parseDetails(e.detailsJson) })),
    );
    // One scan of every service's summaries (not one query per service): the
    // store's few readers made 20 parallel queries take 0.5 s (bench/mcp).
    const wanted = new Set(services);
    const metrics = await ctx.colony.queryMetrics({ interval: "1m", ...range });
    const series: CorrelationSeries[] = metrics.series
      .filter((s) => wanted.has(s.service))
      .map((s) => ({
        service: s.service,
        metric: s.metricName,
        points: s.points.map((p) => ({ timestamp: tsDate(p.timestamp)!, mean: p.mean, p95: p.p95, count: Number(p.count) })),
      }));
    const topology = await ctx.colony.getTopology({});
    const edges: CorrelationEdge[] = topology.edges.map((e) => ({
      from: e.fromService,
      to: e.toService,
      protocol: e.protocol,
      external: e.external,
      connectionCount: Number(e.connectionCount),
      firstObserved: tsDate(e.firstObserved) ?? new Date(0),
    }));
    const changes = rankChanges({ incident, windowMs, events, series, edges, services: requested });

    const scope = requested ? `services ${requested.join(", ")}` : `all ${known.length} components`;
    const lines = [
      `Changes around ${iso(incident)} (window ±${args.window}, ${scope}): ${changes.length} found` +
        (changes.length ? `; ranked by score = closeness in time (1 at the incident, 0 at ±${args.window}) × magnitude.` : "."),
    ];
    if (unknown.length) lines.push(`Note: no current component named ${unknown.join(", ")} (known: ${known.join(", ") || "none"}).`);
    const rows = changes
      .slice(0, args.limit)
      .map((c, i) => `${i + 1}. [score ${c.score}] ${c.title} at ${c.at} (${offset(c.offsetSeconds * 1000)} from the incident): ${c.evidence}`);
    const fitted = fitLines(rows, textBudgetChars - 1200);
    lines.push(...fitted.shown);
    const hidden = changes.length - fitted.shown.length;
    if (hidden > 0) lines.push(`… ${hidden} weaker changes not shown: raise limit (up to 50), narrow services, or shorten window.`);
    if (changes.length === 0)
      lines.push(`Nothing changed in events, 1m metric summaries or connections within ±${args.window}. Try a wider window (e.g. window=1h) or check the incident time.`);
    lines.push(
      `Looked at ${events.length} events${eventsCapped ? ` (capped at ${eventCap} per query: narrow services)` : ""}, ${series.length} metric series (1m summaries, which arrive about a minute late), ${edges.length} connection edges` +
        (services.length < (requested ?? known).length ? `; metrics of the first ${services.length} components only` : "") +
        ".",
    );
    const top = changes[0];
    if (top) lines.push(`Next: coral_query_events service=${top.service} since=${iso(since)} for the full log, or coral_query_metrics service=${top.service} for its metrics.`);
    return {
      text: lines.join("\n"),
      data: {
        incident: iso(incident),
        window: args.window,
        since: iso(since),
        until: iso(until),
        services: requested ?? known,
        unknownServices: unknown,
        changes: changes.slice(0, 200),
        lookedAt: { events: events.length, metricSeries: series.length, edges: edges.length },
      },
    };
  },
});
