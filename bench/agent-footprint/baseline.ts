// Idle processes the agent-footprint bench measures beside the agent, to
// split its RSS into Node + tsx, the coral code it loads, and the agent's store:
//   node --import tsx bench/agent-footprint/baseline.ts modules
//     loads every command of the coral CLI (buildCli() of @coral/cli,
//     which pulls in the agent, NATS, Connect and the colony's DuckDB bindings) and idles;
//   node --import tsx bench/agent-footprint/baseline.ts store <dir>
//     opens an empty agent store (openAgentStore, SQLite, the agent's
//     defaults) in <dir> and idles.
// Prints "ready" once set up.
import { join } from "node:path";

const [mode, dir] = process.argv.slice(2);
if (mode === "modules") {
  const { buildCli } = await import("@coral/cli");
  await buildCli();
} else if (mode === "store" && dir) {
  const { openAgentStore } = await import("@coral/agent");
  await openAgentStore(join(dir, "agent.sqlite"));
} else {
  console.error("usage: baseline.ts modules | store <dir>");
  process.exit(2);
}
console.log("ready");
setInterval(() => {}, 1000);
