// A small tool set for `coral ask` that calls the colony over Connect:
// get_status, query_events, query_metrics. Each answers in compact text whose
// first line is a one-line summary (used as the evidence digest). The MCP
// tool registry (colony/src/tools) will replace these once adapted to AskTool.
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import type { ColonyService, MetricSeries, QueryMetricsResponse } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { parseDuration } from "../config/index.ts";
import { formatDetails } from "../format/events.ts";
import type { AskTool } from "./types.ts";

export type ColonyClient = Client<typeof ColonyService>;

export interface DefaultToolsOptions {
  now?: () => Date;
  /** Turns a transport error into a message (e.g. remote.ts explainError with the target). */
  explain?: (err: unknown) => Error;
}

class ToolInputError extends Error {}

function argsObject(args: unknown): Record<string, unknown> {
  if (args === undefined || args === null) return {};
  if (typeof args !== "object" || Array.isArray(args)) throw new ToolInputError("arguments must be a JSON object");
  return args as Record<string, unknown>;
}

function optString(a: Record<string, unknown>, key: string): string | undefined {
  const v = a[key];
  if (v === undefined || v === null || v === "") return undefined;
  if (typeof v !== "string") throw new ToolInputError(`${key}: must be a string`);
  return v.trim() || undefined;
}

function optInt(a: Record<string, unknown>, key: string, min: number, max: number): number | undefined {
  const v = a[key];
  if (v === undefined || v === null) return undefined;
  const n = typeof v === "string" ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) throw new ToolInputError(`${key}: must be an integer from ${min} to ${max}`);
  return n;
}

/** "1h" (ago) or an ISO time → a Date. */
function timeArg(a: Record<string, unknown>, key: string, now: Date): Date | undefined {
  const v = optString(a, key);
  if (!v) return undefined;
  const d = parseDuration(v);
  if (!("error" in d)) return new Date(now.getTime() - d.ms);
  const at = Date.parse(v);
  if (Number.isNaN(at)) throw new ToolInputError(`${key}: "${v}" is neither a duration ago (30m, 6h, 2d) nor an ISO time`);
  return new Date(at);
}

const isoDate = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, "Z");
const iso = (t: Timestamp | undefined) => (t ? isoDate(timestampDate(t)) : "-");

/** Rounded for reading but exact enough to quote: 12.3456 → 12.35, 931234567 → 931234567. */
function num(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return String(Number(v.toFixed(Math.abs(v) >= 100 ? 1 : Math.abs(v) >= 1 ? 2 : 4)));
}

function bytes(v: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let x = v;
  while (Math.abs(x) >= 1024 && i < units.length - 1) {
    x /= 1024;
    i++;
  }
  return `${num(Number(x.toFixed(1)))} ${units[i]}`;
}

const withUnit = (metric: string, v: number) => (/bytes/i.test(metric) ? `${num(v)} (${bytes(v)})` : num(v));

function uptime(seconds: bigint | number): string {
  let s = Number(seconds);
  if (!Number.isFinite(s) || s < 0) return "-";
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  return d > 0 ? `${d}d${h}h` : h > 0 ? `${h}h${m}m` : `${m}m${Math.floor(s - m * 60)}s`;
}

async function call<T>(explain: DefaultToolsOptions["explain"], run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    throw explain ? explain(err) : err;
  }
}

