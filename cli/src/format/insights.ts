// `coral insights`, as seed 001 shows it:
//
//   INSIGHTS (2 active)
//   ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━
//
//   ⚠️  ANOMALY DETECTED                       [High Priority]
//   ────────────────────────────────────────────────────────
//   Created: 2 hours ago
//   Service: api
//   Issue: api health check latency 2.3× its usual (45 ms → 105 ms)
//   …
//   Dismiss: coral insights dismiss 12
import type { Insight, ListInsightsResponse } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import pc from "picocolors";

export interface InsightsFormatOptions {
  color: boolean;
  /** For "created … ago" (default: now). */
  now?: Date;
  /** The list includes dismissed and expired insights (--all). */
  all?: boolean;
}

const width = 56;

const headings: Record<string, string> = {
  metric_shift: "ANOMALY DETECTED",
  restart_loop: "RESTART LOOP",
  health_flapping: "HEALTH FLAPPING",
  connection_change: "CONNECTION CHANGE",
  version_degradation: "DEGRADED AFTER DEPLOY",
};

const typeHeadings: Record<string, string> = {
  anomaly: "ANOMALY DETECTED",
  pattern: "PATTERN DETECTED",
  recommendation: "RECOMMENDATION",
};

/** "just now", "1 minute ago", "2 hours ago", "3 days ago". */
export function timeAgo(at: Date, now: Date): string {
  const s = Math.max(0, Math.round((now.getTime() - at.getTime()) / 1000));
  const unit = (n: number, one: string) => `${n} ${one}${n === 1 ? "" : "s"} ago`;
  if (s < 60) return "just now";
  if (s < 3600) return unit(Math.floor(s / 60), "minute");
  if (s < 86_400) return unit(Math.floor(s / 3600), "hour");
  return unit(Math.floor(s / 86_400), "day");
}

function marker(priority: string): string {
  return priority === "high" ? "⚠️ " : priority === "medium" ? "ℹ️ " : "• ";
}

function priorityLabel(priority: string): string {
  return `[${priority ? priority[0]!.toUpperCase() + priority.slice(1) : "Unknown"} Priority]`;
}

function paint(c: ReturnType<typeof pc.createColors>, priority: string, text: string): string {
  return priority === "high" ? c.red(text) : priority === "medium" ? c.yellow(text) : c.gray(text);
}

function card(i: Insight, options: InsightsFormatOptions, now: Date): string[] {
  const c = pc.createColors(options.color);
  const heading = headings[i.detector] ?? typeHeadings[i.type] ?? "INSIGHT";
  const lines = [
    paint(c, i.priority, `${marker(i.priority)} ${heading.padEnd(38)} ${priorityLabel(i.priority)}`),
    "─".repeat(width),
    `Created: ${i.createdAt ? timeAgo(timestampDate(i.createdAt), now) : "-"}`,
  ];
  const others = i.affectedServices.filter((s) => s !== i.service);
  const service = i.service || i.affectedServices[0] || "all";
  lines.push(`Service: ${service}${others.length ? ` (also affects ${others.join(", ")})` : ""}`);
  if (i.status !== "active") lines.push(`Status: ${i.status}`);
  lines.push(`Issue: ${c.bold(i.title)}`);
  if (i.summary) lines.push("", i.summary);
  if (i.evidenceLines.length) lines.push("", "Evidence:", ...i.evidenceLines.map((l) => `  - ${l}`));
  if (i.recommendations.length) lines.push("", "Recommendation:", ...i.recommendations.map((r) => `  → ${r}`));
  const seen = i.lastSeen ? timeAgo(timestampDate(i.lastSeen), now) : "-";
  lines.push("", c.gray(`Last seen: ${seen} (${i.occurrences}× so far), confidence ${Math.round(i.confidence * 100)}%`));
  if (i.status !== "dismissed") lines.push(`Dismiss: coral insights dismiss ${i.id}`);
  return lines;
}

export const noInsightsHint = "No active insights. The colony checks every minute; see dismissed and expired ones with: coral insights --all";

export function formatInsights(res: ListInsightsResponse, options: InsightsFormatOptions): string {
  const c = pc.createColors(options.color);
  const now = options.now ?? new Date();
  const counts = new Map<string, number>();
  for (const i of res.insights) counts.set(i.status, (counts.get(i.status) ?? 0) + 1);
  const active = counts.get("active") ?? 0;
  const parts = [`${active} active`];
  if (options.all) for (const s of ["dismissed", "expired"]) if (counts.get(s)) parts.push(`${counts.get(s)} ${s}`);
  const head = [c.bold(`INSIGHTS (${parts.join(", ")})`), "━".repeat(width)];
  if (res.insights.length === 0) return [...head, "", options.all ? "No insights yet. The colony checks every minute." : noInsightsHint].join("\n");
  const cards = res.insights.map((i) => card(i, options, now).join("\n"));
  return [...head, "", cards.join("\n\n\n")].join("\n");
}
