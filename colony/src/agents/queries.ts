// Federated detail queries: the colony asks the agents of a service for raw
// data from their local stores, each call signed with the colony identity key.
import type { IdentityKey } from "@coral/proto";
import { AgentService } from "@coral/proto/gen/coral/agent/v1/agent_pb";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import type { RawMetricPoint } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import { create } from "@bufbuild/protobuf";
import { RawMetricPointSchema } from "@coral/proto/gen/coral/colony/v1/colony_pb";
import type { AgentRow } from "../store/types.ts";
import { agentServiceClient } from "./transport.ts";

function agentClient(agent: AgentRow, identity: IdentityKey) {
  return agentServiceClient(AgentService, agent.agentUrl, agent.agentId, identity);
}

export interface RawMetricsResult {
  points: RawMetricPoint[];
  unavailable: string[];
  truncated: boolean;
}

export async function rawMetricsFromAgents(
  agents: AgentRow[],
  identity: IdentityKey,
  query: { metricName: string; since?: Timestamp; until?: Timestamp; limit: number },
): Promise<RawMetricsResult> {
  const result: RawMetricsResult = { points: [], unavailable: [], truncated: false };
  await Promise.all(
    agents.map(async (agent) => {
      if (!agent.agentUrl) {
        result.unavailable.push(`${agent.agentId}: the agent serves no detail queries`);
        return;
      }
      try {
        const res = await agentClient(agent, identity).queryMetrics(query, { timeoutMs: 10_000 });
        result.truncated ||= res.truncated;
        for (const p of res.points)
          result.points.push(create(RawMetricPointSchema, { timestamp: p.timestamp, metricName: p.metricName, value: p.value, labels: p.labels, agentId: agent.agentId }));
      } catch (err) {
        result.unavailable.push(`${agent.agentId}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }),
  );
  result.points.sort((a, b) => Number(a.timestamp!.seconds - b.timestamp!.seconds) || a.timestamp!.nanos - b.timestamp!.nanos);
  return result;
}
