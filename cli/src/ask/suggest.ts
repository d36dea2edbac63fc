// The `coral ...` command lines equivalent to the tool calls of an answer,
// so a person can re-run the queries the answer rests on.
import { parseDuration } from "@coral/colony";
import type { AskTool, EvidenceItem } from "./types.ts";

/** Quotes a word for a POSIX shell when it needs it. */
export function shellWord(value: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

function str(args: Record<string, unknown>, key: string): string | undefined {
  const v = args[key];
  return typeof v === "string" && v.trim() !== "" ? v.trim() : typeof v === "number" ? String(v) : undefined;
}

/** A `since` argument as a --since duration: "1h" stays, an ISO time becomes the minutes since it. */
function sinceFlag(value: string | undefined, now: Date): string | undefined {
  if (!value) return undefined;
  if (!("error" in parseDuration(value))) return value;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return `${Math.max(1, Math.ceil((now.getTime() - at) / 60_000))}m`;
}

/**
 * The command for a tool call of the default tools, also under the MCP
 * names (coral_get_status, ...). Undefined for tools it does not know.
 */
export function suggestCommand(toolName: string, rawArgs: unknown, now = new Date()): string | undefined {
  const args = (rawArgs && typeof rawArgs === "object" ? rawArgs : {}) as Record<string, unknown>;
  const name = toolName.replace(/^coral_/, "");
  const parts = ["coral"];
  const flag = (f: string, v: string | undefined) => {
    if (v !== undefined) parts.push(f, shellWord(v));
  };
  switch (name) {
    case "get_status":
      parts.push("status");
      break;
    case "get_topology":
      parts.push("topology");
      break;
    case "query_events":
      parts.push("events");
      flag("--service", str(args, "service"));
      flag("--type", str(args, "event_type") ?? str(args, "type"));
      flag("--since", sinceFlag(str(args, "since"), now));
      flag("--limit", str(args, "limit"));
      break;
    case "query_metrics": {
      const service = str(args, "service");
      if (!service) return undefined;
      parts.push("metrics", shellWord(service));
      const metric = str(args, "metric") ?? str(args, "metric_name");
      if (metric) parts.push(shellWord(metric));
      flag("--since", sinceFlag(str(args, "since"), now));
      flag("--interval", str(args, "interval"));
      if (args.raw === true) {
        parts.push("--raw");
        flag("--limit", str(args, "limit"));
      }
      break;
    }
    case "get_history":
      if (!str(args, "service")) return undefined;
      parts.push("history", shellWord(str(args, "service")!));
      break;
    case "get_insights":
      parts.push("insights");
      break;
    case "query_requests": {
      const service = str(args, "service");
      if (!service) return undefined;
      parts.push("requests", shellWord(service));
      flag("--since", sinceFlag(str(args, "since"), now));
      break;
    }
    case "query_traffic": {
      const service = str(args, "service");
      if (!service) return undefined;
      parts.push("traffic", shellWord(service));
      flag("--path", str(args, "path"));
      flag("--method", str(args, "method"));
      flag("--status", str(args, "status"));
      flag("--since", sinceFlag(str(args, "since"), now));
      flag("--limit", str(args, "limit"));
      break;
    }
    case "query_sql":
      if (!str(args, "sql")) return undefined;
      parts.push("query", shellWord(str(args, "sql")!));
      flag("--agent", str(args, "service"));
      flag("--max-rows", str(args, "max_rows"));
      break;
    case "get_sql_schema":
      parts.push("query", "--schema");
      flag("--agent", str(args, "service"));
      break;
    case "get_traffic_sample":
      if (!str(args, "id")) return undefined;
      parts.push("traffic", "show", shellWord(str(args, "id")!));
      break;
    case "query_traces":
      parts.push("traces");
      flag("--service", str(args, "service"));
      flag("--operation", str(args, "operation"));
      flag("--min-duration", str(args, "min_duration_ms") && `${str(args, "min_duration_ms")}ms`);
      if (args.errors_only === true) parts.push("--errors");
      flag("--since", sinceFlag(str(args, "since"), now));
      flag("--limit", str(args, "limit"));
      break;
    case "get_trace":
      if (!str(args, "trace_id")) return undefined;
      parts.push("traces", "show", shellWord(str(args, "trace_id")!));
      break;
    case "query_logs":
      parts.push("logs");
      flag("--service", str(args, "service"));
      flag("--severity", str(args, "severity"));
      flag("--grep", str(args, "grep"));
      flag("--trace", str(args, "trace_id"));
      flag("--since", sinceFlag(str(args, "since"), now));
      flag("--limit", str(args, "limit"));
      break;
    default:
      return undefined;
  }
  return parts.join(" ");
}

/** Distinct commands for the evidence, in the order the tools were called; failed calls included (re-running shows the error). */
export function suggestedCommands(evidence: readonly EvidenceItem[], tools: readonly AskTool[], now = new Date()): string[] {
  const byName = new Map(tools.map((t) => [t.name, t]));
  const out: string[] = [];
  for (const e of evidence) {
    let command: string | undefined;
    try {
      command = byName.get(e.tool)?.cliCommand?.(e.args) ?? suggestCommand(e.tool, e.args, now);
    } catch {
      command = undefined;
    }
    if (command && !out.includes(command)) out.push(command);
  }
  return out;
}
