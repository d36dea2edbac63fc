// `coral audit exec`: TIME WHO SERVICE WHERE OUTCOME EXIT DURATION COMMAND.
import type { ExecRecord } from "@coral/proto/gen/coral/colony/v1/exec_pb";
import { clip, colors, columns, formatTime, type FormatOptions } from "./text.ts";

/** The command line as a shell would need it typed. */
export function shellLine(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(" ");
}

export function formatExecRecords(records: readonly ExecRecord[], options: FormatOptions): string {
  if (records.length === 0) return "No commands were run with coral exec.";
  const c = colors(options.color);
  const outcome = (r: ExecRecord) => {
    const text = r.outcome.replace("_", " ");
    return r.outcome === "exited" ? (r.exitCode === 0 ? c.green(text) : c.yellow(text)) : r.outcome === "running" ? c.cyan(text) : c.red(text);
  };
  const rows = records.map((r) => [
    formatTime(r.startedAt, options),
    r.actor,
    r.serviceName,
    r.host ? "host" : "namespaces",
    outcome(r),
    ["exited", "timed_out", "truncated"].includes(r.outcome) ? String(r.exitCode) : "-",
    r.durationMs ? `${(r.durationMs / 1000).toFixed(1)}s` : "-",
    (r.kind === "shell" ? `shell (replay: coral audit replay ${r.execId})` : clip(shellLine(r.argv), 80)) + (r.error ? `  (${clip(r.error, 80)})` : ""),
  ]);
  return columns(["TIME", "WHO", "SERVICE", "WHERE", "OUTCOME", "EXIT", "DURATION", "COMMAND"].map((h) => c.bold(h)), rows).join("\n");
}
