// Helpers the tools share: defining a tool (validation, error translation),
// time arguments, number and time formatting, and the text budget.
import { timestampDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { z } from "zod";
import { parseDuration } from "@coral/common/duration";
import { formatDuration } from "../format/text.ts";
import { ToolArgumentError, ToolError, type CoralTool, type ToolContext, type ToolResult } from "./types.ts";

export interface ToolSpec<S extends z.ZodObject> {
  name: string;
  title: string;
  description: string;
  inputSchema: S;
  readOnly: boolean;
  run(ctx: ToolContext, args: z.output<S>): Promise<ToolResult>;
}

/** Wraps a tool so that run() validates its arguments and explains colony errors. */
export function defineTool<S extends z.ZodObject>(spec: ToolSpec<S>): CoralTool {
  return {
    name: spec.name,
    title: spec.title,
    description: spec.description,
    inputSchema: spec.inputSchema,
    readOnly: spec.readOnly,
    async run(ctx, args) {
      const parsed = spec.inputSchema.safeParse(args ?? {});
      if (!parsed.success) throw new ToolArgumentError(spec.name, describeIssues(parsed.error.issues));
      try {
        return await spec.run(ctx, parsed.data);
      } catch (err) {
        throw explainToolError(err);
      }
    },
  };
}

/** Zod issues as "field: problem" lines. */
export function describeIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path = issue.path.map(String).join(".");
    return path ? `${path}: ${issue.message}` : issue.message;
  });
}

export function explainToolError(err: unknown): Error {
  if (err instanceof ToolError || err instanceof ToolArgumentError) return err;
  if (!(err instanceof ConnectError)) return new ToolError(err instanceof Error ? err.message : String(err));
  switch (err.code) {
    case Code.Unauthenticated:
      return new ToolError(`not authenticated by the colony: ${err.rawMessage}`, "unauthenticated");
    case Code.PermissionDenied:
      return new ToolError(`permission denied by the colony: ${err.rawMessage}`, "permission_denied");
    case Code.InvalidArgument:
      return new ToolError(err.rawMessage, "invalid_argument");
    case Code.NotFound:
      return new ToolError(err.rawMessage, "not_found");
    case Code.DeadlineExceeded:
      return new ToolError(`the colony did not answer in time: ${err.rawMessage}`, "unavailable");
    case Code.Unavailable:
      // An agent the colony could not reach (offline, unreachable) is not the colony's own absence.
      if (/\bagent\b/.test(err.rawMessage)) return new ToolError(err.rawMessage, "unavailable");
      return new ToolError(`colony not reachable (${err.rawMessage}): is it running? Start it with: coral colony start`, "unavailable");
    default:
      if (/ECONNREFUSED|fetch failed|socket hang up|ENOTFOUND/i.test(err.message))
        return new ToolError(`colony not reachable (${err.rawMessage}): is it running? Start it with: coral colony start`, "unavailable");
      return new ToolError(err.rawMessage, "internal");
  }
}

// ---- argument schemas ---------------------------------------------------------

/**
 * The arguments object of a tool: unknown keys are refused with the list of
 * accepted ones (MCP clients show "<message> at <field>" for field problems).
 */
export function toolArgs<T extends z.core.$ZodLooseShape>(shape: T) {
  const accepted = Object.keys(shape).join(", ");
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === "unrecognized_keys"
        ? `unknown argument${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")} (accepted: ${accepted})`
        : issue.code === "invalid_type"
          ? "the arguments must be an object"
          : undefined,
  });
}

/**
 * A refinement running one of the checks the colony and the agents share
 * (@coral/common/telemetry-filters, traffic-filters), which throw
 * RangeError("<field>: <problem>"): the problem is reported at the tool's
 * own argument (`names` maps the check's field names to the tool's), so a
 * model hears the same rule the colony would answer with, before any call.
 */
export function sharedCheck<T>(check: (args: T) => unknown, names: Readonly<Record<string, string>> = {}) {
  return (args: T, ctx: z.RefinementCtx<T>) => {
    // An argument the schema already refused (a limit out of range, ...) is said once, by the schema.
    if (ctx.issues.length > 0) return;
    try {
      check(args);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      const m = /^([a-z_]+): ([\s\S]*)$/.exec(err.message);
      ctx.addIssue({ code: "custom", message: m ? m[2]! : err.message, path: m ? [names[m[1]!] ?? m[1]!] : [] });
    }
  };
}

/** "Required: <what>" when missing, "Must be <what>" when of the wrong type. */
export function need(what: string) {
  return { error: (issue: { input?: unknown }) => (issue.input === undefined ? `Required: ${what}` : `Must be ${what}`) };
}

/** The component a tool is about (required). */
export function serviceArg() {
  return z.string(need("the component name, e.g. api (see coral_get_status)")).min(1, "Required: the component name, e.g. api").describe("The component, e.g. api");
}

// ---- time ----------------------------------------------------------------

export const timeHint = 'an ISO time like 2026-05-01T14:05:00Z, a duration ago like 15m or 2h, or "now"';

