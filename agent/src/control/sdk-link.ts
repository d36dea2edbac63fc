// The agent's side of the app's Coral SDK: finds it (the --sdk port, or the
// announcement file of the observed pid, trusted only in a folder of the
// process's own user that nobody else can write: see findAnnouncement),
// polls its health and info for the heartbeat, and hands it the service's
// flag set: again whenever the SDK comes (back) up, so a restarted app or
// agent never keeps a stale set. Every call carries the SDK's token.
//
// It is also how live debugging opens a Node app's inspector without
// SIGUSR1 (openInspector/closeInspector, the InProcessInspector of
// profile/inspector.ts): the SDK opens it in-process on a free loopback port.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { FeatureFlagControlService, type SyncFlagsRequest } from "@coral/proto/gen/coral/control/v1/flags_pb";
import { RollbackControlService, type ExecuteRollbackRequest, type ExecuteRollbackResponse } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import {
  CoralAppService,
  type DrainRequestsResponse,
  type DrainTrafficResponse,
  type GetHealthResponse,
  type GetInfoResponse,
} from "@coral/proto/gen/coral/sdk/v1/sdk_pb";
import { findAnnouncement, sdkTokenHeader } from "@coral/sdk";

export interface SdkReport {
  info: GetInfoResponse;
  health: GetHealthResponse;
}

interface Clients {
  key: string;
  app: Client<typeof CoralAppService>;
  flags: Client<typeof FeatureFlagControlService>;
  rollback: Client<typeof RollbackControlService>;
}

