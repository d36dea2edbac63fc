// Feature flags: stored in DuckDB, pushed as a whole set per service to every
// connected agent of that service (which passes it to the app's SDK). A push
// on every change, on every agent registration, and a periodic resync make
// a missed push harmless.
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import type { IdentityKey } from "@coral/proto";
import { SyncFlagsRequestSchema, type Flag } from "@coral/proto/gen/coral/control/v1/flags_pb";
import type { AgentActors } from "../agents/actors.ts";
import type { ColonyStore } from "../store/index.ts";
import type { AgentRow } from "../store/types.ts";
import { agentFlagsClient } from "./agent-client.ts";
import { getFlag, listFlags, saveFlag } from "./store.ts";

export const flagNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const connected = new Set(["online", "degraded"]);

export interface FlagChange {
  service: string;
  name: string;
  enabled?: boolean;
  rollout?: number;
  userIds?: string[];
  by: string;
}

/** Returns an error message, or null when the change is valid. */
export function flagChangeProblem(c: FlagChange): string | null {
  if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(c.service)) return `service: "${c.service.slice(0, 40)}" is not a component name, e.g. api`;
  if (!flagNamePattern.test(c.name)) return `name: "${c.name.slice(0, 40)}" must be 1-128 letters, digits, ".", "_" or "-", starting with a letter or digit`;
  if (c.rollout !== undefined && (!Number.isInteger(c.rollout) || c.rollout < 0 || c.rollout > 100)) return `rollout_percentage: must be 0 to 100 (got ${c.rollout})`;
  if (c.userIds) {
    if (c.userIds.length > 1000) return "user_ids: at most 1000 users";
    const bad = c.userIds.find((u) => u.length === 0 || u.length > 128);
    if (bad !== undefined) return `user_ids: each must be 1-128 characters (got "${bad.slice(0, 40)}")`;
  }
  return null;
}

export class FlagDistributor {
  private timer: NodeJS.Timeout | undefined;
  private resyncing = false;

  constructor(
    private readonly deps: {
      store: ColonyStore;
      agents: AgentActors;
      identity: IdentityKey;
      log: { warn(obj: object, msg?: string): void; debug?(obj: object, msg?: string): void };
    },
  ) {}

  list(service?: string): Promise<Flag[]> {
    return this.deps.store.read((c) => listFlags(c, service));
  }

  /** Stores the change (unset fields keep their value) and pushes the service's set. */
  async set(change: FlagChange): Promise<{ flag: Flag; notified: number; unreachable: string[] }> {
    const flag = await this.deps.store.write(async (c) => {
      const current = await getFlag(c, change.service, change.name);
      await saveFlag(c, {
        name: change.name,
        service: change.service,
        enabled: change.enabled ?? current?.enabled ?? false,
        rollout: change.rollout ?? current?.rolloutPercentage ?? 100,
        userIds: change.userIds ?? current?.userIds ?? [],
        at: new Date(),
        by: change.by,
      });
      return (await getFlag(c, change.service, change.name))!;
    });
    const pushed = await this.pushService(change.service);
    return { flag, ...pushed };
  }

  /** Sends the service's whole set to each of its connected agents. */
  async pushService(service: string): Promise<{ notified: number; unreachable: string[] }> {
    const agents = (await this.deps.store.listAgents()).filter((a) => a.serviceName === service && connected.has(this.deps.agents.get(a.agentId)?.state ?? ""));
    const flags = await this.list(service);
    const unreachable: string[] = [];
    let notified = 0;
    await Promise.all(
      agents.map(async (a) => {
        try {
          await this.pushTo(a, flags);
          notified++;
        } catch (err) {
          unreachable.push(`${a.agentId}: ${ConnectError.from(err).rawMessage}`);
        }
      }),
    );
    return { notified, unreachable };
  }

  /** After an agent (re)registers: its set may be stale or empty. */
  async pushAgent(agentId: string): Promise<void> {
    const agent = await this.deps.store.getAgent(agentId);
    if (!agent) return;
    await this.pushTo(agent, await this.list(agent.serviceName));
  }

  startResync(intervalMs: number): void {
    this.timer = setInterval(() => {
      if (this.resyncing) return;
      this.resyncing = true;
      void this.resyncAll()
        .catch((err: unknown) => this.deps.log.warn({ err: String(err) }, "flag resync failed"))
        .finally(() => (this.resyncing = false));
    }, intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private async resyncAll(): Promise<void> {
    const services = new Set((await this.deps.store.listAgents()).map((a) => a.serviceName));
    for (const service of services) await this.pushService(service);
  }

  private async pushTo(agent: AgentRow, flags: Flag[]): Promise<void> {
    if (!agent.agentUrl) throw new Error("the agent serves no control calls");
    const req = create(SyncFlagsRequestSchema, { service: agent.serviceName, flags, generatedAt: timestampFromDate(new Date()) });
    await agentFlagsClient(agent.agentUrl, agent.agentId, this.deps.identity).syncFlags(req, { timeoutMs: 5000 });
  }
}
