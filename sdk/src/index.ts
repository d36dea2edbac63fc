// The Coral Node SDK: `import { coral } from "@coral/sdk"`.
//
//   await coral.init({ serviceName: "api", version: "1.4.0", healthChecks, flags, onRollback });
//   if (coral.flags.isEnabled("new-checkout", { userId })) { … }
//
// It serves CoralAppService (health, build info, endpoints) and the flag and
// rollback control services on 127.0.0.1 for the agent beside the app, each
// call guarded by a token, and announces port and token in a private
// per-user folder (announce.ts). Nothing here pulls in DuckDB, NATS or the CLI.
//
// Live debugging (inspector.ts): OpenInspector opens the app's V8 inspector
// in-process on a free loopback port for the agent, CloseInspector closes
// it again, so the agent needs no SIGUSR1.
//
// Request middleware (requests/): coral.instrumentServer(server),
// app.use(coral.express()), app.register(coral.fastify): RED aggregates and
// traffic samples the agent drains (DrainRequests, DrainTraffic).
import { randomBytes } from "node:crypto";
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import type { Server as HttpsServer } from "node:https";
import { hostname } from "node:os";
import { timestampDate, timestampFromDate, durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ExecuteRollbackResponse } from "@coral/proto/gen/coral/control/v1/rollback_pb";
import { removeAnnouncement, writeAnnouncement } from "./announce.ts";
import { checkFlagSet, sdkToken } from "./checks.ts";
import { FlagCache, type FlagContext, type FlagDefinition } from "./flags.ts";
import { HealthRegistry, type HealthCheck } from "./health.ts";
import { InProcessInspector } from "./inspector.ts";
import { startSdkServer, type SdkServer } from "./server.ts";
import {
  RequestRecorder,
  checkSampleRate,
  drainRequestsResponse,
  drainTrafficResponse,
  expressMiddleware,
  fastifyPlugin,
  instrumentServer,
  resolveRequestOptions,
  wrapListener,
  type ExpressMiddleware,
  type FastifyPlugin,
  type RequestOptions,
} from "./requests/index.ts";

export { FlagCache, rolloutBucket, type FlagContext, type FlagDefinition, type FlagInput } from "./flags.ts";
export {
  AnnounceDirError,
  findAnnouncement,
  parseAnnouncement,
  processUid,
  sdkAnnounceDir,
  sdkTokenHeader,
  type AnnouncementLookup,
  type SdkAnnouncement,
} from "./announce.ts";
export { sdkMaxBodyBytes } from "./server.ts";
export {
  RequestRecorder,
  resolveRequestOptions,
  REDACTED,
  defaultRedactedHeaders,
  type RequestOptions,
  type TrafficSampleData,
  type ExpressMiddleware,
  type FastifyPlugin,
} from "./requests/index.ts";
export type { HealthCheck, HealthState } from "./health.ts";

export const sdkVersion = "0.1.0";

export interface RollbackTarget {
  rollbackId: string;
  /** The version to go back to ("" when the colony left it to the app: the previous one). */
  version: string;
  previousVersion: string;
}

/**
 * Thrown by an onRollback handler that failed part-way and undid its own
 * changes, so the app runs what it ran before: the colony ends the rollback
 * rolled_back rather than failed. Any other error means not undone.
 */
export class RollbackReverted extends Error {
  readonly reverted = true;
  /** What the handler did to undo itself, one line each (shown as the undo's steps). */
  readonly undoSteps: string[];

  constructor(message: string, options?: ErrorOptions & { undoSteps?: string[] }) {
    super(message, options);
    this.name = "RollbackReverted";
    this.undoSteps = options?.undoSteps ?? [];
  }
}

export interface CoralInitOptions {
  serviceName: string;
  version: string;
  environment?: string;
  namespace?: string;
  region?: string;
  labels?: Record<string, string>;
  /** Defaults from CORAL_GIT_COMMIT, CORAL_GIT_BRANCH, CORAL_GIT_TAG. */
  git?: { commit?: string; branch?: string; tag?: string; dirty?: boolean };
  buildTime?: Date;
  builder?: string;
  healthChecks?: Record<string, HealthCheck>;
  /** Flags the app knows, with the value to use until the colony sends them. */
  flags?: Record<string, FlagDefinition>;
  /**
   * Runs when the colony rolls this service back with the sdk strategy; throw
   * to fail it, or throw RollbackReverted if the handler undid its changes.
   */
  onRollback?: (target: RollbackTarget) => Promise<void> | void;
  endpoints?: { metrics?: string; traces?: string; health?: string; pprof?: string; custom?: Record<string, string> };
  /** Default CORAL_SDK_PORT, else a free port (announced). */
  port?: number;
  /** Write the announcement file (default true). */
  announce?: boolean;
  /** The request middleware: sample rate (default 0.1), body limit, redacted headers, queue bounds. */
  requests?: RequestOptions;
}