export interface SdkLinkOptions {
  /** From `coral connect --sdk PORT`; else the announcement of the observed pid. */
  port?: number;
  /** A folder to look in first (CORAL_SDK_DIR); else where the observed process's user announces. */
  announceDir?: string;
  logger: { info(obj: object, msg?: string): void; debug(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

export class SdkLink {
  private clients: Clients | undefined;
  private report: SdkReport | null = null;
  private flags: SyncFlagsRequest | undefined;
  /** The flag set the SDK holds was delivered on this connection key. */
  private deliveredOn = "";
  /** Refusals already logged, so each is said once. */
  private readonly warned = new Set<string>();

  constructor(private readonly options: SdkLinkOptions) {}

  /** What the SDK last answered, or null when the agent does not reach one. */
  last(): SdkReport | null {
    return this.report;
  }

  /** Polls the SDK of `pid` (0: none observed yet); resyncs flags after a (re)connect. */
  async poll(pid: number): Promise<SdkReport | null> {
    const clients = this.connect(pid);
    if (!clients) return (this.report = null);
    try {
      const [info, health] = await Promise.all([clients.app.getInfo({}, { timeoutMs: 3000 }), clients.app.getHealth({}, { timeoutMs: 5000 })]);
      if (!this.report) this.options.logger.info({ port: clients.key, version: info.serviceVersion }, "Found the app's Coral SDK");
      this.report = { info, health };
      // A new SDK process (its start time changes) gets the set again.
      const key = `${clients.key}@${info.pid}:${info.startTime?.seconds ?? 0n}`;
      if (this.flags && this.deliveredOn !== key) await this.deliver(clients, key);
      return this.report;
    } catch (err) {
      if (this.report) this.options.logger.warn({ err: String(err) }, "Lost the app's Coral SDK");
      this.report = null;
      this.deliveredOn = "";
      this.clients = undefined;
      return null;
    }
  }

  /** Keeps the set and passes it on now if the SDK is reachable. */
  async syncFlags(req: SyncFlagsRequest): Promise<boolean> {
    this.flags = req;
    this.deliveredOn = "";
    const clients = this.clients;
    if (!clients || !this.report) return false;
    const key = `${clients.key}@${this.report.info.pid}:${this.report.info.startTime?.seconds ?? 0n}`;
    return this.deliver(clients, key);
  }

  flagCount(): number {
    return this.flags?.flags.length ?? 0;
  }

  async executeRollback(req: ExecuteRollbackRequest, timeoutMs: number): Promise<ExecuteRollbackResponse> {
    const clients = this.clients;
    if (!clients || !this.report) throw new Error("the agent does not reach the app's Coral SDK (is coral.init called, or --sdk set?)");
    return clients.rollback.executeRollback(req, { timeoutMs });
  }

  /** The request middleware's RED aggregates since the last drain; null when no SDK is reached. */
  async drainRequests(): Promise<DrainRequestsResponse | null> {
    const clients = this.clients;
    if (!clients || !this.report) return null;
    return clients.app.drainRequests({}, { timeoutMs: 5000 });
  }

  /** Queued traffic samples (oldest first, at most maxSamples); null when no SDK is reached. */
  async drainTraffic(maxSamples: number): Promise<DrainTrafficResponse | null> {
    const clients = this.clients;
    if (!clients || !this.report) return null;
    return clients.app.drainTraffic({ maxSamples }, { timeoutMs: 5000 });
  }

  /** Sets the SDK's sample rate; null when no SDK is reached. */
  async configureTraffic(sampleRate: number): Promise<number | null> {
    const clients = this.clients;
    if (!clients || !this.report) return null;
    return (await clients.app.configureTraffic({ sampleRate }, { timeoutMs: 5000 })).sampleRate;
  }

  /**
   * Has the SDK of `pid` open the app's inspector in-process: its URL and
   * whether the SDK opened it for us (close it with closeInspector). Undefined
   * when `pid` runs no SDK the agent reaches, or an SDK without the call; the
   * caller then uses SIGUSR1. Throws when the SDK could not open it.
   */
  async openInspector(pid: number): Promise<{ url: string; openedForUs: boolean } | undefined> {
    const clients = this.connect(pid);
    if (!clients) return undefined;
    let res;
    try {
      res = await clients.app.openInspector({}, { timeoutMs: 5000 });
    } catch (err) {
      const ce = ConnectError.from(err);
      // Unreachable (no SDK listens there now) or an SDK from before the call: not this way.
      if (ce.code === Code.Unimplemented || ce.code === Code.NotFound || ce.code === Code.Unavailable) return undefined;
      throw new Error(ce.rawMessage, { cause: err });
    }
    // --sdk names a port, not a process: its SDK may be another process's.
    if (res.pid !== pid) {
      if (res.openedBySdk) await clients.app.closeInspector({}, { timeoutMs: 5000 }).catch(() => undefined);
      return undefined;
    }
    return { url: res.websocketUrl, openedForUs: res.openedBySdk };
  }

  /** Has the SDK of `pid` close the inspector it opened for openInspector. */
  async closeInspector(pid: number): Promise<void> {
    const clients = this.connect(pid);
    if (!clients) throw new Error(`the agent no longer reaches the Coral SDK of process ${pid}`);
    await clients.app.closeInspector({}, { timeoutMs: 5000 });
  }

  private async deliver(clients: Clients, key: string): Promise<boolean> {
    try {
      await clients.flags.syncFlags(this.flags!, { timeoutMs: 5000 });
      this.deliveredOn = key;
      return true;
    } catch (err) {
      this.options.logger.warn({ err: String(err) }, "Could not pass flags to the SDK; retrying on the next poll");
      return false;
    }
  }

  private find(pid: number) {
    const { announcement, refused } = findAnnouncement(pid, { dir: this.options.announceDir ?? process.env.CORAL_SDK_DIR });
    for (const reason of refused) {
      if (this.warned.has(reason)) continue;
      if (this.warned.size > 100) this.warned.clear();
      this.warned.add(reason);
      this.options.logger.warn({ pid, reason }, "Ignoring an SDK announcement the observed process's user does not own alone");
    }
    return announcement;
  }

  private connect(pid: number): Clients | undefined {
    const announced = pid > 0 ? this.find(pid) : null;
    const port = this.options.port ?? announced?.port;
    if (!port) return (this.clients = undefined);
    // An announcement's token is for its own port only; --sdk elsewhere needs CORAL_SDK_TOKEN.
    const token = (announced?.port === port ? announced.token : undefined) ?? process.env.CORAL_SDK_TOKEN ?? "";
    const key = `127.0.0.1:${port}/${token}`;
    if (this.clients?.key === key) return this.clients;
    const withToken: Interceptor = (next) => (req) => {
      if (token) req.header.set(sdkTokenHeader, token);
      return next(req);
    };
    const transport = createConnectTransport({ baseUrl: `http://127.0.0.1:${port}`, httpVersion: "1.1", interceptors: [withToken] });
    this.deliveredOn = "";
    return (this.clients = {
      key,
      app: createClient(CoralAppService, transport),
      flags: createClient(FeatureFlagControlService, transport),
      rollback: createClient(RollbackControlService, transport),
    });
  }
}
