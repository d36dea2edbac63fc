// The agent's side of bench/otlp, in its own process (so its CPU is its own
// and the load generator cannot slow its event loop): the agent's OTLP
// endpoint, keep rules and ingest (agent/src/runtime/otlp.ts) on a real
// agent store (SQLite file), exactly as `coral connect` wires them.
// Talks to the bench over IPC: "stats" → its OTLP status and CPU time.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openAgentStore } from "@coral/agent";
import { startOtlp } from "@coral/agent/otlp";

const dir = mkdtempSync(join(tmpdir(), "coral-bench-otlp-"));
const store = await openAgentStore(join(dir, "agent.sqlite"));
const log = { info: () => undefined, warn: (o: object, m: string) => process.stderr.write(`${m} ${JSON.stringify(o)}\n`) };
const otlp = await startOtlp({ httpPort: 0, grpcPort: null }, store, "bench-api", log);
const status = otlp.status();
if (status.state === "unavailable" || !status.httpPort) throw new Error(`OTLP did not start: ${status.reason}`);

process.on("message", (msg: string) => {
  if (msg === "stats") {
    const u = process.cpuUsage();
    process.send!({ kind: "stats", status: otlp.status(), cpuMs: (u.user + u.system) / 1000, rssBytes: process.memoryUsage().rss });
  } else if (msg === "stop") {
    void otlp
      .stop()
      .then(() => store.close())
      .then(() => process.exit(0));
  }
});
process.send!({ kind: "ready", port: status.httpPort });