export function defaultTools(client: ColonyClient, options: DefaultToolsOptions = {}): AskTool[] {
  const now = options.now ?? (() => new Date());
  const explain = options.explain;

  const getStatus: AskTool = {
    name: "get_status",
    description:
      "The application's components as the colony sees them: agent state (online, degraded, offline), health, version, uptime, restart count, CPU and memory, last heartbeat; plus the colony's own state. Start here.",
    inputSchema: { type: "object", properties: {}, additionalProperties: false },
    async run(args) {
      argsObject(args);
      const res = await call(explain, () => client.getStatus({}));
      const counts = new Map<string, number>();
      for (const s of res.services) counts.set(s.status, (counts.get(s.status) ?? 0) + 1);
      const summary = [...counts].map(([k, v]) => `${v} ${k}`).join(", ") || "none";
      const restarts = res.services.reduce((n, s) => n + s.restartCount, 0);
      const lines = [
        `${res.appName} (${res.environment}): ${res.services.length} component(s): ${summary}; ${restarts} restart(s) in total; colony ${res.colonyId} up ${uptime(res.uptimeSeconds)}, nats ${res.natsStatus}`,
      ];
      for (const s of res.services)
        lines.push(
          `${s.name}: state=${s.status} health=${s.health || "unknown"} version=${s.version || "-"} uptime=${uptime(s.uptimeSeconds)} restarts=${s.restartCount} ` +
            `cpu=${num(s.cpuPercent)}% memory=${bytes(Number(s.memoryBytes))} pid=${s.pid || "-"} port=${s.port || "-"} agent=${s.agentId} last_seen=${iso(s.lastSeen)}`,
        );
      return { text: lines.join("\n") };
    },
  };

  const queryEvents: AskTool = {
    name: "query_events",
    description:
      "Events the agents reported, newest first: deploy, restart, crash, health_changed, agent_online/agent_offline and others, with their details (exit codes, signals, versions). Filter by service and event type; page with since/until/limit.",
    inputSchema: {
      type: "object",
      properties: {
        service: { type: "string", description: "component name, e.g. frontend (default: all)" },
        event_type: { type: "string", description: "e.g. restart, crash, deploy, health_changed (default: all)" },
        since: { type: "string", description: "how far back: a duration like 30m, 6h, 2d, or an ISO time (default 1h)" },
        until: { type: "string", description: "end of the range: a duration ago or an ISO time (default now)" },
        limit: { type: "integer", minimum: 1, maximum: 200, description: "at most this many events (default 50)" },
      },
      additionalProperties: false,
    },
    async run(args) {
      const a = argsObject(args);
      const at = now();
      const since = timeArg(a, "since", at) ?? new Date(at.getTime() - 3_600_000);
      const until = timeArg(a, "until", at);
      const limit = optInt(a, "limit", 1, 200) ?? 50;
      const service = optString(a, "service");
      const eventType = optString(a, "event_type");
      const res = await call(explain, () =>
        client.queryEvents({
          service: service ?? "",
          eventType: eventType ?? "",
          since: timestampFromDate(since),
          until: until ? timestampFromDate(until) : undefined,
          limit: limit + 1,
        }),
      );
      const more = res.events.length > limit;
      const events = res.events.slice(0, limit);
      const byType = new Map<string, number>();
      for (const e of events) byType.set(e.eventType, (byType.get(e.eventType) ?? 0) + 1);
      const types = [...byType].map(([t, n]) => `${t}×${n}`).join(", ");
      const scope = `${service ? ` for ${service}` : ""}${eventType ? ` of type ${eventType}` : ""} from ${isoDate(since)} to ${isoDate(until ?? at)}`;
      const lines = [`${events.length}${more ? "+" : ""} event(s)${scope}${types ? `: ${types}` : ""}`];
      for (const e of events) lines.push(`${iso(e.timestamp)} ${e.service} ${e.eventType} ${formatDetails(e.detailsJson, 200)}`.trimEnd());
      if (more) lines.push(`(more events match: narrow since/until or raise limit, at most 200)`);
      return { text: lines.join("\n") };
    },
  };

  const queryMetrics: AskTool = {
    name: "query_metrics",
    description:
      "Metric summaries of one component over time (per interval: mean, min, max, p50, p95, p99, count), oldest first, e.g. cpu_percent, memory_bytes, request latency. Without metric: all its metrics. raw=true returns the agents' raw points (about the last hour).",
    inputSchema: {
      type: "object",
      properties: {
        service: { type: "string", description: "component name, e.g. api" },
        metric: { type: "string", description: "metric name, e.g. cpu_percent (default: all)" },
        since: { type: "string", description: "how far back: a duration like 30m, 6h, 2d, or an ISO time (default 1h)" },
        until: { type: "string", description: "end of the range (default now)" },
        interval: { type: "string", enum: ["1m", "5m", "15m", "1h", "1d"], description: "summary interval (default: picked from the range)" },
        raw: { type: "boolean", description: "raw points from the agents instead of summaries" },
        limit: { type: "integer", minimum: 1, maximum: 500, description: "points per series shown (default 30, newest kept)" },
      },
      required: ["service"],
      additionalProperties: false,
    },
    async run(args) {
      const a = argsObject(args);
      const service = optString(a, "service");
      if (!service) throw new ToolInputError("service: is required (see get_status for the names)");
      const at = now();
      const since = timeArg(a, "since", at) ?? new Date(at.getTime() - 3_600_000);
      const until = timeArg(a, "until", at);
      const metric = optString(a, "metric");
      const interval = optString(a, "interval");
      const raw = a.raw === true;
      const limit = optInt(a, "limit", 1, 500) ?? 30;
      const res = await call(explain, () =>
        client.queryMetrics({
          service,
          metricName: metric ?? "",
          since: timestampFromDate(since),
          until: until ? timestampFromDate(until) : undefined,
          interval: interval ?? "",
          raw,
          limit: raw ? limit : 0,
        }),
      );
      return { text: raw ? formatRaw(res, service, limit) : formatSeries(res.series, service, since, until ?? at, limit) };
    },
  };

  return [getStatus, queryEvents, queryMetrics];
}

