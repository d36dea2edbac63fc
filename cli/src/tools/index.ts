// Coral's tools: one registry for the MCP server (coral mcp server) and for
// `coral ask`. Each tool validates its arguments, calls the colony as the
// caller and answers with compact text plus structured data.
//
//   import { coralTools, findTool, runTool } from "./index.ts";
//   const result = await runTool({ colony }, "coral_query_events", { service: "api", since: "1h" });
//   result.text  // for the model; result.data // JSON-safe structure
//
// Adding a tool: write it with defineTool() in its own module and list it in
// `coralTools` below. Tools that change something set readOnly: false; the
// colony RPC they call must require an admin token and write an audit row.
import { z } from "zod";
import { analyzeCorrelationTool } from "./correlation.ts";
import { debugTools } from "./debug.ts";
import { queryEventsTool } from "./events.ts";
import { getInsightsTool } from "./insights.ts";
import { queryMetricsTool } from "./metrics.ts";
import { queryRequestsTool } from "./requests.ts";
import { getStatusTool } from "./status.ts";
import { profileCpuTool } from "./profile.ts";
import { getTraceTool, queryLogsTool, queryTracesTool } from "./telemetry.ts";
import { getTopologyTool } from "./topology.ts";
import { getTrafficSampleTool, queryTrafficTool } from "./traffic.ts";
import { getSqlSchemaTool, querySqlTool } from "./sql.ts";
import { ToolArgumentError, ToolError, type CoralTool, type ToolContext, type ToolResult } from "./types.ts";

export { ToolArgumentError, ToolError, type CoralTool, type ToolContext, type ToolResult, type ToolInputSchema } from "./types.ts";
export { defineTool, estimateTokens, explainToolError, parseTime, textBudgetChars, type ToolSpec } from "./common.ts";
export { debugTools } from "./debug.ts";
export { eventMagnitude, metricShift, rankChanges, type Change, type ChangeKind, type CorrelationInput } from "./correlation.ts";

/** Every tool, in the order an assistant should consider them. */
export const coralTools: readonly CoralTool[] = [
  getStatusTool,
  getTopologyTool,
  queryEventsTool,
  queryMetricsTool,
  analyzeCorrelationTool,
  getInsightsTool,
  // HTTP requests: RED per route (from metric summaries), then sampled requests (ToolContext.traffic).
  queryRequestsTool,
  queryTrafficTool,
  getTrafficSampleTool,
  // OpenTelemetry the agents received: spans, one trace, log records.
  queryTracesTool,
  getTraceTool,
  queryLogsTool,
  // Live debugging (ToolContext.debug): list functions, attach, events, detach, Node logpoints and snapshots.
  // Attach, detach, logpoint and snapshot are readOnly: false: the colony wants an admin token and audits them.
  ...debugTools,
  // CPU profiles (ToolContext.profile): readOnly: false, admin token, audited.
  profileCpuTool,
  // Read-only SQL (ToolContext.query) for what no tool above answers; the colony audits every statement.
  getSqlSchemaTool,
  querySqlTool,
];

export function findTool(name: string): CoralTool | undefined {
  return coralTools.find((t) => t.name === name);
}

/** Runs a tool by name: ToolArgumentError for unknown tools and bad arguments, ToolError when the colony cannot answer. */
export async function runTool(ctx: ToolContext, name: string, args: unknown): Promise<ToolResult> {
  const tool = findTool(name);
  if (!tool) throw new ToolArgumentError(name, [`no such tool; available: ${coralTools.map((t) => t.name).join(", ")}`]);
  return tool.run(ctx, args);
}

/** The JSON Schema of a tool's arguments (draft 2020-12), e.g. for the Anthropic API's input_schema. */
export function toolJsonSchema(tool: CoralTool): Record<string, unknown> {
  return z.toJSONSchema(tool.inputSchema, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
}

/** True when the error is the caller's fault (bad arguments), not the colony's. */
export function isArgumentError(err: unknown): boolean {
  return err instanceof ToolArgumentError || (err instanceof ToolError && err.code === "invalid_argument");
}
