// Clients for the agent's control services (flags, rollbacks), authenticated
// as the colony like every colony → agent call.
import { FeatureFlagControlService } from "@coral/proto/gen/coral/control/v1/flags_pb";
import { RollbackControlService } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { agentServiceClient } from "../agents/transport.ts";

export const agentFlagsClient = (agentUrl: string, agentId: string, secret: string) =>
  agentServiceClient(FeatureFlagControlService, agentUrl, agentId, secret);

export const agentRollbackClient = (agentUrl: string, agentId: string, secret: string) =>
  agentServiceClient(RollbackControlService, agentUrl, agentId, secret);
