// The live-debugging tools: list a component's functions, attach a uprobe
// session (or, on a Node service, a logpoint or a snapshot at a line), read
// its events, detach. Attach, logpoint, snapshot and detach change something:
// the colony requires an admin token for them and audits every call.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import type { UprobeEvent } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import type { DebugSession } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { clockTime, eventStats, formatNs, sessionOutcome, snapshotValues } from "../format/debug.ts";
import { defineTool, durationArg, durationMs, fitLines, need, textBudgetChars, toolArgs } from "./common.ts";
import { ToolError, type ToolContext } from "./types.ts";

function debugClient(ctx: ToolContext) {
  if (!ctx.debug) throw new ToolError("live debugging is not available through this connection", "unavailable");
  return ctx.debug;
}

export const debugListFunctionsTool = defineTool({
  name: "coral_debug_list_functions",
  title: "Functions of a component",
  description:
    "Functions of a component's running process that coral_debug_attach can trace: native symbols (from its ELF symbol table), or for a Node " +
    "service its JavaScript functions with file:line (the lines coral_debug_logpoint and coral_debug_snapshot take). " +
    "Use a pattern (case-insensitive substring) to find the symbol, e.g. 'ValidateCard' or 'validate'.",
  inputSchema: toolArgs({
    service: z.string().min(1).describe("The component, as coral_get_status names it"),
    pattern: z.string().optional().describe("Only names containing this"),
    limit: z.number().int().min(1).max(500).optional().describe("At most this many (default 50)"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const res = await debugClient(ctx).listFunctions({ serviceName: args.service, pattern: args.pattern ?? "", limit: args.limit ?? 50 });
    const node = res.runtime === "node";
    const lines = res.functions.map((f) =>
      node ? `- ${f.name} ${f.file}:${f.line}${f.isAsync ? " (async)" : ""}` : `- ${f.name}${f.demangled ? ` (${f.demangled})` : ""} size=${f.size}`,
    );
    const header = `${args.service}: pid ${res.pid}${res.isGo ? " (Go)" : node ? " (Node)" : ""}, ${res.total} function(s) match${res.total > res.functions.length ? `, ${res.functions.length} shown` : ""}.`;
    const { shown, omitted } = fitLines(lines, textBudgetChars - 200);
    return {
      text: [header, ...shown, ...(omitted ? [`… ${omitted} more: narrow the pattern.`] : [])].join("\n"),
      data: {
        pid: res.pid,
        isGo: res.isGo,
        runtime: res.runtime,
        total: res.total,
        functions: res.functions.map((f) => (node ? { name: f.name, file: f.file, line: f.line, async: f.isAsync } : { name: f.name, size: Number(f.size) })),
      },
    };
  },
});

export const debugAttachTool = defineTool({
  name: "coral_debug_attach",
  title: "Trace a function",
  description:
    "Starts a live debugging session: eBPF uprobes on one function of a component for a bounded time (at most 10m), recording every call's " +
    "duration (and integer arguments / return value when asked). Needs an admin token; audited. Then read it with coral_debug_events.",
  inputSchema: toolArgs({
    service: z.string().min(1).describe("The component"),
    function: z.string().min(1).describe("The exact symbol, from coral_debug_list_functions"),
    duration: durationArg("How long to trace (default 30s)", 600_000, "10m").optional(),
    capture_args: z.number().int().min(0).max(6).optional().describe("Capture this many integer arguments"),
    capture_return: z.boolean().optional().describe("Capture the return value"),
    sample_rate: z.number().int().min(1).max(1_000_000).optional().describe("Record every nth call"),
  }),
  readOnly: false,
  async run(ctx, args) {
    const res = await debugClient(ctx).attachUprobe({
      serviceName: args.service,
      functionName: args.function,
      durationMs: args.duration ? durationMs(args.duration) : 30_000,
      captureArgs: args.capture_args ?? 0,
      captureReturn: args.capture_return ?? false,
      sampleRate: args.sample_rate ?? 1,
    });
    const s = res.session!;
    const expires = s.expiresAt ? new Date(timestampMs(s.expiresAt)).toISOString() : "";
    return {
      text: `Session ${s.sessionId} is ${sessionOutcome(s)}: tracing ${s.functionName} in ${s.serviceName} (pid ${s.pid}) until ${expires}. Read it with coral_debug_events session=${s.sessionId}.`,
      data: { sessionId: s.sessionId, state: s.state, outcome: sessionOutcome(s), pid: s.pid, expiresAt: expires },
    };
  },
});

/** Snapshots a session takes at most (the colony's limit). */
const maxSnapshots = 50;

const lineArgs = {
  service: z.string().min(1).describe("The component (a Node service), as coral_get_status names it"),
  location: z
    .string(need("a line as file:line, e.g. src/server.ts:42"))
    .regex(/^\S+:[1-9]\d*$/, { message: "Must be file:line, e.g. src/server.ts:42 (the file as coral_debug_list_functions shows it, or the end of its path)" })
    .describe("The line, file:line: the file as coral_debug_list_functions shows it or the end of its path; TypeScript sources work through source maps"),
  condition: z.string().trim().min(1).max(2000).optional().describe("Only when this side-effect-free JavaScript expression is true at that line, e.g. 'id > 100'"),
  duration: durationArg("How long the session may run (default 1m)", 600_000, "10m").optional(),
};

/** Starts a logpoint or snapshot session; its answer says how to read it back. */
async function startLine(ctx: ToolContext, kind: "logpoint" | "snapshot", args: { service: string; location: string; condition?: string; duration?: string; expression?: string; max_events?: number; count?: number }) {
  const res = await debugClient(ctx).attachUprobe({
    serviceName: args.service,
    functionName: args.location,
    kind,
    expression: args.expression ?? "",
    condition: args.condition ?? "",
    snapshotCount: kind === "snapshot" ? (args.count ?? 1) : 0,
    durationMs: args.duration ? durationMs(args.duration) : 60_000,
    maxEvents: kind === "logpoint" ? (args.max_events ?? 10_000) : 0,
  });
  const s = res.session!;
  const expires = s.expiresAt ? new Date(timestampMs(s.expiresAt)).toISOString() : "";
  const what =
    kind === "logpoint"
      ? `recording ${s.expression} each time ${s.functionName} runs (at most ${s.maxEvents} values)`
      : `capturing the arguments and locals at ${s.functionName} the first ${s.snapshotCount} time(s) it runs`;
  return {
    text:
      `Session ${s.sessionId} is ${sessionOutcome(s)}: ${what}${s.condition ? ` when ${s.condition}` : ""} in ${s.serviceName} (pid ${s.pid}) until ${expires}; ` +
      "the process does not pause (past one check of about a millisecond on the first hit). An expression or condition with side effects, or one that throws there, " +
      "ends the session on that first hit with the reason. " +
      `Read it with coral_debug_events session=${s.sessionId}; stop it sooner with coral_debug_detach.`,
    data: { sessionId: s.sessionId, kind, state: s.state, outcome: sessionOutcome(s), pid: s.pid, location: s.functionName, expiresAt: expires },
  };
}

export const debugLogpointTool = defineTool({
  name: "coral_debug_logpoint",
  title: "Log an expression at a line",
  description:
    "Starts a logpoint on a Node service (through its V8 inspector, opened on demand): each time a line runs, a side-effect-free JavaScript " +
    "expression is evaluated there and its value recorded, without pausing the process, for a bounded time (at most 10m) and number of values. " +
    "Needs an admin token; audited. Read the values with coral_debug_events.",
  inputSchema: toolArgs({
    service: lineArgs.service,
    location: lineArgs.location,
    expression: z
      .string(need("a JavaScript expression, e.g. 'user.id'"))
      .trim()
      .min(1, "Required: a JavaScript expression, e.g. 'user.id'")
      .max(2000, "Must be at most 2000 characters")
      .describe("The side-effect-free JavaScript expression to record, e.g. 'user.id' or '`${req.method} ${req.url}`' (values depth- and size-limited)"),
    condition: lineArgs.condition,
    duration: lineArgs.duration,
    max_events: z.number().int().min(1).max(1_000_000).optional().describe("Stop after this many values (default 10000)"),
  }),
  readOnly: false,
  run: (ctx, args) => startLine(ctx, "logpoint", args),
});

export const debugSnapshotTool = defineTool({
  name: "coral_debug_snapshot",
  title: "Capture locals at a line",
  description:
    "Starts a snapshot on a Node service (through its V8 inspector, opened on demand): the arguments and locals in scope at a line " +
    "(depth- and size-limited) the first `count` times it runs, without pausing the process; the session ends once they are taken or at its duration " +
    "(at most 10m). Needs an admin token; audited. Read the snapshots with coral_debug_events.",
  inputSchema: toolArgs({
    service: lineArgs.service,
    location: lineArgs.location,
    count: z.number().int().min(1).max(maxSnapshots).optional().describe(`How many snapshots, 1 to ${maxSnapshots} (default 1)`),
    condition: lineArgs.condition,
    duration: lineArgs.duration,
  }),
  readOnly: false,
  run: (ctx, args) => startLine(ctx, "snapshot", args),
});

/** A logpoint's values or a snapshot's names and values, the latest 20. */
function lineEvents(s: DebugSession, events: readonly UprobeEvent[], hasMore: boolean) {
  const latest = events.slice(-20).map((e) =>
    e.type === "snapshot"
      ? `- ${clockTime(e.timestamp ? timestampMs(e.timestamp) : 0, true)} pid=${e.pid}: ${Object.entries(snapshotValues(e)).map(([k, v]) => `${k} = ${v}`).join(", ")}`
      : `- ${clockTime(e.timestamp ? timestampMs(e.timestamp) : 0, true)} pid=${e.pid}: ${e.value}`,
  );
  const what = s.kind === "snapshot" ? "snapshot(s)" : `value(s) of ${s.expression}`;
  const text = [
    `Session ${s.sessionId} (${s.kind} ${s.functionName}${s.condition ? ` if ${s.condition}` : ""} in ${s.serviceName}) is ${sessionOutcome(s)}${s.reason ? `: ${s.reason}` : ""}.`,
    `${events.length} ${what} read${hasMore ? " (more: raise limit)" : ""}${latest.length ? "; latest (UTC):" : "."}`,
    ...latest,
  ].join("\n");
  return { text, data: { state: s.state, outcome: sessionOutcome(s), kind: s.kind, records: events.length, hasMore } };
}

export const debugEventsTool = defineTool({
  name: "coral_debug_events",
  title: "Calls traced by a session",
  description:
    "A debug session's state and its calls so far: count, average, P95, P99, slow calls, and the slowest calls with their arguments " +
    "(a Node logpoint's values, or a snapshot's arguments and locals, for those sessions).",
  inputSchema: toolArgs({
    session: z.string().min(1).describe("Session id from coral_debug_attach, coral_debug_logpoint or coral_debug_snapshot"),
    limit: z.number().int().min(1).max(10_000).optional().describe("Read at most this many events (default 2000)"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const res = await debugClient(ctx).queryUprobeEvents({ sessionId: args.session, limit: args.limit ?? 2000 });
    const s = res.session!;
    if (s.kind === "logpoint" || s.kind === "snapshot") return lineEvents(s, res.events, res.hasMore);
    const st = eventStats(res.events, s.slowThresholdMs, s.runtime);
    const slowest = res.events
      .filter((e) => e.type === "return")
      .sort((a, b) => Number(b.durationNs - a.durationNs))
      .slice(0, 5)
      .map((e) => `- ${formatNs(Number(e.durationNs))} tid=${e.tid}${e.returnValue ? ` ret=${e.returnValue}` : ""}`);
    const text = [
      `Session ${s.sessionId} (${s.functionName} in ${s.serviceName}) is ${sessionOutcome(s)}${s.reason ? `: ${s.reason}` : ""}.`,
      `${st.calls} call(s) read${res.hasMore ? " (more: raise limit)" : ""}: avg ${formatNs(st.avgNs)}, P95 ${formatNs(st.p95Ns)}, P99 ${formatNs(st.p99Ns)}, ` +
        `${st.slow} slower than ${s.slowThresholdMs}ms, ${st.errors} ${s.runtime === "node" ? "threw or rejected" : "negative return(s)"}.`,
      ...(slowest.length ? ["Slowest:", ...slowest] : []),
    ].join("\n");
    return { text, data: { state: s.state, outcome: sessionOutcome(s), ...st, hasMore: res.hasMore } };
  },
});

export const debugDetachTool = defineTool({
  name: "coral_debug_detach",
  title: "Stop a debug session",
  description: "Stops a live debugging session now (it also ends by itself at its duration). Needs an admin token; audited.",
  inputSchema: toolArgs({ session: z.string().min(1).describe("Session id") }),
  readOnly: false,
  async run(ctx, args) {
    const s = (await debugClient(ctx).detachUprobe({ sessionId: args.session })).session!;
    return {
      text: `Session ${s.sessionId} is ${sessionOutcome(s)}${s.summary ? `: ${s.summary.calls} call(s), P95 ${formatNs(Number(s.summary.p95Ns))}` : ""}.`,
      data: { sessionId: s.sessionId, state: s.state, outcome: sessionOutcome(s), calls: s.summary ? Number(s.summary.calls) : 0 },
    };
  },
});

/**
 * The live-debugging tools: list, attach, events, detach (in the order an
 * assistant uses them), then a Node line's logpoint and snapshot, read back
 * with the same events and detach.
 */
export const debugTools = [debugListFunctionsTool, debugAttachTool, debugEventsTool, debugDetachTool, debugLogpointTool, debugSnapshotTool] as const;
