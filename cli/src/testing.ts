// For tests only: command objects and formatters to drive in-process.
export { insightsCommand } from "./commands/insights.ts";
export { formatStatus } from "./format/index.ts";
