// Clients for the agent's control services (flags, rollbacks), authenticated
// as the colony like every colony → agent call.
import type { IdentityKey } from "@coral/proto";
import { FeatureFlagControlService } from "@coral/proto/gen/coral/control/v1/flags_pb";
import { RollbackControlService, RollbackPlanService } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { agentServiceClient } from "../agents/transport.ts";

export const agentFlagsClient = (agentUrl: string, agentId: string, identity: IdentityKey) =>
  agentServiceClient(FeatureFlagControlService, agentUrl, agentId, identity);

export const agentRollbackClient = (agentUrl: string, agentId: string, identity: IdentityKey) =>
  agentServiceClient(RollbackControlService, agentUrl, agentId, identity);

export const agentRollbackPlanClient = (agentUrl: string, agentId: string, identity: IdentityKey) =>
  agentServiceClient(RollbackPlanService, agentUrl, agentId, identity);
