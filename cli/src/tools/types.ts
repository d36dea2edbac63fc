// The shape of one Coral tool: what the MCP server lists and `coral ask`
// offers to the model. A tool validates its own arguments, calls the colony
// through the caller's Connect client (so the colony's auth applies) and
// answers with compact text for an assistant plus structured data.
import type { Client } from "@connectrpc/connect";
import type { ColonyService } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import type { DebugService } from "@coral/proto/gen/coral/colony/v1/debug_pb";
import type { ProfileService } from "@coral/proto/gen/coral/colony/v1/profile_pb";
import type { TrafficService } from "@coral/proto/gen/coral/colony/v1/traffic_pb";
import type { QueryService } from "@coral/proto/gen/coral/colony/v1/query_pb";
import type { z } from "zod";

export interface ToolContext {
  /** The colony, authenticated as the caller (local token, read or admin token). */
  colony: Client<typeof ColonyService>;
  /** Live debugging (DebugService), authenticated the same way; the debug tools need it. */
  debug?: Client<typeof DebugService>;
  /** CPU profiles (ProfileService), authenticated the same way; the profile tool needs it. */
  profile?: Client<typeof ProfileService>;
  /** Sampled requests (TrafficService), authenticated the same way; the traffic tools need it. */
  traffic?: Client<typeof TrafficService>;
  /** Read-only SQL (QueryService), authenticated the same way; the SQL tools need it. */
  query?: Client<typeof QueryService>;
  /** The clock in ms since the epoch; tests pin it. Default: Date.now. */
  now?: () => number;
}

export interface ToolResult {
  /** Compact, assistant-friendly text (well under 2,000 tokens); says when it is cut and how to get more. */
  text: string;
  /** The same answer as plain JSON-safe data (no bigint, times as ISO strings). */
  data: unknown;
}

export type ToolInputSchema = z.ZodObject;

export interface CoralTool {
  /** snake_case, prefixed coral_. */
  name: string;
  /** A short human title. */
  title: string;
  /** What it answers and when to use it, for the model. */
  description: string;
  /** The arguments; unknown keys are rejected. z.toJSONSchema(inputSchema) gives the JSON Schema. */
  inputSchema: ToolInputSchema;
  /** False for tools that change something (e.g. attaching a probe): those need an admin token and are audited by the colony. */
  readOnly: boolean;
  /**
   * Validates `args` with inputSchema (ToolArgumentError when they do not fit),
   * then runs. Colony failures become ToolError with a message a person or a
   * model can act on.
   */
  run(ctx: ToolContext, args: unknown): Promise<ToolResult>;
}

/** The arguments did not fit the tool's schema; the message says which and how. */
export class ToolArgumentError extends Error {
  override name = "ToolArgumentError";
  constructor(
    readonly tool: string,
    readonly problems: string[],
  ) {
    super(`invalid arguments for ${tool}: ${problems.join("; ")}`);
  }
}

/** The tool could not answer (colony unreachable, token refused, nothing found...). */
export class ToolError extends Error {
  override name = "ToolError";
  constructor(
    message: string,
    /** "unauthenticated", "permission_denied", "unavailable", "not_found", "invalid_argument", "internal". */
    readonly code: string = "internal",
  ) {
    super(message);
  }
}
