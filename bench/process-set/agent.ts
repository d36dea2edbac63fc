// The agent under measurement in bench/process-set/run.ts: the same startAgent
// call `coral connect` makes (default 1 s sampling, default TCP health check),
// in a process of its own so its CPU can be read from /proc.
//   node --conditions=coral-source --import tsx agent.ts <service> <port> <colony-url> <data-dir>
// with a one-use invitation in the environment (CORAL_BENCH_INVITATION_ID,
// CORAL_BENCH_INVITATION_SECRET, CORAL_BENCH_COLONY_PUBKEY), never argv.
import { startAgent } from "@coral/agent";

const [service, port, colonyUrl, dataDir] = process.argv.slice(2);
const invitationId = process.env.CORAL_BENCH_INVITATION_ID;
const invitationSecret = process.env.CORAL_BENCH_INVITATION_SECRET;
if (!service || !port || !colonyUrl || !dataDir || !invitationId || !invitationSecret) {
  console.error("usage: agent.ts <service> <port> <colony-url> <data-dir> (with CORAL_BENCH_INVITATION_ID and CORAL_BENCH_INVITATION_SECRET set)");
  process.exit(2);
}
const quiet = () => {};
const agent = await startAgent({
  serviceName: service,
  port: Number(port),
  colonyUrl,
  invitation: { invitationId, invitationSecret },
  colonyPubkey: process.env.CORAL_BENCH_COLONY_PUBKEY || undefined,
  dataDir,
  sampleIntervalMs: 1000,
  logger: { debug: quiet, info: quiet, warn: quiet, error: (o: object, m?: string) => console.error(m ?? "", JSON.stringify(o)) },
  onNotice: (n) => {
    if (n.kind === "observing") console.log(`observing ${n.pid}`);
  },
});
await new Promise<void>((done) => {
  process.once("SIGINT", () => done());
  process.once("SIGTERM", () => done());
});
await agent.close("stopped");