function formatSeries(series: readonly MetricSeries[], service: string, since: Date, until: Date, limit: number): string {
  const nonEmpty = series.filter((s) => s.points.length > 0);
  const peak = (s: MetricSeries) => `${s.metricName} max ${withUnit(s.metricName, Math.max(...s.points.map((p) => p.max)))}`;
  const named = nonEmpty.slice(0, 6).map(peak).join(", ") + (nonEmpty.length > 6 ? ", …" : "");
  const lines = [
    `${nonEmpty.length} metric series for ${service} from ${isoDate(since)} to ${isoDate(until)}` +
      (nonEmpty.length ? `: ${named}` : " (no data: check the service name with get_status, or a longer since)"),
  ];
  for (const s of nonEmpty) {
    const m = s.metricName;
    const pts = s.points;
    const first = pts[0]!;
    const last = pts[pts.length - 1]!;
    const max = pts.reduce((a, p) => (p.max > a.max ? p : a), first);
    const min = Math.min(...pts.map((p) => p.min));
    const count = pts.reduce((n, p) => n + Number(p.count), 0);
    const mean = count > 0 ? pts.reduce((n, p) => n + p.mean * Number(p.count), 0) / count : pts.reduce((n, p) => n + p.mean, 0) / pts.length;
    lines.push(
      `${m} (${s.interval}, ${pts.length} points ${iso(first.timestamp)}..${iso(last.timestamp)}): mean ${withUnit(m, mean)}, min ${withUnit(m, min)}, ` +
        `max ${withUnit(m, max.max)} at ${iso(max.timestamp)}, p95 first→last ${withUnit(m, first.p95)}→${withUnit(m, last.p95)}, samples ${count}`,
    );
    const shown = pts.slice(-limit);
    if (shown.length < pts.length) lines.push(`  (last ${shown.length} of ${pts.length} points; a coarser interval or a shorter since shows the rest)`);
    lines.push("  time mean min max p50 p95 p99 count");
    for (const p of shown)
      lines.push(`  ${iso(p.timestamp)} ${num(p.mean)} ${num(p.min)} ${num(p.max)} ${num(p.p50)} ${num(p.p95)} ${num(p.p99)} ${p.count}`);
  }
  return lines.join("\n");
}

function formatRaw(res: QueryMetricsResponse, service: string, limit: number): string {
  const pts = res.rawPoints;
  const lines = [`${pts.length} raw point(s) for ${service}${res.truncated ? " (truncated: more matched)" : ""}${res.unavailable.length ? `; not answering: ${res.unavailable.join("; ")}` : ""}`];
  for (const p of pts.slice(-limit)) {
    const labels = Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(",");
    lines.push(`${iso(p.timestamp)} ${p.metricName} ${num(p.value)} ${p.agentId}${labels ? ` {${labels}}` : ""}`);
  }
  return lines.join("\n");
}
