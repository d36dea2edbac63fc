// coral_query_events: deploys, restarts, exits, health changes and the
// colony's agent state changes, newest first, paged by time.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { compactDetails, defineTool, toolArgs, fitLines, iso, parseDetails, textBudgetChars, timeArg, timeRange, tsDate } from "./common.ts";

export const eventTypesHint =
  "deploy, restart, process_exited, process_found, health_changed, metrics_scrape_failed, and the colony's agent_online, agent_degraded, agent_offline, agent_expired";

export const queryEventsTool = defineTool({
  name: "coral_query_events",
  title: "Query events",
  description:
    "Operational events, newest first: deploys, restarts, process exits, health changes, and agent state changes (agent_online, agent_offline, ...). " +
    "Filter by component, type and time range. Answers list at most `limit` events and say how to page to older ones.",
  inputSchema: toolArgs({
    service: z.string().min(1).optional().describe("Only this component, e.g. api"),
    event_type: z.string().min(1).optional().describe(`Only this event type: ${eventTypesHint}`),
    since: timeArg('Start of the range: ISO time or a duration ago like "1h" (default 1h)').optional(),
    until: timeArg("End of the range (inclusive): ISO time or a duration ago (default now)").optional(),
    limit: z.number().int().min(1).max(500).default(50).describe("At most this many events (1-500, default 50)"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const range = timeRange(ctx, args.since, args.until, "1h");
    const res = await ctx.colony.queryEvents({
      service: args.service ?? "",
      eventType: args.event_type ?? "",
      since: timestampFromDate(range.since),
      until: timestampFromDate(range.until),
      limit: args.limit + 1,
    });
    const more = res.events.length > args.limit;
    const events = res.events.slice(0, args.limit);
    const filters = [args.service ? `service=${args.service}` : "", args.event_type ? `event_type=${args.event_type}` : ""].filter(Boolean).join(", ");
    const lines = [`Events ${iso(range.since)} → ${iso(range.until)}${filters ? ` (${filters})` : ""}: ${events.length}${more ? "+" : ""} found, newest first.`];
    if (events.length === 0) {
      lines.push("No events in this range. Try a longer since (e.g. since=24h), or check the component name with coral_get_status.");
      return { text: lines.join("\n"), data: { since: iso(range.since), until: iso(range.until), events: [], more: false } };
    }
    const byType = new Map<string, number>();
    for (const e of events) byType.set(e.eventType, (byType.get(e.eventType) ?? 0) + 1);
    lines.push(`By type: ${[...byType].sort((a, b) => b[1] - a[1]).map(([t, n]) => `${t} ${n}`).join(", ")}.`);
    const rows = events.map((e) => {
      const details = compactDetails(e.detailsJson);
      return `${iso(e.timestamp)} ${e.service || "-"} ${e.eventType}${details ? ` ${details}` : ""}`;
    });
    const { shown, omitted } = fitLines(rows, textBudgetChars - 600);
    lines.push(...shown);
    const oldestShown = events[shown.length - 1];
    if (omitted > 0 || more)
      lines.push(
        `More events are older than the last one shown${omitted > 0 ? ` (${omitted} of this answer not shown to keep it short)` : ""}: ` +
          `call again with until=${iso(oldestShown?.timestamp)} (events at exactly that time repeat), or narrow service/event_type.`,
      );
    const data = {
      since: iso(range.since),
      until: iso(range.until),
      more: more || omitted > 0,
      events: events.map((e) => ({
        eventId: e.eventId,
        timestamp: tsDate(e.timestamp)?.toISOString(),
        service: e.service,
        eventType: e.eventType,
        details: parseDetails(e.detailsJson),
      })),
    };
    return { text: lines.join("\n"), data };
  },
});