export interface CoralInitResult {
  port: number;
  /** The announcement file, or undefined when the SDK did not announce itself. */
  announcement?: string;
  /** Why it did not announce (the folder was unsafe or unwritable); the app runs on. */
  announceError?: string;
}

export class CoralSdk {
  private options: CoralInitOptions | undefined;
  private server: SdkServer | undefined;
  private announcement: string | undefined;
  private readonly startedAt = new Date();
  private readonly rollbacks = new Map<string, Promise<ExecuteRollbackResponse>>();
  private readonly inspector = new InProcessInspector();
  private cache = new FlagCache();
  private version = "";
  private recorder: RequestRecorder | undefined;
  private readonly currentRecorder = (): RequestRecorder => (this.recorder ??= new RequestRecorder(resolveRequestOptions()));
  /** Set when the app installs any middleware: the agent then prefers the SDK's request figures to eBPF's, from the first drain on. */
  private middlewareInstalled = false;

  /** Watches every request `server` (node:http or node:https) serves: RED and traffic samples. Returns the server. */
  instrumentServer<S extends HttpServer | HttpsServer>(server: S): S {
    this.middlewareInstalled = true;
    return instrumentServer(this.currentRecorder, server);
  }

  /** Wraps one request listener; `routeOf` may name the route pattern the app matched. */
  handler<Req extends IncomingMessage, Res extends ServerResponse>(listener: (req: Req, res: Res) => void, routeOf?: (req: Req) => string | undefined): (req: Req, res: Res) => void {
    this.middlewareInstalled = true;
    return wrapListener(this.currentRecorder, listener, routeOf);
  }

  /** Express middleware: `app.use(coral.express())`, before the routes. */
  express(): ExpressMiddleware {
    this.middlewareInstalled = true;
    return expressMiddleware(this.currentRecorder);
  }

  /** A Fastify plugin: `await app.register(coral.fastify)`, before the routes. */
  readonly fastify: FastifyPlugin = fastifyPlugin(this.currentRecorder, () => (this.middlewareInstalled = true));

  /** The middleware's recorder (its aggregates and sample queue). */
  get requests(): RequestRecorder {
    return this.currentRecorder();
  }

  /** Feature flags from the local cache the colony keeps current. */
  readonly flags = {
    isEnabled: (name: string, context?: FlagContext): boolean => this.cache.isEnabled(name, context),
    onChange: (listener: (names: string[]) => void): (() => void) => this.cache.onChange(listener),
    names: (): string[] => this.cache.names(),
  };

  get port(): number {
    return this.server?.port ?? 0;
  }

  /** What GetInfo reports from now on (e.g. after the app switched versions). */
  setVersion(version: string): void {
    this.version = version;
  }

  getVersion(): string {
    return this.version;
  }

