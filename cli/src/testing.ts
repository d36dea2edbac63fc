// For tests only: command objects and formatters to drive in-process.
export { insightsCommand } from "./commands/insights.ts";
export { formatStatus } from "./format/index.ts";
export { unaryClient } from "./commands/read-client.ts";
export { sessionDir } from "./commands/debug-stream.ts";
export { secretWeakness } from "./commands/doctor-checks.ts";
