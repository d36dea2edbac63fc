// The consumer drain alone (drain.ts), pairing today's store ingest with the previous one:
//   node --conditions=coral-source --import tsx bench/colony-ingest/drain-only.ts [repeats] [implementations, comma-separated]
import { consumerDrain, type DrainImplementation } from "./drain.ts";

const repeats = Number(process.argv[2] ?? 3);
const implementations = (process.argv[3] ?? "store-before,current").split(",") as DrainImplementation[];
const runs = await consumerDrain([{ rowsPerMessage: 100, agents: 10, messagesPerAgent: 300, batchSizes: [500], implementations, repeats }], (m) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${m}`));
for (const implementation of implementations) {
  const mine = runs.filter((r) => r.implementation === implementation).map((r) => r.rowsPerSecond).sort((a, b) => a - b);
  console.log(`${implementation}: median ${mine[Math.floor(mine.length / 2)]!.toLocaleString("en-US")} rows/s (${mine.join(", ")})`);
}
