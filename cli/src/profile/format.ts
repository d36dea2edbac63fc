// The text `coral profile cpu` prints: what was sampled, the hottest
// functions by self time, and the agent's note when something limited it.
import type { ProfileCpuResponse } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import { colors, columns, plural } from "../format/text.ts";
import { topFunctions } from "./analyze.ts";

const percent = (n: number, total: number) => (total > 0 ? `${((100 * n) / total).toFixed(1)}%` : "–");

export function formatProfile(res: ProfileCpuResponse, options: { top: number; color: boolean; width?: number }): string {
  const c = colors(options.color);
  const p = res.profile!;
  const total = Number(p.totalSamples);
  const seconds = (p.durationMs / 1000).toFixed(p.durationMs % 1000 ? 1 : 0);
  const lines = [
    c.bold(`CPU profile of ${res.serviceName}`) +
      c.dim(` (agent ${res.agentId}, ${p.method || "ebpf"}): ${total.toLocaleString("en-US")} ${total === 1 ? "sample" : "samples"} at ${p.hz} Hz over ${seconds}s, ${plural(p.pids.length, "process", "processes")}`),
  ];
  if (total === 0) {
    lines.push("", "No samples: the service's processes did not run on a CPU while it was profiled.");
  } else {
    const top = topFunctions(p).slice(0, options.top);
    const width = options.width ?? 120;
    // The module column gets what is left of the terminal; long paths keep their end (the file name).
    const moduleWidth = Math.max(12, width - 62);
    const shorten = (m: string) => (m.length <= moduleWidth ? m : `…${m.slice(m.length - moduleWidth + 1)}`);
    const rows = top.map((f) => [percent(f.self, total), percent(f.total, total), f.self.toLocaleString("en-US"), f.function + (f.kernel ? c.dim(" [k]") : ""), c.dim(shorten(f.module))]);
    lines.push("", ...columns(["SELF", "TOTAL", "SAMPLES", "FUNCTION", "MODULE"], rows));
    const all = topFunctions(p).length;
    if (all > top.length) lines.push(c.dim(`… ${all - top.length} more functions (--top ${Math.min(all, options.top * 2)}, or -o profile.svg for the whole picture)`));
  }
  if (p.note) lines.push("", `${c.yellow("Note:")} ${p.note}`);
  return lines.join("\n");
}
