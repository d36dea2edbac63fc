// The one way the colony calls an agent: a Connect transport that signs every
// request with the colony's identity key (the key agents pin), bound to the
// agent, the method, the time and the request body (see @coral/proto
// colony-call). Detail queries, debug sessions and control calls use it.
import { createHash } from "node:crypto";
import { toBinary, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { colonyCallHeader, signColonyCall, type IdentityKey } from "@coral/proto";

/** Signs each call for `agentId`; the agent checks the body it parsed against the signed hash. */
export function colonySignature(agentId: string, identity: IdentityKey): Interceptor {
  return (next) => async (req) => {
    // Agents serve unary methods only; a stream's body is not known up front.
    if (req.stream) throw new ConnectError(`${req.method.name}: the colony signs unary calls only`, Code.Unimplemented);
    const body = toBinary(req.method.input, req.message);
    const bodySha256 = createHash("sha256").update(body).digest("hex");
    const procedure = `/${req.service.typeName}/${req.method.name}`;
    req.header.set(colonyCallHeader, await signColonyCall(identity, { agentId, procedure, bodySha256 }));
    return next(req);
  };
}

export function agentTransport(agentUrl: string, agentId: string, identity: IdentityKey): Transport {
  return createConnectTransport({ baseUrl: agentUrl, httpVersion: "1.1", interceptors: [colonySignature(agentId, identity)] });
}

/** A client of one of an agent's services, authenticated as the colony. */
export function agentServiceClient<S extends DescService>(service: S, agentUrl: string, agentId: string, identity: IdentityKey): Client<S> {
  return createClient(service, agentTransport(agentUrl, agentId, identity));
}
