// A FIFO queue that runs one task at a time (shared with the agent's store).
export { SerialQueue } from "@coral/agent/duckdb";
