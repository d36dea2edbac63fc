// Starts a colony: store, NATS (its own unless one is configured), ingestion,
// agent actors, the Connect API and discovery registration; stops them in
// reverse order.
import { readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { TelemetryBatchSchema } from "@coral/proto/gen/coral/mesh/v1/telemetry_pb";
import type { Logger } from "pino";
import { AgentActors } from "../agents/actors.ts";
import { AgentIdentities } from "../identity/identities.ts";
import { standingEnrollSecret } from "../identity/standing.ts";
import { startApiServer, type ApiServer } from "../api/server.ts";
import type { ApiDeps } from "../api/deps.ts";
import { DebugSessions } from "../debug/sessions.ts";
import { loadColonyConfig, loadColonyKeys, type ColonyConfig } from "../config/index.ts";
import { startInsightsLoop } from "../insights/index.ts";
// The bootstrap CA (x509 library) loads only in wireguard mode: it slows every CLI start otherwise.
import { startBootstrapServer } from "../mesh/bootstrap-server.ts";
import { startColonyMesh, type ColonyMesh } from "../mesh/colony-mesh.ts";
import { ControlPlane } from "../control/index.ts";
import { deadLetterPayloadBytes, ensureTelemetryStream, startIngestion, startManagedNats, streamName, type ManagedNats } from "../nats/index.ts";
import { startRegistrationLoop, type RegistrationLoop } from "../registration/discovery-registration.ts";
import { ingestWithDeadLetters, isLoopback, openStore, recordDeadLetters, type ColonyStore } from "../store/index.ts";
import { coralVersion } from "@coral/common/version";
import { pidFilePath, type PidFile } from "./pid-file.ts";
import { encodeJoinToken } from "@coral/proto";

export { isAlive, pidFilePath, readPidFile, type PidFile } from "./pid-file.ts";

export interface StartColonyOptions {
  projectDir: string;
  logger: Logger;
  /** Overrides config.colony.api.port (tests pass 0 for a free port). */
  apiPort?: number;
  /** Overrides config.nats.port. */
  natsPort?: number;
  /** Insights detector interval (default CORAL_INSIGHTS_INTERVAL_MS or 60 s). */
  insightsIntervalMs?: number;
  /** Overrides config.colony.mesh.mode (coral colony start --mesh). */
  meshMode?: "loopback" | "wireguard";
}

export interface RunningColony extends AsyncDisposable {
  colonyId: string;
  url: string;
  config: ColonyConfig;
  store: ColonyStore;
  agents: AgentActors;
  debug: DebugSessions;
  natsUrl: string;
  close(): Promise<void>;
}

export async function startColony(options: StartColonyOptions): Promise<RunningColony> {
  const projectDir = resolve(options.projectDir);
  const log = options.logger;
  const config = await loadColonyConfig(projectDir);
  if (options.meshMode) config.colony.mesh.mode = options.meshMode;
  const wireguard = config.colony.mesh.mode === "wireguard";
  const keys = await loadColonyKeys(projectDir);
  const colonyId = config.colony.colony_id;
  const localToken = (await readFile(join(projectDir, ".coral", "local.token"), "utf8")).trim();
  const startedAt = new Date();
  const cleanups: Array<() => Promise<unknown>> = [];
  const closeAll = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((err: unknown) => log.warn({ err: String(err) }, "cleanup failed"));
  };

  try {
    const store = await openStore(config.colony.storage.path, { retention: config.colony.storage.retention, memoryLimit: config.colony.storage.memory_limit });
    cleanups.push(() => store.close());

    // Who may join: invitations and the agents' pinned keys (the actors say which agents are live).
    const live: { agents?: AgentActors; apiPort?: number } = {};
    const identities = new AgentIdentities(store, keys.identity.publicKey, (id) => live.agents?.get(id)?.state);
    await identities.start(standingEnrollSecret(log));

    // Wireguard mode: the interface comes first; NATS and the API bind to its address.
    let mesh: ColonyMesh | undefined;
    if (wireguard) {
      mesh = await startColonyMesh({
        colonyId,
        projectDir,
        privateKey: keys.wireguard.privateKey,
        identities,
        identityPubkey: keys.identity.publicKey,
        listenPort: config.colony.mesh.port,
        meshIpv4: config.colony.mesh.ipv4,
        meshIpv6: config.colony.mesh.ipv6,
        store,
        log,
      });
      cleanups.push(() => mesh!.close());
    }

    let managed: ManagedNats | undefined;
    let natsUrl = config.nats.url;
    let user: string | undefined;
    let pass: string | undefined;
    let inboxPrefix: string | undefined;
    if (!natsUrl) {
      managed = await startManagedNats({
        dataDir: join(projectDir, ".coral"),
        port: options.natsPort ?? config.nats.port,
        host: mesh ? mesh.meshIpv4 : config.nats.host,
        logger: log,
        colonyId,
      });
      cleanups.push(() => managed!.stop());
      natsUrl = managed.url;
      // The colony's own inbox prefix: agents may subscribe to _INBOX.> only.
      ({ user, password: pass, inboxPrefix } = managed.colonyCredentials);
      log.info({ url: natsUrl }, "Started NATS server");
    }
    const nc: NatsConnection = await connect({ servers: natsUrl, user, pass, name: `colony-${colonyId}`, maxReconnectAttempts: -1, inboxPrefix });
    cleanups.push(() => nc.drain());
    await ensureTelemetryStream(await jetstreamManager(nc), colonyId);
    const ingestion = startIngestion({
      nc,
      colonyId,
      sink: (batches) => store.ingest(batches),
      // What ingestion sets aside is recorded (dead_letters + an event) and shows in `coral status`.
      deadLetterSink: (letters) => store.write((c) => recordDeadLetters(c, letters, { payloadBytes: deadLetterPayloadBytes })),
      // A fetch holding both is one transaction.
      sinkWithDeadLetters: (batches, letters) => store.write((c) => ingestWithDeadLetters(c, batches, letters, { payloadBytes: deadLetterPayloadBytes })),
      // A write through the store's queue: fails only when the store itself is unavailable.
      probe: () => store.write((c) => c.run("SELECT nextval('write_gen')")),
      logger: log,
    });
    cleanups.push(() => ingestion.stop());

    const agents = new AgentActors({
      persistence: store,
      offlineAfterMs: config.colony.agent_offline_after_ms,
      expireAfterMs: config.colony.agent_expire_after_ms,
      onTransition: (agentId, from, to, reason) => {
        log.info({ agent_id: agentId, from, to, reason }, "Agent state changed");
        // An expired agent's NATS user goes; registering again issues a new one.
        if (to === "expired" && managed)
          void managed.removeAgentUser(agentId).catch((err: unknown) => log.warn({ agent_id: agentId, err: String(err) }, "could not remove the NATS user of an expired agent"));
        // Record the colony's own observation as an event next to the agents' events.
        const view = agents.get(agentId);
        void store
          .ingest([
            create(TelemetryBatchSchema, {
              batchId: `colony-${agentId}-${Date.now()}-${to}`,
              agentId,
              serviceName: view?.serviceName ?? "",
              createdAt: timestampFromDate(new Date()),
              events: [
                {
                  eventId: `state-${Date.now()}-${to}`,
                  timestamp: timestampFromDate(new Date()),
                  eventType: `agent_${to}`,
                  detailsJson: JSON.stringify({ from, to, reason }),
                },
              ],
            }),
          ])
          .catch((err: unknown) => log.warn({ err: String(err) }, "could not record agent state event"));
      },
      onError: (agentId, err) => log.warn({ agent_id: agentId, err: String(err) }, "agent actor error"),
    });
    live.agents = agents;
    const restored = await agents.restore();
    cleanups.push(() => agents.stop());
    if (restored) log.info({ agents: restored }, "Restored agent actors");

    const control = new ControlPlane({ store, agents, identity: keys.identity, config: config.control, log });
    await control.start();
    cleanups.push(() => control.stop());

    const debug = new DebugSessions({ store, agents, identity: keys.identity, log });
    const restoredSessions = await debug.restore();
    cleanups.push(() => debug.stop());
    if (restoredSessions) log.info({ sessions: restoredSessions }, "Restored debug sessions");

    let registration: RegistrationLoop | undefined;
    const deps: ApiDeps = {
      colonyId,
      appName: config.colony.app_name,
      environment: config.colony.environment,
      version: coralVersion,
      meshMode: config.colony.mesh.mode,
      startedAt,
      store,
      agents,
      debug,
      identity: keys.identity,
      identities,
      joinToken: async (invitation) =>
        encodeJoinToken({
          colonyId,
          discoveryUrl: config.discovery.endpoint ?? "",
          colonyPubkey: keys.identity.publicKey,
          colonyUrl: agentFacingUrl(config, live.apiPort),
          // Agents joining over WireGuard pin the bootstrap endpoint's CA by this.
          ...(wireguard ? { caFingerprint: await (await import("../mesh/bootstrap-ca.ts")).bootstrapCaFingerprint(join(projectDir, ".coral", "keys"), colonyId) } : {}),
          ...invitation,
        }),
      heartbeatIntervalSeconds: Math.round(config.colony.heartbeat_interval_ms / 1000),
      natsCredentials: async (agentId, prefix) => {
        if (!managed) return { url: natsUrl!, user: "", password: "" };
        // A new password on every registration: what an earlier run (or a thief) held stops working.
        const creds = await managed.addAgentUser(agentId, prefix, { rotate: true });
        return { url: config.nats.advertise_url ?? managed.url, ...creds };
      },
      removeNatsUser: async (agentId) => (managed ? managed.removeAgentUser(agentId) : false),
      streamName: streamName(colonyId),
      natsStatus: () => (nc.isClosed() ? "closed" : "connected"),
      discoveryStatus: () => registration?.status() ?? "disabled (no discovery endpoint configured)",
      control,
      log,
      mesh,
    };
    const api: ApiServer = await startApiServer(deps, {
      host: mesh ? mesh.meshIpv4 : config.colony.api.host,
      port: options.apiPort ?? config.colony.api.port,
      tls: config.colony.api.tls,
      localToken,
      // The colony's own mesh address is this machine: the local token works from it.
      localAddresses: mesh ? [mesh.meshIpv4, mesh.meshIpv6] : [],
    });
    cleanups.push(() => api.close());
    live.apiPort = api.port;
    log.info({ url: api.url }, "Colony API listening");
    // Tokens travel in every request: off loopback (and outside the WireGuard tunnel) they need TLS.
    if (!mesh && !config.colony.api.tls && !isLoopback(config.colony.api.host))
      log.warn(
        { host: config.colony.api.host },
        "The API listens beyond this machine without TLS: tokens and data cross the network in clear. " +
          "Set colony.api.tls (cert and key) in .coral/config.yaml, or listen on 127.0.0.1 behind a TLS proxy (coral doctor checks this)",
      );

    if (mesh) {
      const publicHost = config.colony.mesh.public_endpoint?.slice(0, config.colony.mesh.public_endpoint.lastIndexOf(":")).replace(/^\[|\]$/g, "");
      const { issueBootstrapCertificates } = await import("../mesh/bootstrap-ca.ts");
      const certificates = await issueBootstrapCertificates(join(projectDir, ".coral", "keys"), colonyId, [publicHost ?? "", "127.0.0.1", "localhost"]);
      const bootstrap = await startBootstrapServer({ host: "0.0.0.0", port: config.colony.mesh.port, certificates, mesh, connectPort: () => api.port, log });
      cleanups.push(() => bootstrap.close());
      log.info({ port: bootstrap.port, ca_fingerprint: certificates.caFingerprint }, "Mesh bootstrap endpoint listening (HTTPS)");
    }

    if (config.discovery.endpoint) {
      // Without CORAL_PUBLIC_ENDPOINT a wireguard colony advertises ":port": the address discovery sees it from.
      const endpoint = config.colony.mesh.public_endpoint ?? (wireguard ? `:${config.colony.mesh.port}` : `127.0.0.1:${config.colony.mesh.port}`);
      registration = startRegistrationLoop({
        discoveryUrl: config.discovery.endpoint,
        identity: keys.identity,
        intervalMs: config.discovery.register_interval_ms,
        log,
        fields: {
          meshId: colonyId,
          pubkey: keys.wireguard.publicKey,
          endpoints: [endpoint],
          meshIpv4: config.colony.mesh.ipv4,
          meshIpv6: config.colony.mesh.ipv6,
          connectPort: api.port,
          metadata: { application: config.colony.app_name, environment: config.colony.environment },
        },
      });
      const loop = registration;
      cleanups.push(() => loop.stop());
      await registration.firstAttempt;
    }

    const stopMaintenance = store.startMaintenance(5 * 60_000);
    cleanups.push(async () => stopMaintenance());
    const insights = startInsightsLoop(store, {
      intervalMs: options.insightsIntervalMs,
      logger: (level, msg, fields) => log[level](fields ?? {}, msg),
    });
    cleanups.push(() => insights.stop());

    const pidFile: PidFile = { pid: process.pid, url: api.url, colony_id: colonyId, started_at: startedAt.toISOString(), ...(mesh ? { mesh_mode: "wireguard" } : {}) };
    await writeFile(pidFilePath(projectDir), JSON.stringify(pidFile) + "\n");
    cleanups.unshift(() => rm(pidFilePath(projectDir), { force: true }));
    log.info({ colony_id: colonyId }, "Colony started successfully");

    let closing: Promise<void> | undefined;
    const close = () => (closing ??= closeAll());
    return { colonyId, url: api.url, config, store, agents, debug, natsUrl: natsUrl!, close, [Symbol.asyncDispose]: close };
  } catch (err) {
    await closeAll();
    throw err;
  }
}

/** The API address an agent on this machine (or the network, when the API listens there) uses. */
function agentFacingUrl(config: ColonyConfig, listeningPort: number | undefined): string {
  if (config.colony.api.advertise_url) return config.colony.api.advertise_url.replace(/\/+$/, "");
  const host = config.colony.api.host === "0.0.0.0" || config.colony.api.host === "::" ? "127.0.0.1" : config.colony.api.host;
  const bracketed = host.includes(":") ? `[${host}]` : host;
  return `${config.colony.api.tls ? "https" : "http"}://${bracketed}:${listeningPort ?? config.colony.api.port}`;
}
