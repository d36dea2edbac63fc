// coral_get_topology: which components call which, from the connections the
// agents observed, with external dependencies.
import { z } from "zod";
import { clock, defineTool, toolArgs, fitLines, iso, textBudgetChars, tsDate } from "./common.ts";

export const getTopologyTool = defineTool({
  name: "coral_get_topology",
  title: "Service topology",
  description:
    "Observed service dependencies: edges 'from → to' between components (and to external addresses) with connection counts and when each " +
    "connection was first and last seen. Use it to see what depends on what, e.g. which callers a slow service affects.",
  inputSchema: toolArgs({
    service: z.string().min(1).optional().describe("Only edges from or to this component"),
    include_external: z.boolean().default(true).describe("Include connections to addresses no agent owns (databases, APIs); default true"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const res = await ctx.colony.getTopology({});
    const now = clock(ctx);
    const edges = res.edges
      .filter((e) => args.include_external || !e.external)
      .filter((e) => !args.service || e.fromService === args.service || e.toService === args.service);
    const names = new Set(res.services.map((s) => s.name));
    const lines: string[] = [];
    if (args.service && !names.has(args.service) && edges.length === 0)
      lines.push(`No component named "${args.service}" and no edges to it. Known components: ${[...names].join(", ") || "none"}.`);
    const external = edges.filter((e) => e.external).length;
    lines.push(
      `${res.services.length} components, ${edges.length} connection edge${edges.length === 1 ? "" : "s"} (${external} external)${args.service ? ` involving ${args.service}` : ""}.`,
    );
    const rows = edges.map((e) => {
      const last = tsDate(e.lastObserved);
      const stale = last && now - last.getTime() > 10 * 60_000 ? " (not seen for a while)" : "";
      return `- ${e.fromService} → ${e.toService}${e.external ? " (external)" : ""}: ${e.protocol || "tcp"}, peak ${e.connectionCount} connection${e.connectionCount === 1n ? "" : "s"}${e.openedTotal > 0n ? `, ${e.openedLastMinute} opened in the last minute (${e.openedTotal} in all)` : ""}, first seen ${iso(e.firstObserved)}, last seen ${iso(e.lastObserved)}${stale}`;
    });
    const { shown, omitted } = fitLines(rows, textBudgetChars - 1200);
    lines.push(...shown);
    if (omitted > 0) lines.push(`… ${omitted} more edges not shown: call again with service=<name> or include_external=false.`);
    const involved = new Set(edges.flatMap((e) => [e.fromService, e.toService]));
    const isolated = res.services.filter((s) => !involved.has(s.name) && (!args.service || s.name === args.service));
    if (!args.service && isolated.length) lines.push(`Components with no observed connections: ${isolated.map((s) => s.name).join(", ")}.`);
    lines.push(`Components: ${res.services.map((s) => `${s.name} (${s.status})`).join(", ") || "none"}.`);
    const data = {
      services: res.services.map((s) => ({ name: s.name, agentId: s.agentId, status: s.status, health: s.health, version: s.version, port: s.port })),
      edges: edges.map((e) => ({
        from: e.fromService,
        to: e.toService,
        protocol: e.protocol,
        external: e.external,
        connectionCount: Number(e.connectionCount),
        openedTotal: Number(e.openedTotal),
        openedLastMinute: Number(e.openedLastMinute),
        firstObserved: iso(e.firstObserved),
        lastObserved: iso(e.lastObserved),
      })),
    };
    return { text: lines.join("\n"), data };
  },
});
