// The shapes `coral ask` works with. AskTool is deliberately small so any
// tool source (the default Connect tools here, the MCP tool registry, an MCP
// client's remote tools) can be adapted to it.

/** A tool the model may call during `coral ask`. */
export interface AskTool {
  /** Letters, digits, _ and - (at most 128), unique within one ask. */
  name: string;
  description: string;
  /** JSON schema of the arguments; must be `{ type: "object", ... }`. */
  inputSchema: object;
  /** Runs the tool. Throw to report a failure: the model sees it as an error result. */
  run(args: unknown): Promise<{ text: string }>;
  /**
   * The equivalent `coral ...` command line for these arguments, for the
   * "Suggested commands" section. Optional: known tool names have a fallback
   * (see suggestCommand).
   */
  cliCommand?(args: unknown): string | undefined;
  /** The line of a result worth quoting as evidence. Default: its first non-empty line. */
  digest?(text: string): string;
}

/** One tool call, as evidence for the answer. */
export interface EvidenceItem {
  tool: string;
  args: unknown;
  /** One line: what the tool returned (its first line), or the error. */
  digest: string;
  /** Characters the tool returned, and whether the model saw less. */
  chars: number;
  truncated: boolean;
  error?: string;
  durationMs: number;
  /** Tool round (1-based). */
  round: number;
}

/** Token usage of one Messages API request, as the API reported it. */
export interface RequestUsage {
  model: string;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  stop_reason: string | null;
  request_id?: string;
  /** True when the request failed mid-stream and these are the counts seen so far. */
  partial?: boolean;
}

export interface AskLimits {
  /** Rounds of tool calls before the model must answer with what it has. */
  maxToolRounds: number;
  /** Continuations after a max_tokens stop before giving up (and saying so). */
  maxContinuations: number;
  /** Characters of one tool result the model sees; longer results are cut with a paging note. */
  maxToolResultChars: number;
  /** Characters of tool results across the whole ask; past it each result gets at most minToolResultChars. */
  maxTotalToolChars: number;
  minToolResultChars: number;
  /** Hard cap on Messages API requests for one question. */
  maxRequests: number;
}

export const defaultAskLimits: AskLimits = {
  maxToolRounds: 8,
  maxContinuations: 3,
  maxToolResultChars: 6_000,
  maxTotalToolChars: 40_000,
  minToolResultChars: 600,
  maxRequests: 16,
};
