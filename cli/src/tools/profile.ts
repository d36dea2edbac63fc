// The CPU profile tool: "why is api using CPU" answered with the hottest
// functions and stacks of a short profile. Profiling samples the app's
// processes: the colony requires an admin token and audits it. With `since`
// it reads the always-on profiler's stored stacks instead (read data, nothing
// sampled), and with `compare` what changed against an earlier window.
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { CpuProfile } from "@coral/proto/gen/coral/agent/v1/profile_pb";
import { z } from "zod";
import { flameTree, topFunctions, type FlameNode } from "../profile/analyze.ts";
import { diffProfiles } from "../profile/diff.ts";
import { clock, defineTool, durationArg, durationMs } from "./common.ts";
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

const maxStoredMs = 31 * 24 * 3600_000;
const round1 = (n: number) => Math.round(10 * n) / 10;

/** The top functions and hottest stacks of a profile, as percentages of its samples. */
function summary(p: CpuProfile, top: number) {
  const total = Number(p.totalSamples);
  const pct = (n: number) => (total > 0 ? round1((100 * n) / total) : 0);
  const functions = topFunctions(p).slice(0, top).map((f) => ({ function: f.function, module: f.module, kernel: f.kernel, selfPercent: pct(f.self), totalPercent: pct(f.total), samples: f.self }));
  const stacks = hottestPaths(flameTree(p), top).map((s) => ({ stack: s.path.slice(1).join(" → "), percent: pct(s.samples), samples: s.samples }));
  return { functions, stacks };
}

/** `since` (and `compare`): the colony's stored minutes, merged; no process is touched. */
async function stored(ctx: ToolContext, args: { service: string; since: number; compare: number | undefined; top: number }) {
  const now = clock(ctx);
  const start = new Date(now - args.since);
  const end = new Date(now);
  const baseline = args.compare === undefined ? undefined : { start: new Date(start.getTime() - args.compare), end: new Date(end.getTime() - args.compare) };
  const res = await profileClient(ctx).queryCpuProfile({
    serviceName: args.service,
    start: timestampFromDate(start),
    end: timestampFromDate(end),
    ...(baseline ? { baselineStart: timestampFromDate(baseline.start), baselineEnd: timestampFromDate(baseline.end) } : {}),
  });
  const p = res.profile!;
  const total = Number(p.totalSamples);
  const window = { start: start.toISOString(), end: end.toISOString() };
  if (res.minutes === 0)
    return {
      text: `${args.service}: no stored profile from ${window.start} to ${window.end}; the always-on profiler may be off (coral connect --profile-hz). A new profile: call without since.`,
      data: { service: args.service, window, minutes: 0 },
    };
  const head = `${args.service}: ${total} samples over ${res.minutes} stored minute(s) at ${p.hz} Hz (always-on), ${window.start} to ${window.end}.`;
  if (res.baseline && baseline) {
    const b = res.baseline;
    const diff = diffProfiles(b, p, args.top).map((r) => ({ function: r.function, module: r.module, kernel: r.kernel, beforePercent: round1(r.beforePercent), afterPercent: round1(r.afterPercent), delta: round1(r.delta) }));
    const text = [
      head,
      res.baselineMinutes === 0
        ? "Baseline: no stored minutes, nothing to compare with."
        : `Baseline: ${Number(b.totalSamples)} samples over ${res.baselineMinutes} minute(s), ${baseline.start.toISOString()} to ${baseline.end.toISOString()}.`,
      ...(res.baselineMinutes > 0 && diff.length
        ? ["Self time share, before → after (percentage points; hotter first):", ...diff.map((d) => `- ${d.delta > 0 ? "+" : ""}${d.delta} pts: ${d.function}${d.kernel ? " [kernel]" : ""} ${d.beforePercent}% → ${d.afterPercent}%`)]
        : []),
    ].join("\n");
    return { text, data: { service: args.service, window, minutes: res.minutes, baselineMinutes: res.baselineMinutes, totalSamples: total, baselineSamples: Number(b.totalSamples), hz: p.hz, diff } };
  }
  const { functions, stacks } = summary(p, args.top);
  const text = [
    head,
    ...(functions.length ? ["Most self time:", ...functions.map((f) => `- ${f.selfPercent}% self, ${f.totalPercent}% total: ${f.function}${f.kernel ? " [kernel]" : ""} (${f.module})`)] : []),
    ...(stacks.length ? ["Hottest stacks (root → leaf):", ...stacks.map((s) => `- ${s.percent}%: ${s.stack}`)] : []),
  ].join("\n");
  return { text, data: { service: args.service, window, minutes: res.minutes, totalSamples: total, hz: p.hz, method: p.method, functions, stacks } };
}

export const profileCpuTool = defineTool({
  name: "coral_profile_cpu",
  title: "Where a component spends its CPU",
  description:
    "Takes a CPU profile of a component's processes for a few seconds (eBPF sampling of user and kernel stacks on its agent) and answers with " +
    "the functions with the most self time and the hottest stacks. Use it to explain high CPU. Needs an admin token; audited. " +
    "With `since` it instead reads the always-on profiler's stored stacks for that past window (no new profile, read access is enough), " +
    "and with `compare` also the same-length window that much earlier, answering which functions' share of CPU grew or shrank.",
  inputSchema: z
    .object({
      service: z.string().min(1).describe("The component, as coral_get_status names it"),
      duration: durationArg("How long to sample (default 10s)", 60_000, "1m").optional(),
      top: z.number().int().min(1).max(50).optional().describe("How many functions and stacks (default 10)"),
      since: durationArg("Read the always-on profiler's stored stacks from this long ago to now instead of profiling (e.g. 1h)", maxStoredMs, "31d").optional(),
      compare: durationArg("With since: compare with the same window this much earlier (e.g. 1d)", maxStoredMs, "31d").optional(),
    })
    .strict()
    .refine((a) => !(a.duration && a.since), { message: "duration and since: pick one (since reads what was already sampled)", path: ["since"] })
    .refine((a) => !a.compare || a.since, { message: "compare needs since", path: ["compare"] }),
  readOnly: false,
  async run(ctx, args) {
    if (args.since) return stored(ctx, { service: args.service, since: durationMs(args.since), compare: args.compare ? durationMs(args.compare) : undefined, top: args.top ?? 10 });
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
