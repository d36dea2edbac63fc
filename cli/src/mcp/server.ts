// Coral as an MCP server: every tool of the registry, registered with the
// official SDK's McpServer. The transports (stdio, Streamable HTTP) live in
// stdio.ts and http.ts; both build the server with createCoralMcpServer.
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { coralTools, type CoralTool, type ToolContext } from "../tools/index.ts";
import { coralVersion } from "@coral/common/version";

export interface CoralMcpServerOptions {
  /** Default: every tool of the registry. */
  tools?: readonly CoralTool[];
}

export const coralMcpInstructions =
  "Coral watches a running application (its components, their agents, events, metrics and connections). " +
  "Start with coral_get_status; for 'why did X happen around T' use coral_analyze_correlation, then coral_query_events " +
  "and coral_query_metrics for the details. For failing or slow HTTP endpoints use coral_query_requests (per route), then coral_query_traffic " +
  "(sampled requests); for OpenTelemetry data coral_query_traces, coral_get_trace and coral_query_logs. " +
  "Times accept ISO (2026-05-01T14:05:00Z) or durations ago (15m, 2h).";

/** Turns a tool's answer or failure into an MCP tool result. */
export async function callTool(tool: CoralTool, ctx: ToolContext, args: unknown): Promise<CallToolResult> {
  try {
    const result = await tool.run(ctx, args);
    return { content: [{ type: "text", text: result.text }] };
  } catch (err) {
    return { content: [{ type: "text", text: `Error: ${err instanceof Error ? err.message : String(err)}` }], isError: true };
  }
}

export function createCoralMcpServer(ctx: ToolContext, options: CoralMcpServerOptions = {}): McpServer {
  const server = new McpServer(
    { name: "coral", title: "Coral", version: coralVersion },
    { capabilities: { tools: { listChanged: false } }, instructions: coralMcpInstructions },
  );
  for (const tool of options.tools ?? coralTools) {
    // Write tools (readOnly: false) are forwarded like read tools: the colony
    // RPC behind them requires an admin token and records an audit row.
    server.registerTool(
      tool.name,
      {
        title: tool.title,
        description: tool.description,
        inputSchema: tool.inputSchema,
        annotations: { title: tool.title, readOnlyHint: tool.readOnly, destructiveHint: !tool.readOnly, idempotentHint: tool.readOnly, openWorldHint: false },
      },
      (args: unknown) => callTool(tool, ctx, args),
    );
  }
  return server;
}
