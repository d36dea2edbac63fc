// The CPU profile tool: "why is api using CPU" answered with the hottest
// functions and stacks of a short profile. Profiling samples the app's
// processes: the colony requires an admin token and audits it.
import { z } from "zod";
import { flameTree, topFunctions, type FlameNode } from "../profile/analyze.ts";
import { defineTool, durationArg, durationMs } from "./common.ts";
import { ToolError, type ToolContext } from "./types.ts";

function profileClient(ctx: ToolContext) {
  if (!ctx.profile) throw new ToolError("profiling is not available through this connection", "unavailable");
  return ctx.profile;
}

/** The heaviest root-to-leaf paths of the flame tree (each time following the largest child), with their share. */
export function hottestPaths(root: FlameNode, count: number): { path: string[]; samples: number }[] {
  const paths: { path: string[]; samples: number }[] = [];
  const walk = (node: FlameNode, path: string[]) => {
    const here = [...path, node.kernel ? `${node.name} [k]` : node.name];
    if (node.children.length === 0) {
      paths.push({ path: here, samples: node.value });
      return;
    }
    const inChildren = node.children.reduce((n, c) => n + c.value, 0);
    if (node.value > inChildren) paths.push({ path: here, samples: node.value - inChildren });
    for (const c of node.children) walk(c, here);
  };
  for (const c of root.children) walk(c, []);
  return paths.sort((a, b) => b.samples - a.samples).slice(0, count);
}

export const profileCpuTool = defineTool({
  name: "coral_profile_cpu",
  title: "Where a component spends its CPU",
  description:
    "Takes a CPU profile of a component's processes for a few seconds (eBPF sampling of user and kernel stacks on its agent) and answers with " +
    "the functions with the most self time and the hottest stacks. Use it to explain high CPU. Needs an admin token; audited.",
  inputSchema: z
    .object({
      service: z.string().min(1).describe("The component, as coral_get_status names it"),
      duration: durationArg("How long to sample (default 10s)", 60_000, "1m").optional(),
      top: z.number().int().min(1).max(50).optional().describe("How many functions and stacks (default 10)"),
    })
    .strict(),
  readOnly: false,
  async run(ctx, args) {
    const res = await profileClient(ctx).profileCpu({ serviceName: args.service, durationMs: args.duration ? durationMs(args.duration) : 10_000, hz: 99 });
    const p = res.profile!;
    const total = Number(p.totalSamples);
    const top = args.top ?? 10;
    const pct = (n: number) => (total > 0 ? Math.round((1000 * n) / total) / 10 : 0);
    const functions = topFunctions(p).slice(0, top).map((f) => ({ function: f.function, module: f.module, kernel: f.kernel, selfPercent: pct(f.self), totalPercent: pct(f.total), samples: f.self }));
    const stacks = hottestPaths(flameTree(p), top).map((s) => ({ stack: s.path.join(" → "), percent: pct(s.samples), samples: s.samples }));
    const head = `${args.service}: ${total} samples at ${p.hz} Hz over ${p.durationMs / 1000}s in ${p.pids.length} process(es) (${p.method}).`;
    const text = [
      head,
      ...(total === 0 ? ["No samples: the processes were idle while profiled."] : []),
      ...(functions.length ? ["Most self time:", ...functions.map((f) => `- ${f.selfPercent}% self, ${f.totalPercent}% total: ${f.function}${f.kernel ? " [kernel]" : ""} (${f.module})`)] : []),
      ...(stacks.length ? ["Hottest stacks (root → leaf):", ...stacks.map((s) => `- ${s.percent}%: ${s.stack}`)] : []),
      ...(p.note ? [`Note: ${p.note}`] : []),
    ].join("\n");
    return { text, data: { service: args.service, agentId: res.agentId, totalSamples: total, hz: p.hz, durationMs: p.durationMs, method: p.method, note: p.note, functions, stacks } };
  },
});
