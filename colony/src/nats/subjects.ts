// Subject and stream names for telemetry. Agents publish one TelemetryBatch per
// message on "coral.<colony_id>.agent.<agent_id>.telemetry"; the colony keeps
// them in one JetStream stream per colony that captures exactly those subjects
// and the colony's own dead-letter subject (nothing else an agent could fill).
import { createHash } from "node:crypto";

/** Why a string cannot be one token of a NATS subject, or null when it can. */
export function subjectTokenProblem(token: string): string | null {
  if (token.length === 0) return "is empty";
  if (token.length > 128) return "is longer than 128 characters";
  if (!/^[A-Za-z0-9_-]+$/.test(token)) return "may only contain letters, digits, '-' and '_'";
  return null;
}

function checkToken(kind: string, token: string): void {
  const problem = subjectTokenProblem(token);
  if (problem) throw new Error(`${kind} ${JSON.stringify(token)} ${problem}`);
}

/** The subject an agent publishes its TelemetryBatch messages to. */
export function telemetrySubject(colonyId: string, agentId: string): string {
  checkToken("colony id", colonyId);
  checkToken("agent id", agentId);
  return `coral.${colonyId}.agent.${agentId}.telemetry`;
}

/** Everything one agent may publish to is below this prefix ("<prefix>.>"). */
export function agentSubjectPrefix(colonyId: string, agentId: string): string {
  checkToken("colony id", colonyId);
  checkToken("agent id", agentId);
  return `coral.${colonyId}.agent.${agentId}`;
}

/** The subjects the colony's stream captures: agents' telemetry and the set-aside copies. */
export function streamSubjects(colonyId: string): string[] {
  return [telemetryFilterSubject(colonyId), deadLetterSubject(colonyId)];
}

/** Where the colony republishes telemetry it set aside; outside the ingest filter, so it is never ingested. */
export function deadLetterSubject(colonyId: string): string {
  checkToken("colony id", colonyId);
  return `coral.${colonyId}.deadletter`;
}

/**
 * One agent's reply inbox prefix: "_INBOX_<8 hex of the colony id's hash>_<agent_id>",
 * a single subject token. The agent connects with it as its inbox prefix and may
 * subscribe only below it, so no agent reads another's JetStream acknowledgements.
 */
export function agentInboxPrefix(colonyId: string, agentId: string): string {
  checkToken("colony id", colonyId);
  checkToken("agent id", agentId);
  const colonyHash = createHash("sha256").update(colonyId).digest("hex").slice(0, 8);
  return `_INBOX_${colonyHash}_${agentId}`;
}

/** The subjects the ingestion consumer reads: every agent's telemetry. */
export function telemetryFilterSubject(colonyId: string): string {
  checkToken("colony id", colonyId);
  return `coral.${colonyId}.agent.*.telemetry`;
}

/** "CORAL_<COLONY_ID>", upper-cased, anything but letters and digits as "_". */
export function streamName(colonyId: string): string {
  checkToken("colony id", colonyId);
  return `CORAL_${colonyId.toUpperCase().replace(/[^A-Z0-9]/g, "_")}`;
}

export type ParsedTelemetrySubject = { agentId: string } | { error: string };

/** Reads the agent id out of a telemetry subject of the given colony. */
export function parseTelemetrySubject(colonyId: string, subject: string): ParsedTelemetrySubject {
  const parts = subject.split(".");
  if (parts.length !== 5 || parts[0] !== "coral" || parts[2] !== "agent" || parts[4] !== "telemetry")
    return { error: `subject ${JSON.stringify(subject)} is not coral.<colony>.agent.<agent_id>.telemetry` };
  if (parts[1] !== colonyId) return { error: `subject ${JSON.stringify(subject)} belongs to colony ${JSON.stringify(parts[1])}, not ${JSON.stringify(colonyId)}` };
  const agentId = parts[3]!;
  const problem = subjectTokenProblem(agentId);
  if (problem) return { error: `agent id in subject ${JSON.stringify(subject)} ${problem}` };
  return { agentId };
}
