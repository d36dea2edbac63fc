// `coral ask`: questions answered by Claude over Coral's tools.
export { defaultAskLimits, type AskLimits, type AskTool, type EvidenceItem, type RequestUsage } from "./types.ts";
export { defaultSystemPrompt, formatEvidence, runAsk, type AskResult, type RunAskOptions, type ToolCallNotice } from "./loop.ts";
export { AskError, explainAnthropicError, retryAfterSeconds, type ExplainContext } from "./errors.ts";
export { digestOf, fitToolResult, pagingHint } from "./budget.ts";
export { shellWord, suggestCommand, suggestedCommands } from "./suggest.ts";
export { registryAskTools, type RegistryAskToolsOptions } from "./registry-tools.ts";
export {
  AskConfigError,
  DEFAULT_BASE_URL,
  DEFAULT_DAILY_WARN_USD,
  DEFAULT_MAX_RETRIES,
  DEFAULT_MODEL,
  askPaths,
  checkApiKey,
  checkBaseUrl,
  checkDailyWarn,
  checkMaxRetries,
  checkModel,
  effectiveBaseUrl,
  loadAskConfig,
  maskKey,
  redact,
  resolveApiKey,
  saveApiKey,
  saveAskConfig,
  type AskConfig,
  type AskPaths,
  type ResolvedKey,
} from "./config.ts";
export {
  MODEL_PRICES,
  appendUsage,
  dailyWarning,
  estimateCost,
  formatCostReport,
  formatUsd,
  priceFor,
  readUsage,
  summarizeUsage,
  type ModelPrice,
  type UsageRecord,
  type UsageSummary,
  type UsageTotals,
} from "./usage.ts";
export {
  McpTrustError,
  launchLines,
  loadUserMcpServers,
  mcpLaunchHash,
  planMcpServers,
  projectTrust,
  terminalPrompt,
  trustFileName,
  trustProjectServers,
  userMcpFileName,
  type McpServerPlan,
  type McpServers,
  type TrustPrompt,
} from "./mcp-trust.ts";
