// Experiment for the agent-footprint bench, not how users run the agent: the
// same startAgent call `coral connect` makes (same options, defaults for
// sampling, summaries and retention), from an entry point that loads only
// @coral/agent, and logs warnings and errors to stderr without pino. run.ts
// runs it through tsx, and bundled with esbuild (precompiled, plain node).
//   node [--import tsx] lean-agent.(ts|mjs) <service> <port> <health-url> <metrics-url> <colony-url> <data-dir>
// with a one-use invitation the bench minted (as coral connect does for a
// local colony) in the environment, never argv: CORAL_BENCH_INVITATION_ID,
// CORAL_BENCH_INVITATION_SECRET and CORAL_BENCH_COLONY_PUBKEY (pinned). The
// agent makes its own key in <data-dir> and enrolls it with the invitation.
import { startAgent, type AgentLogger } from "@coral/agent";

const [service, port, healthUrl, metricsUrl, colonyUrl, dataDir] = process.argv.slice(2);
const invitationId = process.env.CORAL_BENCH_INVITATION_ID;
const invitationSecret = process.env.CORAL_BENCH_INVITATION_SECRET;
const colonyPubkey = process.env.CORAL_BENCH_COLONY_PUBKEY || undefined;
if (!service || !port || !healthUrl || !metricsUrl || !colonyUrl || !dataDir || !invitationId || !invitationSecret) {
  console.error(
    "usage: lean-agent <service> <port> <health-url> <metrics-url> <colony-url> <data-dir> (CORAL_BENCH_INVITATION_ID and CORAL_BENCH_INVITATION_SECRET set, CORAL_BENCH_COLONY_PUBKEY optional)",
  );
  process.exit(2);
}
const write = (level: string) => (obj: object, msg?: string) => console.error(`${level} ${msg ?? ""} ${JSON.stringify(obj)}`);
const logger: AgentLogger = { debug: () => {}, info: () => {}, warn: write("WRN"), error: write("ERR") };

const agent = await startAgent({
  serviceName: service,
  port: Number(port),
  colonyUrl,
  invitation: { invitationId, invitationSecret },
  colonyPubkey,
  healthUrl,
  metricsUrl,
  dataDir,
  sampleIntervalMs: 1000,
  summaryIntervalMs: 60_000,
  logger,
  onNotice: (n) => {
    if (n.kind === "connected") console.log(`✓ Connected: ${service}`);
    if (n.kind === "observing") console.log(`  Observing: pid ${n.pid}`);
  },
});
await new Promise<void>((done) => {
  process.once("SIGINT", () => done());
  process.once("SIGTERM", () => done());
});
await agent.close("stopped");
