// coral_get_insights: what the colony's detectors found (metric shifts,
// restart loops, health flapping, connection changes, degradation after a
// deploy), with the numbers behind each.
import { toJson } from "@bufbuild/protobuf";
import { ListInsightsResponseSchema } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { z } from "zod";
import { ago, clock, defineTool, fitLines, textBudgetChars, toolArgs, tsDate } from "./common.ts";

export const getInsightsTool = defineTool({
  name: "coral_get_insights",
  title: "Insights",
  description:
    "Findings of Coral's detectors, newest first: metric shifts against learned baselines, restart loops, health flapping, " +
    "new or vanished connections after a deploy, and degradation after a version change; each with priority, affected services, " +
    "confidence and the evidence (numbers) it rests on. Use it early when asked what is wrong.",
  inputSchema: toolArgs({
    service: z.string().min(1).optional().describe("Only insights affecting this component"),
    status: z.enum(["active", "dismissed", "expired", "all"]).optional().describe("Default: active"),
    limit: z.number().int().min(1).max(200).optional().describe("At most this many (default 20)"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const res = await ctx.colony.listInsights({ status: args.status ?? "active", service: args.service ?? "", limit: args.limit ?? 20 });
    const now = clock(ctx);
    const rows = res.insights.map((i) => {
      const seen = tsDate(i.lastSeen);
      return (
        `- [${i.priority}] #${i.id} ${i.title} (${i.type}; ${i.affectedServices.join(", ") || "all"}; confidence ${Math.round(i.confidence * 100)}%` +
        `${seen ? `; seen ${ago(now - seen.getTime())}` : ""})\n  ${i.summary}\n  evidence: ${i.evidenceJson}`
      );
    });
    const header = `${res.insights.length} ${args.status ?? "active"} insight${res.insights.length === 1 ? "" : "s"}${args.service ? ` for ${args.service}` : ""}.`;
    const { shown, omitted } = fitLines(rows, textBudgetChars - header.length - 200);
    const lines = [header, ...shown];
    if (omitted > 0) lines.push(`… ${omitted} more not shown: narrow with service=<name> or a smaller limit.`);
    return { text: lines.join("\n"), data: toJson(ListInsightsResponseSchema, res) };
  },
});
