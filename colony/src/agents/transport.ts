// The one way the colony calls an agent: a Connect transport that proves who
// the colony is on every request (a fresh HMAC proof over the agent id, as the
// agents require). Detail queries, debug sessions and control calls use it.
import type { DescService } from "@bufbuild/protobuf";
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { encodeProof, makeSecretProof, proofHeader } from "@coral/proto";

export function agentTransport(agentUrl: string, agentId: string, secret: string): Transport {
  const proof: Interceptor = (next) => async (req) => {
    req.header.set(proofHeader, encodeProof(await makeSecretProof(secret, agentId)));
    return next(req);
  };
  return createConnectTransport({ baseUrl: agentUrl, httpVersion: "1.1", interceptors: [proof] });
}

/** A client of one of an agent's services, authenticated as the colony. */
export function agentServiceClient<S extends DescService>(service: S, agentUrl: string, agentId: string, secret: string): Client<S> {
  return createClient(service, agentTransport(agentUrl, agentId, secret));
}
