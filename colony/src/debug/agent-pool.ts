// Clients to the agents' debug services, one per agent and URL, reused across
// calls. Each call proves with the colony secret who the colony is (a fresh
// HMAC proof per request, as the agents require).
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { encodeProof, makeSecretProof, proofHeader } from "@coral/proto";
import { AgentDebugService } from "@coral/proto/gen/coral/agent/v1/debug_pb";

export type AgentDebugClient = Client<typeof AgentDebugService>;

export class AgentClientPool {
  private readonly clients = new Map<string, { url: string; client: AgentDebugClient }>();

  constructor(private readonly secret: string) {}

  get(agentId: string, agentUrl: string): AgentDebugClient {
    const cached = this.clients.get(agentId);
    if (cached && cached.url === agentUrl) return cached.client;
    const secret = this.secret;
    const proof: Interceptor = (next) => async (req) => {
      req.header.set(proofHeader, encodeProof(await makeSecretProof(secret, agentId)));
      return next(req);
    };
    const client = createClient(AgentDebugService, createConnectTransport({ baseUrl: agentUrl, httpVersion: "1.1", interceptors: [proof] }));
    this.clients.set(agentId, { url: agentUrl, client });
    return client;
  }

  forget(agentId: string): void {
    this.clients.delete(agentId);
  }
}