/** "now", a duration ago ("15m", "2h", "1h30m", "10m ago") or an ISO date; undefined when none of these. */
export function parseTime(value: string, now: number): Date | undefined {
  const text = value.trim();
  if (/^now$/i.test(text)) return new Date(now);
  const ago = parseDuration(text.replace(/\s*ago$/i, ""));
  if (!("error" in ago)) return new Date(now - ago.ms);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text)) return undefined;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

export function timeArg(description: string) {
  return z
    .string(need(timeHint))
    .refine((v) => parseTime(v, Date.now()) !== undefined, { message: `Must be ${timeHint}` })
    .describe(description);
}

/** A positive duration ("15m") of at most maxMs. */
export function durationArg(description: string, maxMs: number, maxText: string) {
  return z
    .string(need("a duration like 5m, 15m or 1h"))
    .refine(
      (v) => {
        const d = parseDuration(v);
        return !("error" in d) && d.ms > 0 && d.ms <= maxMs;
      },
      { message: `Must be a duration like 5m, 15m or 1h, at most ${maxText}` },
    )
    .describe(description);
}

export function durationMs(value: string): number {
  const d = parseDuration(value);
  if ("error" in d) throw new ToolError(d.error, "invalid_argument");
  return d.ms;
}

export function clock(ctx: ToolContext): number {
  return ctx.now ? ctx.now() : Date.now();
}

/** A time range from since/until arguments; since defaults to `defaultSince` ago. */
export function timeRange(ctx: ToolContext, since: string | undefined, until: string | undefined, defaultSince: string): { since: Date; until: Date } {
  const now = clock(ctx);
  const end = until ? parseTime(until, now)! : new Date(now);
  const start = parseTime(since ?? defaultSince, now)!;
  if (start > end) throw new ToolError(`since (${iso(start)}) must be before until (${iso(end)})`, "invalid_argument");
  return { since: start, until: end };
}

/** "2026-05-01T14:05:03Z" (seconds; milliseconds only when they are not zero). */
export function iso(date: Date | Timestamp | undefined): string {
  if (!date) return "-";
  const d = date instanceof Date ? date : timestampDate(date);
  if (Number.isNaN(d.getTime())) return "-";
  return d.toISOString().replace(/\.000Z$/, "Z");
}

export function tsDate(ts: Timestamp | undefined): Date | undefined {
  return ts ? timestampDate(ts) : undefined;
}

/** "+20s", "-5m", "0s": an offset from a reference moment. */
export function offset(ms: number): string {
  const seconds = Math.round(ms / 1000);
  if (seconds === 0) return "0s";
  return `${seconds > 0 ? "+" : "-"}${formatDuration(Math.abs(seconds))}`;
}

export function ago(ms: number): string {
  return ms < 1000 ? "just now" : `${formatDuration(Math.floor(ms / 1000))} ago`;
}

// ---- numbers ---------------------------------------------------------------

/** Numbers for an assistant: exact integers, 4 significant digits otherwise (276.456 → "276.5"). */
export function num(value: number | bigint): string {
  if (typeof value === "bigint") return value.toString();
  if (!Number.isFinite(value)) return Number.isNaN(value) ? "NaN" : value > 0 ? "Infinity" : "-Infinity";
  if (Number.isInteger(value)) return String(value);
  if (Math.abs(value) >= 1000) return String(Math.round(value));
  return String(Number(value.toPrecision(4)));
}

export function bytes(value: number | bigint): string {
  const n = Number(value);
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${num(Number(v.toFixed(1)))} ${units[i]}`;
}

/** "2.3×", "0.45×" */
export function ratio(value: number): string {
  if (!Number.isFinite(value)) return "∞×";
  return `${num(Number(value.toPrecision(2)))}×`;
}

// ---- text budget -------------------------------------------------------------

/** About 1,750 tokens at ~4 characters a token: every tool answer stays under it. */
export const textBudgetChars = 7000;

export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** Takes lines while they fit in `budget` characters. */
export function fitLines(lines: readonly string[], budget: number): { shown: string[]; omitted: number } {
  const shown: string[] = [];
  let used = 0;
  for (const line of lines) {
    if (used + line.length + 1 > budget) break;
    shown.push(line);
    used += line.length + 1;
  }
  return { shown, omitted: lines.length - shown.length };
}

/** Cuts text to `max` characters with an ellipsis. */
export function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/** details_json as compact `key=value` pairs. */
export function compactDetails(detailsJson: string, max = 120): string {
  if (!detailsJson.trim() || detailsJson.trim() === "{}") return "";
  let parsed: unknown;
  try {
    parsed = JSON.parse(detailsJson);
  } catch {
    return clip(detailsJson.replace(/\s+/g, " "), max);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) return clip(JSON.stringify(parsed), max);
  const parts = Object.entries(parsed as Record<string, unknown>)
    .filter(([, v]) => v !== null && v !== undefined && v !== "")
    .map(([k, v]) => `${k}=${typeof v === "string" ? (/[\s"=]/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`);
  return clip(parts.join(" "), max);
}

export function parseDetails(detailsJson: string): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(detailsJson || "{}");
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : { value: parsed };
  } catch {
    return { raw: detailsJson };
  }
}
