// A real agent in a process of its own, so a test can watch its memory and
// give it its own PATH (stand-in tools), as `coral connect` runs it:
//   node --conditions=coral-source --import tsx agent-process.ts
// Reads AGENT_* from the environment; prints one JSON line when it has
// registered: {"agentId", "apiUrl"}; stops on SIGTERM.
import { startAgent, type AgentRollbackConfig } from "@coral/agent";

const env = process.env;
const rollback = env.AGENT_ROLLBACK ? (JSON.parse(env.AGENT_ROLLBACK) as AgentRollbackConfig) : undefined;
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

const agent = await startAgent({
  serviceName: env.AGENT_SERVICE!,
  port: Number(env.AGENT_PORT),
  colonyUrl: env.AGENT_COLONY_URL!,
  colonyPubkey: env.AGENT_COLONY_PUBKEY,
  invitation: env.AGENT_INVITATION_ID ? { invitationId: env.AGENT_INVITATION_ID, invitationSecret: env.AGENT_INVITATION_SECRET! } : undefined,
  dataDir: env.AGENT_DATA_DIR!,
  version: env.AGENT_VERSION,
  sampleIntervalMs: 250,
  heartbeatIntervalMs: 1000,
  rollback,
  logger: quiet,
});
console.log(JSON.stringify({ agentId: agent.agentId, apiUrl: agent.apiUrl }));
process.once("SIGTERM", () => void agent.close().finally(() => process.exit(0)));
