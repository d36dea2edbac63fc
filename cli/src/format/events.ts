// `coral events`: TIME SERVICE TYPE DETAILS, newest first (the colony's order).
import type { QueryEventsResponse } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { clip, colors, columns, formatTime, timeHeader, type Colors, type FormatOptions } from "./text.ts";

export const noEventsHint = "No events in this time range. Try a longer --since, or check the component name with: coral status";

/** details_json as `key=value` pairs ("exit_code=137 signal=SIGKILL"), the raw text when it is not a JSON object. */
export function formatDetails(detailsJson: string, max = 80): string {
  if (!detailsJson.trim()) return "";
  let parsed: unknown;
  try {
    parsed = JSON.parse(detailsJson);
  } catch {
    return clip(detailsJson.replace(/\s+/g, " "), max);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return clip(JSON.stringify(parsed), max);
  const parts = Object.entries(parsed as Record<string, unknown>).map(([key, value]) => {
    const text = typeof value === "string" ? (/[\s"=]/.test(value) || value === "" ? JSON.stringify(value) : value) : JSON.stringify(value);
    return `${key}=${text}`;
  });
  return clip(parts.join(" "), max);
}

function paintType(c: Colors, type: string): string {
  if (/crash|oom|unhealthy|offline|fail|error/i.test(type)) return c.red(type);
  if (/restart|degraded|expired|warn/i.test(type)) return c.yellow(type);
  if (/deploy|online|start/i.test(type)) return c.green(type);
  return type;
}

export function formatEvents(res: QueryEventsResponse, options: FormatOptions): string {
  const c = colors(options.color);
  if (res.events.length === 0) return noEventsHint;
  const rows = res.events.map((e) => [formatTime(e.timestamp, options), e.service || "-", paintType(c, e.eventType || "-"), formatDetails(e.detailsJson)]);
  const [head, ...lines] = columns([timeHeader(options), "SERVICE", "TYPE", "DETAILS"], rows);
  return [c.bold(head!), ...lines].join("\n");
}
