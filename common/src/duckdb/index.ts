// DuckDB for Node: one queued connection per role, SQL helpers, the appender.
// The agent's and the colony's stores both build on these.
export * from "./sql.ts";
export { QueuedConnection, SerialQueue } from "./queue.ts";
export { withAppender } from "./appender.ts";
