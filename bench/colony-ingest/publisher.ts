// The synthetic agents of the ingest benchmark, in their own process (as real
// agents are): run.ts spawns this with `node --import tsx`, passing a
// PublisherConfig as JSON in argv[2]. Protocol on stdout, one JSON line each:
// {"type":"ready",payloadBytes} once every agent is registered (Connect) and
// connected to NATS; then, after run.ts writes "go\n" to stdin,
// {"type":"progress",acked} every 100 ms and {"type":"done",acked,publishMs}
// at the end; exits when run.ts closes stdin.
import { performance } from "node:perf_hooks";
import { startPublishers, type PublisherConfig, type PublisherMessage } from "./workload.ts";

const config = JSON.parse(process.argv[2] ?? "{}") as PublisherConfig;
const send = (m: PublisherMessage) => process.stdout.write(JSON.stringify(m) + "\n");

const publishers = await startPublishers(config);
try {
  send({ type: "ready", payloadBytes: publishers.payloadBytes });
  await new Promise<void>((go) => process.stdin.once("data", () => go()));
  const t0 = performance.now();
  const progress = setInterval(() => send({ type: "progress", acked: publishers.acked() }), 100);
  await publishers.go();
  clearInterval(progress);
  send({ type: "done", acked: publishers.acked(), publishMs: performance.now() - t0 });
  // Stay (idle) until run.ts closes stdin, so it can read this process's CPU time afterwards.
  await new Promise<void>((end) => process.stdin.once("end", () => end()).resume());
} finally {
  await publishers.close();
  process.stdin.destroy();
}
