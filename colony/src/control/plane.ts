// The colony's control plane: feature flags, rollbacks and what apps' Coral
// SDKs report (health per component, build info) through their agents.
import type { IdentityKey } from "@coral/proto";
import type { HeartbeatRequest } from "@coral/proto/gen/coral/mesh/v1/mesh_pb";
import type { AgentActors } from "../agents/actors.ts";
import type { ControlConfig } from "../config/control-schema.ts";
import type { ColonyStore } from "../store/index.ts";
import { FlagDistributor } from "./flags.ts";
import { Rollbacks } from "./rollbacks.ts";
import { dropSdkReport, listSdkReports, recordVersion, saveSdkReport, type SdkReportRow } from "./store.ts";


export interface ControlPlaneOptions {
  store: ColonyStore;
  agents: AgentActors;
  /** Signs every call to an agent. */
  identity: IdentityKey;
  config: ControlConfig;
  log: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

export class ControlPlane {
  readonly flags: FlagDistributor;
  readonly rollbacks: Rollbacks;
  private sdkEnabled = new Map<string, boolean>();

  constructor(private readonly options: ControlPlaneOptions) {
    this.flags = new FlagDistributor(options);
    this.rollbacks = new Rollbacks(options);
  }

  async start(): Promise<void> {
    const restored = await this.rollbacks.restore();
    if (restored) this.options.log.info({ rollbacks: restored }, "Restored rollback actors");
    this.flags.startResync(this.options.config.flag_resync_interval_ms);
  }

  async stop(): Promise<void> {
    this.flags.stop();
    await this.rollbacks.stop();
  }

  /** After MeshService.Register: the agent gets its service's flags. */
  agentRegistered(agentId: string): void {
    void this.flags.pushAgent(agentId).catch((err: unknown) => this.options.log.warn({ agent_id: agentId, err: String(err) }, "could not send flags to a new agent"));
  }

  /** After a heartbeat is stored: keeps the SDK report and the versions seen. */
  async heartbeat(req: HeartbeatRequest, serviceName: string): Promise<void> {
    const now = new Date();
    const version = (req.sdkInfo?.serviceVersion || req.version).slice(0, 128);
    // A report too big or odd to keep is dropped, never the heartbeat.
    if (req.sdkHealth && req.sdkHealth.components.length > 64) req.sdkHealth.components = req.sdkHealth.components.slice(0, 64);
    for (const c of req.sdkHealth?.components ?? []) c.message = c.message.slice(0, 500);
    try {
      await this.options.store.write(async (c) => {
        await recordVersion(c, serviceName, version, now);
        if (req.sdkEnabled && req.sdkInfo) await saveSdkReport(c, req.agentId, serviceName, req.sdkInfo, req.sdkHealth, now);
        else if (this.sdkEnabled.get(req.agentId) !== false) await dropSdkReport(c, req.agentId);
      });
      this.sdkEnabled.set(req.agentId, req.sdkEnabled);
    } catch (err) {
      this.options.log.warn({ agent_id: req.agentId, err: String(err) }, "could not store an SDK report");
    }
  }

  sdkReports(): Promise<Map<string, SdkReportRow>> {
    return this.options.store.read((c) => listSdkReports(c));
  }
}