  async init(options: CoralInitOptions): Promise<CoralInitResult> {
    if (this.server) throw new Error("coral.init was already called");
    if (!options.serviceName) throw new Error("coral.init: serviceName is required");
    this.options = options;
    this.version = options.version;
    this.cache = new FlagCache(options.flags);
    // Validated before anything starts; middleware installed before init looks the recorder up per request, so it uses this one from now on.
    const requestOptions = resolveRequestOptions(options.requests);
    this.recorder = new RequestRecorder(requestOptions);
    const health = new HealthRegistry(options.healthChecks ?? {});
    const token = sdkToken(process.env.CORAL_SDK_TOKEN) ?? randomBytes(24).toString("base64url");
    const envPort = Number(process.env.CORAL_SDK_PORT ?? "");
    const port = options.port ?? (Number.isInteger(envPort) && envPort > 0 ? envPort : 0);
    this.server = await startSdkServer(
      {
        app: {
          getHealth: (req) => health.run(req.component),
          getInfo: () => this.info(),
          getConfig: () => ({
            metricsEndpoint: options.endpoints?.metrics ?? "",
            tracesEndpoint: options.endpoints?.traces ?? "",
            pprofEndpoint: options.endpoints?.pprof ?? "",
            healthEndpoint: options.endpoints?.health ?? "",
            customEndpoints: options.endpoints?.custom ?? {},
          }),
          drainRequests: () => drainRequestsResponse(this.recorder, this.middlewareInstalled),
          drainTraffic: (req) => drainTrafficResponse(this.recorder, req.maxSamples),
          configureTraffic: (req) => {
            try {
              checkSampleRate(req.sampleRate, "sample_rate");
            } catch (err) {
              throw new ConnectError((err as Error).message, Code.InvalidArgument);
            }
            this.currentRecorder().sampler.rate = req.sampleRate;
            return { sampleRate: this.currentRecorder().sampler.rate };
          },
          openInspector: () => {
            try {
              return { ...this.inspector.open(), pid: process.pid };
            } catch (err) {
              throw new ConnectError(`cannot open the V8 inspector: ${(err as Error).message}`, Code.FailedPrecondition, undefined, undefined, err);
            }
          },
          closeInspector: () => ({ closed: this.inspector.close() }),
        },
        flags: {
          syncFlags: (req) => {
            if (req.service && req.service !== options.serviceName)
              throw new ConnectError(`flags for ${req.service} sent to ${options.serviceName}`, Code.InvalidArgument);
            const generatedAtMs = req.generatedAt ? timestampDate(req.generatedAt).getTime() : Date.now();
            const problem = checkFlagSet(req.flags, generatedAtMs);
            if (problem) throw new ConnectError(problem, Code.InvalidArgument);
            this.cache.replace(req.flags, generatedAtMs);
            return { flagCount: this.cache.size, deliveredToSdk: true };
          },
        },
        rollback: {
          executeRollback: (req) => {
            if (!req.rollbackId) throw new ConnectError("rollback_id is required", Code.InvalidArgument);
            if (req.rollbackId.length > 128) throw new ConnectError("rollback_id: at most 128 characters", Code.InvalidArgument);
            let run = this.rollbacks.get(req.rollbackId);
            if (!run) {
              run = this.runRollback({ rollbackId: req.rollbackId, version: req.targetVersion, previousVersion: this.version });
              this.rollbacks.set(req.rollbackId, run);
            }
            return run;
          },
        },
      },
      { host: "127.0.0.1", port, token },
    );
    if (options.announce === false) return { port: this.server.port };
    try {
      this.announcement = writeAnnouncement({ pid: process.pid, port: this.server.port, token, serviceName: options.serviceName });
      return { port: this.server.port, announcement: this.announcement };
    } catch (err) {
      // Never take the app down: without the file the agent can still use --sdk PORT with CORAL_SDK_TOKEN.
      const announceError = err instanceof Error ? err.message : String(err);
      console.error(
        `coral sdk: not announcing to the Coral agent: ${announceError}. The app runs on; ` +
          `the agent can still reach the SDK with coral connect --sdk ${this.server.port} and a shared CORAL_SDK_TOKEN.`,
      );
      return { port: this.server.port, announceError };
    }
  }

  async shutdown(): Promise<void> {
    this.inspector.close();
    if (this.announcement) removeAnnouncement(this.announcement);
    this.announcement = undefined;
    await this.server?.close();
    this.server = undefined;
  }

  private async runRollback(target: RollbackTarget): Promise<ExecuteRollbackResponse> {
    const base = { $typeName: "coral.control.v1.ExecuteRollbackResponse" as const, steps: [] as string[], reverted: false, undoSteps: [] as string[], undoError: "" };
    const handler = this.options?.onRollback;
    if (!handler) return { ...base, success: false, message: "the app registered no rollback handler (coral.init onRollback)" };
    try {
      await handler(target);
      return { ...base, success: true, message: `rollback handler finished (target ${target.version || "previous version"})`, steps: ["ran the app's rollback handler"] };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      // Duck-typed, so an error from another copy of the SDK counts too.
      if (err instanceof Error && (err as Partial<RollbackReverted>).reverted === true) {
        const undone = (err as Partial<RollbackReverted>).undoSteps;
        const undoSteps = Array.isArray(undone) && undone.length > 0 ? undone.map(String) : ["the app's rollback handler undid its changes"];
        return { ...base, success: false, message, steps: ["the app's rollback handler failed"], reverted: true, undoSteps };
      }
      return { ...base, success: false, message, steps: ["the app's rollback handler threw"] };
    }
  }

  private info() {
    const o = this.options!;
    return {
      serviceName: o.serviceName,
      serviceVersion: this.version,
      serviceNamespace: o.namespace ?? "",
      gitCommit: o.git?.commit ?? process.env.CORAL_GIT_COMMIT ?? "",
      gitBranch: o.git?.branch ?? process.env.CORAL_GIT_BRANCH ?? "",
      gitDirty: o.git?.dirty ?? false,
      gitTag: o.git?.tag ?? process.env.CORAL_GIT_TAG ?? "",
      buildTime: o.buildTime ? timestampFromDate(o.buildTime) : undefined,
      builder: o.builder ?? "",
      runtimeVersion: `node ${process.version}`,
      startTime: timestampFromDate(this.startedAt),
      uptime: durationFromMs(Date.now() - this.startedAt.getTime()),
      hostname: hostname(),
      labels: o.labels ?? {},
      environment: o.environment ?? "",
      region: o.region ?? "",
      availabilityZone: "",
      sdkVersion,
      rollbackHandler: Boolean(o.onRollback),
      pid: process.pid,
    };
  }
}

/** The process-wide SDK instance apps use. */
export const coral = new CoralSdk();
