// What the API handlers need from the running colony. The runtime provides
// the real parts (DuckDB store, NATS, actors); nothing here is a stand-in.
import type { AgentActors } from "../agents/actors.ts";
import type { ColonyMesh } from "../mesh/index.ts";
import type { DebugSessions } from "../debug/sessions.ts";
import type { ColonyStore } from "../store/index.ts";
import type { ControlPlane } from "../control/index.ts";
import type { IdentityKey } from "@coral/proto";
import type { AgentIdentities } from "../identity/identities.ts";

export interface ApiDeps {
  colonyId: string;
  appName: string;
  environment: string;
  version: string;
  meshMode: string;
  startedAt: Date;
  store: ColonyStore;
  agents: AgentActors;
  /** Live debugging sessions (DebugService); absent = not served. */
  debug?: DebugSessions;
  /** The colony's Ed25519 identity key: signs calls to agents, pinned by them. */
  identity: IdentityKey;
  /** Invitations and the agents' pinned keys. */
  identities: AgentIdentities;
  /** The join token for an invitation: this colony's id, key and addresses with it. */
  joinToken(invitation: { invitationId: string; invitationSecret: string }): Promise<string>;
  heartbeatIntervalSeconds: number;
  /** Issues NATS credentials that may publish only under `prefix.>`. */
  natsCredentials(agentId: string, prefix: string): Promise<{ url: string; user: string; password: string }>;
  /** Removes the agent's NATS user (its connections are cut); false when it had none. */
  removeNatsUser(agentId: string): Promise<boolean>;
  streamName: string;
  natsStatus(): string;
  discoveryStatus(): string;
  /** Flags, rollbacks and SDK reports (absent in API-only tests). */
  control?: ControlPlane;
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
  /** The WireGuard mesh, in wireguard mode. */
  mesh?: ColonyMesh;
}
