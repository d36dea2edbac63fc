// Idle processes the agent-footprint bench measures beside the agent, to
// split its RSS into Node + tsx, the coral code it loads, and DuckDB:
//   node --import tsx bench/agent-footprint/baseline.ts modules
//     loads every command of the coral CLI (buildCli() of @coral/cli,
//     which pulls in the agent, NATS, Connect and the DuckDB bindings) and idles;
//   node --import tsx bench/agent-footprint/baseline.ts duckdb <dir> [threads] [memoryLimit]
//     opens an empty agent store (openAgentStore, the agent's defaults unless
//     given) in <dir> and idles.
// Prints "ready" once set up.
import { join } from "node:path";

const [mode, dir, threads, memoryLimit] = process.argv.slice(2);
if (mode === "modules") {
  const { buildCli } = await import("@coral/cli");
  await buildCli();
} else if (mode === "duckdb" && dir) {
  const { openAgentStore } = await import("@coral/agent");
  await openAgentStore(join(dir, "agent.duckdb"), {
    threads: threads ? Number(threads) : undefined,
    memoryLimit: memoryLimit || undefined,
  });
} else {
  console.error("usage: baseline.ts modules | duckdb <dir> [threads] [memoryLimit]");
  process.exit(2);
}
console.log("ready");
setInterval(() => {}, 1000);
