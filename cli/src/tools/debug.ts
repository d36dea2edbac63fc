// The live-debugging tools: list a component's functions, attach a uprobe
// session, read its events, detach. Attach and detach change something: the
// colony requires an admin token for them and audits every call.
import { timestampMs } from "@bufbuild/protobuf/wkt";
import { z } from "zod";
import type { UprobeEvent } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import type { DebugSession } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import { clockTime, eventStats, formatNs, sessionOutcome, snapshotValues } from "../format/debug.ts";
import { defineTool, durationArg, durationMs, fitLines, textBudgetChars, toolArgs } from "./common.ts";
import { ToolError, type ToolContext } from "./types.ts";

function debugClient(ctx: ToolContext) {
  if (!ctx.debug) throw new ToolError("live debugging is not available through this connection", "unavailable");
  return ctx.debug;
}

export const debugListFunctionsTool = defineTool({
  name: "coral_debug_list_functions",
  title: "Functions of a component",
  description:
    "Functions of a component's running process (from its ELF symbol table) that coral_debug_attach can trace. " +
    "Use a pattern (case-insensitive substring) to find the symbol, e.g. 'ValidateCard' or 'validate'.",
  inputSchema: toolArgs({
    service: z.string().min(1).describe("The component, as coral_get_status names it"),
    pattern: z.string().optional().describe("Only names containing this"),
    limit: z.number().int().min(1).max(500).optional().describe("At most this many (default 50)"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const res = await debugClient(ctx).listFunctions({ serviceName: args.service, pattern: args.pattern ?? "", limit: args.limit ?? 50 });
    const lines = res.functions.map((f) => `- ${f.name}${f.demangled ? ` (${f.demangled})` : ""} size=${f.size}`);
    const header = `${args.service}: pid ${res.pid}${res.isGo ? " (Go)" : ""}, ${res.total} function(s) match${res.total > res.functions.length ? `, ${res.functions.length} shown` : ""}.`;
    const { shown, omitted } = fitLines(lines, textBudgetChars - 200);
    return {
      text: [header, ...shown, ...(omitted ? [`… ${omitted} more: narrow the pattern.`] : [])].join("\n"),
      data: { pid: res.pid, isGo: res.isGo, total: res.total, functions: res.functions.map((f) => ({ name: f.name, size: Number(f.size) })) },
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
    session: z.string().min(1).describe("Session id from coral_debug_attach"),
    limit: z.number().int().min(1).max(10_000).optional().describe("Read at most this many events (default 2000)"),
  }),
  readOnly: true,
  async run(ctx, args) {
    const res = await debugClient(ctx).queryUprobeEvents({ sessionId: args.session, limit: args.limit ?? 2000 });
    const s = res.session!;
    if (s.kind === "logpoint" || s.kind === "snapshot") return lineEvents(s, res.events, res.hasMore);
    const st = eventStats(res.events, s.slowThresholdMs);
    const slowest = res.events
      .filter((e) => e.type === "return")
      .sort((a, b) => Number(b.durationNs - a.durationNs))
      .slice(0, 5)
      .map((e) => `- ${formatNs(Number(e.durationNs))} tid=${e.tid}${e.returnValue ? ` ret=${e.returnValue}` : ""}`);
    const text = [
      `Session ${s.sessionId} (${s.functionName} in ${s.serviceName}) is ${sessionOutcome(s)}${s.reason ? `: ${s.reason}` : ""}.`,
      `${st.calls} call(s) read${res.hasMore ? " (more: raise limit)" : ""}: avg ${formatNs(st.avgNs)}, P95 ${formatNs(st.p95Ns)}, P99 ${formatNs(st.p99Ns)}, ` +
        `${st.slow} slower than ${s.slowThresholdMs}ms, ${st.errors} negative return(s).`,
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

/** The live-debugging tools, in the order an assistant uses them. */
export const debugTools = [debugListFunctionsTool, debugAttachTool, debugEventsTool, debugDetachTool] as const;
