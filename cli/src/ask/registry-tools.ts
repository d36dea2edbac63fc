// Coral's tool registry (colony/src/tools, the same tools the MCP server
// serves) adapted to AskTool for `coral ask`: one set of tools, one set of
// answers, whether a person asks through coral ask or an assistant over MCP.
import { coralTools, toolJsonSchema, type CoralTool, type ToolContext } from "../tools/index.ts";
import type { AskTool } from "./types.ts";

export interface RegistryAskToolsOptions {
  /** Default: every tool of the registry. */
  tools?: readonly CoralTool[];
  /** Rewrites a tool's failure, e.g. to name the colony the CLI tried (remote.ts explainError). */
  explain?: (err: Error) => Error;
}

/** The JSON Schema of a tool's arguments as the Messages API wants it (no $schema key). */
function inputSchemaOf(tool: CoralTool): object {
  const { $schema: _ignored, ...schema } = toolJsonSchema(tool);
  return schema;
}

/**
 * The evidence line of a result where the first line is not the telling one:
 * coral_get_status opens with the colony's identity, then counts components.
 */
const digests: Record<string, (text: string) => string> = {
  coral_get_status: (text) => text.split("\n").find((line) => /^\d+ components?: /.test(line)) ?? text,
};

/** Every registry tool as an AskTool running against `ctx.colony` (so the colony's auth and audit apply). */
export function registryAskTools(ctx: ToolContext, options: RegistryAskToolsOptions = {}): AskTool[] {
  return (options.tools ?? coralTools).map((tool) => ({
    name: tool.name,
    description: tool.description,
    inputSchema: inputSchemaOf(tool),
    ...(digests[tool.name] ? { digest: digests[tool.name] } : {}),
    // Tool errors (bad arguments, colony unreachable) carry actionable messages; runAsk hands them to the model.
    async run(args) {
      try {
        return { text: (await tool.run(ctx, args)).text };
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        throw options.explain ? options.explain(error) : error;
      }
    },
  }));
}
