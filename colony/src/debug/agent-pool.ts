// Clients to the agents' debug services, one per agent and URL, reused across
// calls. Each call is signed with the colony identity key (bound to the agent,
// method, body and time, as the agents require).
import type { Client } from "@connectrpc/connect";
import type { IdentityKey } from "@coral/proto";
import { AgentDebugService } from "@coral/proto/gen/coral/agent/v1/debug_pb";
import { agentServiceClient } from "../agents/transport.ts";

export type AgentDebugClient = Client<typeof AgentDebugService>;

export class AgentClientPool {
  private readonly clients = new Map<string, { url: string; client: AgentDebugClient }>();

  constructor(private readonly identity: IdentityKey) {}

  get(agentId: string, agentUrl: string): AgentDebugClient {
    const cached = this.clients.get(agentId);
    if (cached && cached.url === agentUrl) return cached.client;
    const client = agentServiceClient(AgentDebugService, agentUrl, agentId, this.identity);
    this.clients.set(agentId, { url: agentUrl, client });
    return client;
  }

  forget(agentId: string): void {
    this.clients.delete(agentId);
  }
}
