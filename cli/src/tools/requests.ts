// coral_query_requests: RED per route of a component (requests, 4xx, 5xx,
// rate, latency percentiles), as `coral requests <service> --since` shows
// it: the same rows (@coral/common/request-rows) from the same metric summaries.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import { requestRows, type RequestRow } from "@coral/common/request-rows";
import { defineTool, fitLines, iso, num, textBudgetChars, timeArg, timeRange, toolArgs, serviceArg } from "./common.ts";
import { ToolError, type ToolContext } from "./types.ts";

const pct = (part: number, whole: number) => (whole > 0 ? `${num((100 * part) / whole)}%` : "0%");

function routeLine(r: RequestRow): string {
  return (
    `- ${r.method} ${r.route}: ${r.requests} requests, ${r["4xx"]} 4xx, ${r["5xx"]} 5xx (${pct(r["5xx"], r.requests)} errors), ${num(r.ratePerSec)}/s, ` +
    `p50 ${num(r.p50Ms)} ms, p95 ${num(r.p95Ms)} ms, p99 ${num(r.p99Ms)} ms (${r.source})`
  );
}

/** Throws not_found naming the known components when `service` is none of them. */
export async function knownComponent(ctx: ToolContext, service: string): Promise<void> {
  const names = [...new Set((await ctx.colony.listServices({})).services.map((s) => s.name))].sort();
  if (!names.includes(service))
    throw new ToolError(`no component named "${service}": ${names.length ? `the colony knows ${names.join(", ")}` : "no components are connected yet"}`, "not_found");
}

export const queryRequestsTool = defineTool({
  name: "coral_query_requests",
  title: "Requests per route (RED)",
  description:
    "HTTP requests of one component per method and route (normalised, e.g. /users/{id}): request count, 4xx, 5xx, error share, rate per second " +
    "and p50/p95/p99 latency in ms over a time range, busiest first, counted by the agent's eBPF tracer or the app's Coral SDK middleware " +
    "(source). Use it for 'which endpoint fails or is slow'; then coral_query_traffic for sampled requests of a route.",
  inputSchema: toolArgs({
    service: serviceArg(),
    since: timeArg('Start of the range: ISO time or a duration ago like "10m" (default 10m)').optional(),
    until: timeArg("End of the range: ISO time or a duration ago (default now)").optional(),
    route: z.string().min(1).max(256).optional().describe("Only routes containing this text, e.g. /checkout or {id}"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const range = timeRange(ctx, args.since, args.until, "10m");
    const res = await ctx.colony.queryMetrics({
      service: args.service,
      metricName: "",
      since: timestampFromDate(range.since),
      until: timestampFromDate(range.until),
      interval: "",
      raw: false,
      limit: 0,
    });
    if (res.series.length === 0) await knownComponent(ctx, args.service);
    const rows = requestRows(res, range.until.getTime() - range.since.getTime(), range.until.getTime()).filter((r) => !args.route || r.route.includes(args.route));
    const totals = rows.reduce((t, r) => ({ requests: t.requests + r.requests, "4xx": t["4xx"] + r["4xx"], "5xx": t["5xx"] + r["5xx"] }), { requests: 0, "4xx": 0, "5xx": 0 });
    const data = { service: args.service, since: iso(range.since), until: iso(range.until), totals, routes: rows };
    const head = `${args.service}: requests ${iso(range.since)} → ${iso(range.until)}${args.route ? ` on routes containing ${args.route}` : ""}`;
    if (rows.length === 0)
      return {
        text:
          `${head}: none seen. Requests are counted by the agent's eBPF tracer (agent as root with bpftrace, plaintext HTTP/1.x) or by the app's ` +
          `Coral SDK request middleware; try a longer since (e.g. since=1h)${args.route ? " or another route" : ""}, or coral_query_metrics for the component's other metrics.`,
        data,
      };
    const lines = [
      `${head}: ${totals.requests} requests on ${rows.length} route(s), ${totals["4xx"]} 4xx, ${totals["5xx"]} 5xx (${pct(totals["5xx"], totals.requests)} errors), busiest first. ` +
        "Latency in ms: exact within one summary interval, over several their count-weighted mean.",
    ];
    const { shown, omitted } = fitLines(rows.map(routeLine), textBudgetChars - lines[0]!.length - 200);
    lines.push(...shown);
    if (omitted > 0) lines.push(`… ${omitted} quieter routes not shown: ask for some with route=<text>.`);
    return { text: lines.join("\n"), data };
  },
});
