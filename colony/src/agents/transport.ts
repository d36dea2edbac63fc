// The one way the colony calls an agent: a Connect transport that signs every
// request with the colony's identity key (the key agents pin), bound to the
// agent, the method, the time and the request body (see @coral/proto
// colony-call). Detail queries, debug sessions and control calls use it.
import { createHash } from "node:crypto";
import { toBinary, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { colonyCallHeader, signColonyCall, type IdentityKey } from "@coral/proto";

/**
 * Signs each call for `agentId`; the agent checks the body it parsed against
 * the signed hash. Unary and server-streaming calls: both send one request
 * message, known before the call (a client stream's is not).
 */
export function colonySignature(agentId: string, identity: IdentityKey): Interceptor {
  return (next) => async (req) => {
    const procedure = `/${req.service.typeName}/${req.method.name}`;
    const sign = async (message: Parameters<typeof toBinary>[1]) => {
      const bodySha256 = createHash("sha256").update(toBinary(req.method.input, message)).digest("hex");
      req.header.set(colonyCallHeader, await signColonyCall(identity, { agentId, procedure, bodySha256 }));
    };
    if (!req.stream) {
      await sign(req.message);
      return next(req);
    }
    if (req.method.methodKind !== "server_streaming") throw new ConnectError(`${req.method.name}: the colony signs unary and server-streaming calls only`, Code.Unimplemented);
    const messages = [];
    for await (const m of req.message) messages.push(m);
    if (messages.length !== 1) throw new ConnectError(`${req.method.name}: one request message expected, got ${messages.length}`, Code.Internal);
    const [message] = messages;
    await sign(message!);
    return next({ ...req, message: (async function* () { yield message!; })() });
  };
}

export function agentTransport(agentUrl: string, agentId: string, identity: IdentityKey): Transport {
  return createConnectTransport({ baseUrl: agentUrl, httpVersion: "1.1", interceptors: [colonySignature(agentId, identity)] });
}

/** A client of one of an agent's services, authenticated as the colony. */
export function agentServiceClient<S extends DescService>(service: S, agentUrl: string, agentId: string, identity: IdentityKey): Client<S> {
  return createClient(service, agentTransport(agentUrl, agentId, identity));
}
