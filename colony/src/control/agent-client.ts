// Clients for the agent's control services, proving the colony secret the
// same way the federated detail queries do.
import { createClient, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { encodeProof, makeSecretProof, proofHeader } from "@coral/proto";
import { FeatureFlagControlService } from "@coral/proto/gen/coral/control/v1/flags_pb";
import { RollbackControlService } from "@coral/proto/gen/coral/control/v1/rollback_pb";

function transport(agentUrl: string, agentId: string, secret: string) {
  const proof: Interceptor = (next) => async (req) => {
    req.header.set(proofHeader, encodeProof(await makeSecretProof(secret, agentId)));
    return next(req);
  };
  return createConnectTransport({ baseUrl: agentUrl, httpVersion: "1.1", interceptors: [proof] });
}

export const agentFlagsClient = (agentUrl: string, agentId: string, secret: string) =>
  createClient(FeatureFlagControlService, transport(agentUrl, agentId, secret));

export const agentRollbackClient = (agentUrl: string, agentId: string, secret: string) =>
  createClient(RollbackControlService, transport(agentUrl, agentId, secret));
